"""OpenVINO runtime helpers shared by evaluation, benchmarks and `edgeops predict` (no torch here)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import openvino as ov

from edgeops.errors import EdgeopsError

_core: ov.Core | None = None


def core() -> ov.Core:
    global _core
    if _core is None:
        _core = ov.Core()
    return _core


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_model_json(model_dir: str | Path, verify: bool = True) -> dict:
    model_dir = Path(model_dir)
    meta_path = model_dir / "model.json"
    if not meta_path.exists():
        raise EdgeopsError(f"{meta_path} not found: pass a folder made by the pipeline (models/<variant>)")
    meta = json.loads(meta_path.read_text())
    if verify:
        for name, expected in meta["files"].items():
            path = model_dir / name
            if not path.exists():
                raise EdgeopsError(f"{path} is missing: the model folder is incomplete")
            if sha256_file(path) != expected:
                raise EdgeopsError(f"{path} does not match its sha256 in model.json: the file is corrupt")
    return meta


def compile_model(
    model_dir: str | Path, precision_hint: str | None = None, performance_hint: str = "LATENCY"
) -> ov.CompiledModel:
    """precision_hint: None = the runtime default (bf16 on CPUs that have it), or e.g. 'f32'."""
    config: dict[str, str] = {"PERFORMANCE_HINT": performance_hint}
    if precision_hint:
        config["INFERENCE_PRECISION_HINT"] = precision_hint
    return core().compile_model(Path(model_dir) / "model.xml", "CPU", config)


def predict_logits(compiled: ov.CompiledModel, images: np.ndarray) -> np.ndarray:
    """Runs u8 NHWC images one at a time (the IR has batch 1); returns logits (N, classes)."""
    request = compiled.create_infer_request()
    output = compiled.output(0)
    rows = []
    for i in range(len(images)):
        rows.append(np.array(request.infer([images[i : i + 1]])[output]).reshape(-1))
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def cpu_info() -> dict:
    """CPU name and the ISA flags that decide INT8/bf16 speed; recorded with every benchmark."""
    name = core().get_property("CPU", "FULL_DEVICE_NAME")
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "avx_vnni"]
                flags = [f for f in wanted if f in present]
                break
    except OSError:
        pass
    return {"cpu": str(name), "isa": flags, "cores": _cores()}


def _cores() -> int:
    import os

    return os.cpu_count() or 0
