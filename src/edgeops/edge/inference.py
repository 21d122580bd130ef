"""Serving the current version: decode an upload as training did, run the IR, answer with the task's post-processing."""

from __future__ import annotations

import io
import json
import queue
from pathlib import Path
from typing import Any

import numpy as np

from edgeops.edge.state import current_dir
from edgeops.edge.verify import verify_folder
from edgeops.errors import EdgeopsError
from edgeops.images import model_input, open_image
from edgeops.runtime import Raw, outputs_of
from edgeops.vision import AnswerOptions, get_task


class InferenceError(EdgeopsError):
    """The model ran but its output is unusable (e.g. NaN/inf logits from corrupt weights)."""


class BadImage(EdgeopsError):
    """An input that is not a usable image. `status` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- inference

DEFAULT_MAX_PIXELS = 40_000_000  # ~ 6300 x 6300: above this, an upload is a decompression bomb to us


class EdgeModel:
    """A compiled model of one version folder. Thread-safe: a small pool of infer requests."""

    def __init__(self, folder: Path, *, device: str = "CPU", config: dict[str, Any] | None = None) -> None:
        import openvino as ov

        self.folder = Path(folder)
        self.meta: dict[str, Any] = json.loads((self.folder / "model.json").read_text())
        self.version = self.folder.name
        self.labels: list[str] = [str(x) for x in self.meta.get("labels", [])]
        self.task = get_task(str(self.meta.get("task", "classification")))
        shape = self.meta.get("input", {}).get("shape") or [1, 0, 0, 3]
        self.height, self.width = int(shape[1]), int(shape[2])
        self.compiled = ov.Core().compile_model(
            str(self.folder / "model.xml"), device, config or {"PERFORMANCE_HINT": "LATENCY"}
        )
        try:
            n = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        except Exception:
            n = 1
        self._requests: queue.Queue[Any] = queue.Queue()
        for _ in range(max(1, min(n, 4))):
            self._requests.put(self.compiled.create_infer_request())

    def infer(self, batch: np.ndarray) -> Raw:
        """The IR's outputs for one preprocessed u8 NHWC batch (one array, or a tuple in IR order)."""
        request = self._requests.get()
        try:
            return outputs_of(request.infer({0: batch}), self.compiled)
        finally:
            self._requests.put(request)

    def preprocess(
        self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """Model input (1, H, W, 3) u8 and the original (width, height), decoded as in training."""
        from PIL import UnidentifiedImageError

        try:
            img = open_image(io.BytesIO(data))  # lazy: reads the header only
        except UnidentifiedImageError:
            raise BadImage(
                "not an image (could not identify the format): upload a JPEG or PNG", 400
            ) from None
        except ValueError:  # Pillow's own decompression-bomb limit
            raise BadImage(f"image too large (over {max_pixels} pixels)", 413) from None
        w, h = img.size
        if w * h > max_pixels:
            raise BadImage(f"image too large: {w}x{h} is over {max_pixels} pixels", 413)
        try:
            pixels = model_input(img, (self.width, self.height))
        except (OSError, ValueError, SyntaxError) as e:  # truncated / corrupt payloads
            raise BadImage(f"corrupt image: {e}", 400) from None
        return pixels[None], (w, h)

    def predict_bytes(
        self, data: bytes, options: AnswerOptions | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> dict[str, Any]:
        batch, original_size = self.preprocess(data, max_pixels)
        return {"version": self.version, **self.answer(batch, original_size, options)}

    def answer(
        self, batch: np.ndarray, original_size: tuple[int, int], options: AnswerOptions | None = None
    ) -> dict[str, Any]:
        """The task's answer for one preprocessed image (1, H, W, 3) u8 of original (width, height)."""
        raw = self.infer(batch)
        if not all(np.all(np.isfinite(array)) for array in (raw if isinstance(raw, tuple) else (raw,))):
            raise InferenceError(
                f"v{self.version} produced non-finite scores (NaN/inf): the model is broken, "
                "roll back with `edgeops edge rollback`"
            )
        labels = self.labels
        if not labels and not isinstance(raw, tuple):  # a model.json without labels: name classes by index
            labels = [str(i) for i in range(int(raw.shape[1]))]
        options = (options or AnswerOptions()).filled(self.meta.get("output", {}).get("serving", {}))
        return self.task.answer(raw, (self.width, self.height), original_size, labels, options)


def current_folder(agent_dir: Path) -> Path:
    folder = current_dir(Path(agent_dir))
    if folder is None:
        raise EdgeopsError(
            f"{agent_dir} has no current model: run `edgeops edge sync --dir {agent_dir}` first"
        )
    if not (folder / "model.json").is_file():
        raise EdgeopsError(
            f"{agent_dir}/current names v{folder.name} but {folder} is missing or incomplete: "
            f"run `edgeops edge sync --dir {agent_dir}` to repair it"
        )
    return folder


def load_current(agent_dir: Path) -> EdgeModel:
    """The current version, verified file by file against its manifest before it is compiled."""
    folder = current_folder(Path(agent_dir))
    verify_folder(folder)
    return EdgeModel(folder)
