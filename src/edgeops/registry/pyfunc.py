"""A variant's OpenVINO IR as an MLflow model: the pyfunc flavor runs the IR through the edge's own code.

So `mlflow.pyfunc.load_model("models:/NAME@production")` and `mlflow models serve` answer exactly as
`edgeops predict` and the edge agent do: the same resize, the same IR, the same task answer.
Input: a u8 RGB image batch (N, H, W, 3) of any size; output: one task answer (a dict) per image."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
from mlflow.pyfunc import PythonModel

IR_ARTIFACT = "ir"  # the model folder (model.xml, model.bin, model.json) inside the MLflow model
EDGE_REQUIREMENTS = ("openvino", "numpy", "pillow")  # what the pyfunc needs besides edgeops' own code
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/edgeops, shipped with the model as code


class OpenVinoModel(PythonModel):  # type: ignore[misc]
    """Loads the IR folder once (checksums verified, as the edge does) and answers per image."""

    def load_context(self, context: Any) -> None:
        from edgeops.edge.inference import EdgeModel
        from edgeops.files import read_model_json

        folder = Path(context.artifacts[IR_ARTIFACT])
        read_model_json(folder)  # the sha256s of model.xml/.bin against model.json: refuse a damaged copy
        self.model = EdgeModel(folder)

    # np.ndarray is a hint MLflow infers no schema from: the model's signature stays what validates input
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict | None = None
    ) -> list[dict[str, Any]]:
        return predict_images(self.model, model_input)


def predict_images(model: Any, images: Any) -> list[dict[str, Any]]:
    """One answer per u8 RGB image of a (N, H, W, 3) batch, or a single (H, W, 3) image."""
    from PIL import Image

    from edgeops.errors import EdgeopsError
    from edgeops.images import model_input

    batch = np.asarray(images)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise EdgeopsError(f"expected u8 RGB images shaped (N, H, W, 3), got shape {batch.shape}")
    if batch.dtype != np.uint8:
        if batch.size and (batch.min() < 0 or batch.max() > 255):
            raise EdgeopsError("expected u8 pixel values 0..255")
        batch = batch.astype(np.uint8)
    answers = []
    for pixels in batch:
        image = Image.fromarray(pixels, "RGB")
        answers.append(model.answer(model_input(image, (model.width, model.height))[None], image.size))
    return answers


def signature_and_example(model_dir: Path, example: np.ndarray) -> tuple[Any, np.ndarray]:
    """Input: u8 (N, H, W, 3) of any size; output: inferred from the IR's real answers on `example`."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import Schema, TensorSpec

    from edgeops.edge.inference import EdgeModel

    answers = predict_images(EdgeModel(model_dir), example)
    inputs = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))])
    outputs = infer_signature(example, answers).outputs
    return ModelSignature(inputs=inputs, outputs=outputs), example


def requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in EDGE_REQUIREMENTS]


def log_model(model_dir: Path, name: str, example: np.ndarray, tags: dict[str, str]) -> Any:
    """Log model_dir as an MLflow model in the active run; returns MLflow's ModelInfo."""
    signature, example = signature_and_example(model_dir, example)
    contract = json.loads((model_dir / "model.json").read_text())
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
        artifacts={IR_ARTIFACT: str(model_dir)},
        code_paths=[str(PACKAGE_DIR)],
        signature=signature,
        input_example=example,
        pip_requirements=requirements(),
        metadata={
            "task": contract.get("task"),
            "variant": contract.get("variant"),
            "labels": contract.get("labels"),
        },
        tags=tags,
    )
