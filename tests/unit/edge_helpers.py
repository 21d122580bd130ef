"""Test helpers for the edge/promotion tests: a tiny OpenVINO IR that honours the model.json contract.

Graph: u8 NHWC [1,H,W,3] → f32 → mean over H,W → [1,3] → matmul [3,N] → logits [1,N].
The weights make class i favour colour channel i (red/green/blue), so predictions are checkable.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

LABELS = ["red", "green", "blue"]


def build_model(
    folder: Path, *, size: int = 8, labels: list[str] | None = None, scale: float = 0.05,
    variant: str = "ptq", precision: str = "INT8", accuracy: float = 0.9, run_id: str = "run123",
    fingerprint: str = "fp-abc", commit: str = "deadbeef", extra: dict[str, Any] | None = None,
) -> Path:
    """Write model.xml/.bin/.json into `folder`; `scale` changes the weights (so versions differ)."""
    import openvino as ov
    import openvino.opset13 as ops

    labels = labels or LABELS
    n = len(labels)
    param = ops.parameter([1, size, size, 3], ov.Type.u8, name="image")
    x = ops.convert(param, ov.Type.f32)
    x = ops.reduce_mean(x, ops.constant(np.array([1, 2], dtype=np.int64)), keep_dims=False)
    w = np.zeros((3, n), dtype=np.float32)
    for i in range(n):
        w[i % 3, i] = scale
    logits = ops.matmul(x, ops.constant(w), False, False)
    model = ov.Model([logits], [param], "tiny")
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)
    files = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in ("model.xml", "model.bin")}
    meta = {
        "task": "classification",
        "labels": labels,
        "input": {"name": "image", "shape": [1, size, size, 3], "layout": "NHWC", "element_type": "u8",
                  "color": "RGB"},
        "precision": precision,
        "variant": variant,
        "metrics": {"accuracy": accuracy},
        "files": files,
        "mlflow_run_id": run_id,
        "dataset_fingerprint": fingerprint,
        "git_commit": commit,
        **(extra or {}),
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2))
    return folder


def image_bytes(color: tuple[int, int, int] = (250, 10, 10), size: int = 16, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format=fmt)
    return buf.getvalue()
