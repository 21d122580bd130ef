"""The code MLflow stores as the model ("models from code"): no pickled Python object is ever loaded."""

from mlflow.models import set_model

from edgeops.registry.pyfunc import OpenVinoModel

set_model(OpenVinoModel())
