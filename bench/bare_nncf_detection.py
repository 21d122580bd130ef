"""Reference: bare NNCF + OpenVINO INT8 speed-up for edgeops' default detector, no edgeops pipeline code.

    python bench/bare_nncf_detection.py [--seconds 3] [--out bench/bare_detection_results.json]

Only the architecture comes from edgeops (`build_model("centernet", 3)`, the CenterNet-style detector,
random init with torch seed 0: the same weights bench/run.py builds). The network only: its raw output
(1, 3 + 4, 80, 80) at 320x320, without the box decoding the pipeline's IR appends (a user of the bare tools
would decode outside the model). Everything else is plain openvino / nncf: ov.convert_model (f32 NCHW
input, no pre-processing in the IR) -> nncf.quantize on the ov.Model (default settings) with an
nncf.Dataset of the same 64 smooth synthetic images bench/run.py calibrates with (the generator and the
measuring loop are imported from bare_nncf_segmentation.py; seed 0),
normalized here with numpy -> batch-1 sync infer requests (LATENCY hint) for fp32@f32, fp32@default and
int8@default, measured round-robin in short slices like bench/run.py (median of the per-slice p50s), so
drift and outside load hit the three alike. Writes the JSON atomically; `bench/run.py --with-bare` runs it.
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
import openvino as ov
import torch
from bare_nncf_segmentation import latency_p50, synthetic_images, to_input  # same data, same measuring

from edgeops.vision.detection.models import build_model  # the architecture only

MODEL = "centernet_det"
ARCH = "centernet"  # the detection task's defaults.model
IMAGE_SIZE = 320
NUM_CLASSES = 3
CALIBRATION_IMAGES = 64
SLICES = 6  # round-robin slices per variant (as bench/run.py's ROUNDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per variant")
    parser.add_argument("--out", type=Path, default=Path("bench/bare_detection_results.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = build_model(ARCH, NUM_CLASSES, pretrained=False).eval()
    example = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        float_ir = ov.convert_model(model, example_input=example, input=[(1, 3, IMAGE_SIZE, IMAGE_SIZE)])
    calibration = to_input(synthetic_images(CALIBRATION_IMAGES, IMAGE_SIZE, args.seed))
    print(
        f"bare: quantizing {MODEL} ({IMAGE_SIZE}x{IMAGE_SIZE}) with nncf {nncf.__version__} "
        f"on {CALIBRATION_IMAGES} synthetic images"
    )
    started = time.perf_counter()
    int8_ir = nncf.quantize(float_ir, nncf.Dataset(calibration), subset_size=CALIBRATION_IMAGES)
    quantize_s = time.perf_counter() - started
    print(f"bare: quantized in {quantize_s:.1f} s")
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
    data = to_input(synthetic_images(1, IMAGE_SIZE, args.seed + 1))[0]
    print(f"bare: measuring {', '.join(compiled)} ({args.seconds:g} s each, {SLICES} interleaved slices)")
    p50 = latency_p50({k: c.create_infer_request() for k, c in compiled.items()}, data, args.seconds)
    result = {
        "cpu": core.get_property("CPU", "FULL_DEVICE_NAME"),
        "openvino": ov.get_version(),
        "nncf": nncf.__version__,
        "model": MODEL,
        "image_size": IMAGE_SIZE,
        "arch": ARCH,
        "num_classes": NUM_CLASSES,
        "ir": "network only (raw heatmap + box channels), no box decoding",
        "calibration": f"{CALIBRATION_IMAGES} synthetic smooth random images, seed {args.seed} (random-init model)",
        "quantize_seconds": quantize_s,
        "latency_ms_p50": p50,
        "size_mb": size_mb,
        "int8_vs_fp32_f32": p50["fp32@f32"] / p50["int8@default"],
        "int8_vs_fp32_default": p50["fp32@default"] / p50["int8@default"],
    }
    for name, ms in p50.items():
        print(f"bare: {name:<13} p50 {ms:7.2f} ms")
    print(
        f"bare: {MODEL} INT8 vs fp32@f32 {result['int8_vs_fp32_f32']:.2f}x, "
        f"vs fp32@default {result['int8_vs_fp32_default']:.2f}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    tmp_out.write_text(json.dumps(result, indent=2))
    os.replace(tmp_out, args.out)


if __name__ == "__main__":
    main()
