"""MLflow: tracking, registration, promotion by alias and stage, its CLI."""
