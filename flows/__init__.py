"""Prefect flows: composition only; the stages and their logic live in dvc.yaml, tasks/ and edgeops."""
