"""Reference: bare NNCF + OpenVINO INT8 speed-up for resnet18, with no edgeops code involved.

    python bench/bare_nncf.py [--seconds 3] [--out bench/bare_results.json]

torchvision resnet18 (random init, 1000 classes) -> ov.convert_model (f32 NCHW input, no
pre-processing) -> nncf.quantize (OpenVINO route, default preset, 64 synthetic calibration images)
-> p50 latency of batch-1 sync infer requests (LATENCY hint) for fp32@f32, fp32@default, int8.
The variants are measured round-robin in short slices so that drift hits all of them alike.
Writes the JSON atomically. `bench/run.py --with-bare` runs this and shows it beside its numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import nncf
import numpy as np
import openvino as ov
import torch
import torchvision

IMAGE_SIZE = 224
CALIBRATION_IMAGES = 64
SLICES = 5  # round-robin slices per variant


def calibration_data(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random images, normalized like ImageNet inputs: f32 NCHW (1, 3, 224, 224)."""
    rng = np.random.default_rng(seed)
    low = rng.random((n, 3, 7, 7)).astype(np.float32)
    images = torch.nn.functional.interpolate(torch.from_numpy(low), size=IMAGE_SIZE, mode="bilinear")
    noise = torch.from_numpy(rng.normal(0, 0.05, images.shape).astype(np.float32))
    x = ((images + noise).clamp(0, 1) - 0.45) / 0.226
    return [x[i : i + 1].numpy() for i in range(n)]


def latency_p50(requests: dict[str, ov.InferRequest], data: np.ndarray, seconds: float) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in requests}
    for request in requests.values():  # warm-up
        for _ in range(10):
            request.infer([data])
    for _ in range(SLICES):
        for name, request in requests.items():
            deadline = time.perf_counter() + seconds / SLICES
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                request.infer([data])
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: float(np.percentile(t, 50)) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per variant")
    parser.add_argument("--out", type=Path, default=Path("bench/bare_results.json"))
    args = parser.parse_args()

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=1000).eval()
    example = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        float_ir = ov.convert_model(model, example_input=example, input=[(1, 3, IMAGE_SIZE, IMAGE_SIZE)])
    print(f"bare: quantizing resnet18 with nncf {nncf.__version__} on {CALIBRATION_IMAGES} synthetic images")
    started = time.perf_counter()
    int8_ir = nncf.quantize(float_ir, nncf.Dataset(calibration_data(CALIBRATION_IMAGES)), subset_size=64)
    quantize_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(float_ir, f"{tmp}/fp32.xml", compress_to_fp16=False)
        ov.save_model(int8_ir, f"{tmp}/int8.xml")
        size_mb = {
            v: sum(Path(tmp, f"{v}.{x}").stat().st_size for x in ("xml", "bin")) / 1e6
            for v in ("fp32", "int8")
        }

    core = ov.Core()
    latency = {"PERFORMANCE_HINT": "LATENCY"}
    compiled = {
        "fp32@f32": core.compile_model(float_ir, "CPU", {**latency, "INFERENCE_PRECISION_HINT": "f32"}),
        "fp32@default": core.compile_model(float_ir, "CPU", latency),
        "int8@default": core.compile_model(int8_ir, "CPU", latency),
    }
    data = calibration_data(1, seed=1)[0]
    print(f"bare: measuring {', '.join(compiled)} ({args.seconds:g} s each, interleaved)")
    p50 = latency_p50({k: c.create_infer_request() for k, c in compiled.items()}, data, args.seconds)
    result = {
        "cpu": core.get_property("CPU", "FULL_DEVICE_NAME"),
        "openvino": ov.get_version(),
        "nncf": nncf.__version__,
        "model": "resnet18",
        "calibration": f"{CALIBRATION_IMAGES} synthetic smooth random images (random-init model)",
        "quantize_seconds": quantize_s,
        "latency_ms_p50": p50,
        "size_mb": size_mb,
        "int8_vs_fp32_f32": p50["fp32@f32"] / p50["int8@default"],
        "int8_vs_fp32_default": p50["fp32@default"] / p50["int8@default"],
    }
    for name, ms in p50.items():
        print(f"bare: {name:<13} p50 {ms:7.2f} ms")
    print(
        f"bare: INT8 vs fp32@f32 {result['int8_vs_fp32_f32']:.2f}x, "
        f"vs fp32@default {result['int8_vs_fp32_default']:.2f}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
