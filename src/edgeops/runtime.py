"""OpenVINO runtime helpers shared by evaluation, benchmarks and `edgeops predict` (no torch here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

_core: ov.Core | None = None


def core() -> ov.Core:
    global _core
    if _core is None:
        _core = ov.Core()
    return _core


def compile_model(
    model_dir: str | Path, precision_hint: str | None = None, performance_hint: str = "LATENCY"
) -> ov.CompiledModel:
    """precision_hint: None = the runtime default (bf16 on CPUs that have it), or e.g. 'f32'."""
    config: dict[str, str] = {"PERFORMANCE_HINT": performance_hint}
    if precision_hint:
        config["INFERENCE_PRECISION_HINT"] = precision_hint
    return core().compile_model(Path(model_dir) / "model.xml", "CPU", config)


# What an IR returns for a batch: its one output, or a tuple of its outputs in IR order (detection: boxes, labels)
Raw = np.ndarray | tuple[np.ndarray, ...]


def outputs_of(result: Any, compiled: ov.CompiledModel) -> Raw:
    """A compiled model's result (OVDict) as Raw: a copy, safe to keep after the next inference."""
    arrays = tuple(np.array(result[output], copy=True) for output in compiled.outputs)
    return arrays[0] if len(arrays) == 1 else arrays


def predict_all(
    compiled: ov.CompiledModel, images: np.ndarray, decode: Callable[[Raw], np.ndarray]
) -> np.ndarray:
    """Runs u8 NHWC images one at a time (the IR has batch 1); `decode` (a task's decode_output) turns
    each raw output into its prediction right away, so large outputs (score maps) are not all kept."""
    request = compiled.create_infer_request()
    rows = [decode(outputs_of(request.infer([images[i : i + 1]]), compiled))[0] for i in range(len(images))]
    return np.stack(rows) if rows else np.zeros((0,), np.int64)


def raw_output(compiled: ov.CompiledModel, image: np.ndarray) -> Raw:
    """The outputs of one u8 HxWx3 image, as the IR returns them (batch 1)."""
    return outputs_of(compiled([image[None]]), compiled)


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
