"""Edge delivery: targets (file:// and s3://), publishing, and the on-device agent.

This package needs only the `[edge]` extra (openvino, numpy, pillow, pydantic, pyyaml, typer,
boto3, fastapi, uvicorn, python-multipart): never import torch, NNCF, MLflow or Prefect here.
"""
