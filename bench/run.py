"""`make bench`: FP32 / FP16 / INT8 on the real OpenVINO CPU runtime, as the pipeline builds them.

    python bench/run.py [--seconds 3] [--models resnet18,mobilenet_v3_small,unet_seg]
                        [--out bench/results.json] [--with-bare] [--keep-ir DIR]

Per model (batch 1, random init: fine for speed, meaningless for accuracy): classification models at
224x224 with 1000 classes, and `unet_seg`, the default segmentation model (edgeops' UNet, 2 classes) at
256x256. The pipeline's own code builds the IRs (u8 NHWC input, normalization inside): fp32, fp16 and ptq
(post-training INT8, calibrated on 64 seeded synthetic images), then each IR is measured with
INFERENCE_PRECISION_HINT=f32 and with the runtime default (bf16 on CPUs that have it):
p50/p90 latency (sync requests, LATENCY hint), throughput (async queue, THROUGHPUT hint), size.
All configurations of a model are measured round-robin in short slices, so drift and other load
on the machine hit them alike and the ratios are fair; absolute times vary from run to run.

Also shown, not re-measured: the demo pipeline's variants (metrics/variants/*.json, with accuracy),
the pipeline overhead (reports/pipeline_timing.json) and, with --with-bare, the references for the INT8
speed-up made with bare NNCF + OpenVINO calls: bench/bare_nncf.py (resnet18, when it is in --models) and
bench/bare_nncf_segmentation.py (the same UNet at 256x256, when unet_seg is in --models). Targets: resnet18
INT8 >= 3x fp32@f32; unet_seg INT8 >= 2.5x fp32@f32 (needs VNNI/AMX INT8 instructions) and the pipeline's
unet_seg speed-up >= 0.9x the bare script's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 224
NUM_CLASSES = 1000
CALIBRATION_IMAGES = 64
ROUNDS = 6  # round-robin slices per configuration (more, shorter slices: robust to bursts of outside load)
MIN_SLICE_ITERATIONS = 3  # per latency slice, whatever its length
WARMUP_ITERATIONS = 5  # per compiled model, before the first slice
HINTS: tuple[str, ...] = ("f32", "default")
VARIANTS: tuple[str, ...] = ("fp32", "fp16", "ptq")
INT8_VARIANTS: tuple[str, ...] = ("ptq", "int8")  # what counts as "the INT8 variant" in a model's rows
SPEEDUP_TARGET = 3.0
OVERHEAD_TARGET = 0.15
SEG_MODEL = "unet_seg"  # the default segmentation model, as --models spells it
SEG_ARCH = "unet"
SEG_IMAGE_SIZE = 256
SEG_LABELS: tuple[str, ...] = ("background", "foreground")
SEG_SPEEDUP_TARGET = 2.5  # INT8 vs fp32@f32
SEG_VS_BARE_TARGET = 0.9  # the pipeline's INT8 speed-up over the bare script's
DEFAULT_MODELS = f"resnet18,mobilenet_v3_small,{SEG_MODEL}"
# the instructions that make CPU INT8 convolutions fast (VNNI dot products, AMX tiles)
INT8_DOT_ISA: tuple[str, ...] = ("avx512_vnni", "avx_vnni", "amx_int8")

Row = dict[str, Any]


@dataclass(frozen=True)
class ModelSpec:
    task: str  # edgeops vision task name
    arch: str  # the task's build_model name
    image_size: int
    labels: tuple[str, ...]


def model_spec(name: str) -> ModelSpec:
    """What --models NAME builds: unet_seg is the segmentation UNet, anything else a classifier."""
    if name == SEG_MODEL:
        return ModelSpec("segmentation", SEG_ARCH, SEG_IMAGE_SIZE, SEG_LABELS)
    return ModelSpec("classification", name, IMAGE_SIZE, tuple(f"class_{i}" for i in range(NUM_CLASSES)))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- rows, ratios, table (pure logic)


def make_row(
    model: str,
    variant: str,
    precision_hint: str,
    latency_ms_p50: float | None,
    latency_ms_p90: float | None = None,
    throughput_fps: float | None = None,
    size_mb: float | None = None,
    accuracy: float | None = None,
    source: str = "measured",
) -> Row:
    return {
        "model": model,
        "variant": variant,
        "precision_hint": precision_hint,
        "latency_ms_p50": latency_ms_p50,
        "latency_ms_p90": latency_ms_p90,
        "throughput_fps": throughput_fps,
        "size_mb": size_mb,
        "accuracy": accuracy,
        "source": source,
    }


def combine_rounds(latencies: list[dict], fps: list[float]) -> dict[str, float]:
    """Median of the per-round p50/p90/fps: robust to one slice hit by outside load."""

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    return {
        "latency_ms_p50": median([x["latency_ms_p50"] for x in latencies]),
        "latency_ms_p90": median([x["latency_ms_p90"] for x in latencies]),
        "throughput_fps": median(fps),
    }


def _p50(rows: list[Row], model: str, variants: Iterable[str], hint: str) -> float | None:
    for variant in variants:
        for row in rows:
            if (row["model"], row["variant"], row["precision_hint"]) == (model, variant, hint):
                return row["latency_ms_p50"]
    return None


def _size(rows: list[Row], model: str, variants: Iterable[str]) -> float | None:
    for variant in variants:
        for row in rows:
            if (row["model"], row["variant"]) == (model, variant) and row["size_mb"]:
                return row["size_mb"]
    return None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def speedups(rows: list[Row]) -> dict[str, dict[str, float | None]]:
    """Per model: fp32 p50 (at f32 / at the default hint) over INT8 p50 at the default hint (as the
    edge agent runs it), and fp32 size over INT8 size. Models without an INT8 row are left out."""
    result: dict[str, dict[str, float | None]] = {}
    for model in dict.fromkeys(row["model"] for row in rows):
        int8 = _p50(rows, model, INT8_VARIANTS, "default")
        if int8 is None:
            continue
        result[model] = {
            "int8_vs_fp32_f32": _ratio(_p50(rows, model, ["fp32"], "f32"), int8),
            "int8_vs_fp32_default": _ratio(_p50(rows, model, ["fp32"], "default"), int8),
            "size_ratio_fp32_over_int8": _ratio(
                _size(rows, model, ["fp32"]), _size(rows, model, INT8_VARIANTS)
            ),
        }
    return result


def segmentation_summary(ratios: dict[str, dict[str, float | None]]) -> dict[str, Any]:
    """unet_seg's INT8 speed-up vs fp32@f32 through the pipeline and in the bare script, and their ratio."""
    pipeline = ratios.get(SEG_MODEL, {}).get("int8_vs_fp32_f32")
    bare = ratios.get(SEG_BARE_MODEL, {}).get("int8_vs_fp32_f32")
    return {
        "model": SEG_MODEL,
        "image_size": SEG_IMAGE_SIZE,
        "pipeline_int8_vs_f32": pipeline,
        "bare_int8_vs_f32": bare,
        "pipeline_over_bare": _ratio(pipeline, bare),
    }


def int8_isa_note(isa: Iterable[str]) -> str:
    """Why (or why not) the CPU can be expected to run INT8 convolutions much faster than f32."""
    flags = list(isa)
    have = [f for f in INT8_DOT_ISA if f in flags]
    shown = " ".join(flags) or "none of the recorded flags"
    if have:
        return f"CPU ISA: {shown}; INT8 dot-product instructions present ({', '.join(have)})"
    return (
        f"CPU ISA: {shown}; no VNNI/AMX ({', '.join(INT8_DOT_ISA)} all absent): INT8 convolutions run on plain "
        "AVX2 multiply-adds, so a large INT8 speed-up is not reachable on this CPU"
    )


def targets(
    ratios: dict[str, dict[str, float | None]], timing: dict | None, isa: Iterable[str] | None = None
) -> dict[str, dict]:
    measured = ratios.get("resnet18", {}).get("int8_vs_fp32_f32")
    result: dict[str, dict] = {
        "resnet18_int8_vs_f32": {
            "target": SPEEDUP_TARGET,
            "measured": measured,
            "met": measured is not None and measured >= SPEEDUP_TARGET,
        }
    }
    if timing is None:
        result["pipeline_overhead"] = {"target": OVERHEAD_TARGET, "measured": None, "met": None}
    else:
        fraction = timing.get("overhead_fraction")
        result["pipeline_overhead"] = {
            "target": OVERHEAD_TARGET,
            "measured": fraction,
            "met": fraction is not None and fraction <= OVERHEAD_TARGET,
            "wall_seconds": timing.get("wall_seconds"),
            "work_seconds": timing.get("work_seconds"),
            "stages_run": timing.get("stages_run"),
        }
    seg = segmentation_summary(ratios)
    speedup = seg["pipeline_int8_vs_f32"]
    result["unet_seg_int8_vs_f32"] = {
        "target": SEG_SPEEDUP_TARGET,
        "measured": speedup,
        "met": None if speedup is None else speedup >= SEG_SPEEDUP_TARGET,
        "image_size": SEG_IMAGE_SIZE,
        "isa": None if isa is None else list(isa),
        "int8_dot_isa": None if isa is None else [f for f in INT8_DOT_ISA if f in isa],
    }
    vs_bare = seg["pipeline_over_bare"]
    result["unet_seg_pipeline_vs_bare"] = {
        "target": SEG_VS_BARE_TARGET,
        "measured": vs_bare,
        "met": None if vs_bare is None else vs_bare >= SEG_VS_BARE_TARGET,
        "pipeline_int8_vs_f32": speedup,
        "bare_int8_vs_f32": seg["bare_int8_vs_f32"],
    }
    return result


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(rows: list[Row]) -> str:
    header = ["model", "variant", "hint", "p50 ms", "p90 ms", "fps", "size MB", "accuracy", "source"]
    body = [
        [
            row["model"],
            row["variant"],
            row["precision_hint"],
            _fmt(row["latency_ms_p50"], 3 if (row["latency_ms_p50"] or 0) < 1 else 2),
            _fmt(row["latency_ms_p90"], 3 if (row["latency_ms_p90"] or 0) < 1 else 2),
            _fmt(row["throughput_fps"], 0),
            _fmt(row["size_mb"], 2),
            _fmt(row["accuracy"], 4),
            row.get("source", ""),
        ]
        for row in rows
    ]
    return _grid(header, body)


def format_speedups(ratios: dict[str, dict[str, float | None]]) -> str:
    header = ["model", "INT8 vs fp32@f32", "INT8 vs fp32@default", "size fp32/INT8"]
    body = [
        [
            model,
            _fmt(r["int8_vs_fp32_f32"]) + "x" if r["int8_vs_fp32_f32"] else "-",
            _fmt(r["int8_vs_fp32_default"]) + "x" if r["int8_vs_fp32_default"] else "-",
            _fmt(r["size_ratio_fp32_over_int8"]) + "x" if r["size_ratio_fp32_over_int8"] else "-",
        ]
        for model, r in ratios.items()
    ]
    return _grid(header, body)


def format_segmentation(seg: dict[str, Any]) -> str:
    def times(value: float | None) -> str:
        return _fmt(value) + "x" if value else "-"

    header = ["segmentation", "pipeline INT8 vs fp32@f32", "bare INT8 vs fp32@f32", "pipeline/bare"]
    body = [
        [
            f"{seg['model']} {seg['image_size']}px",
            times(seg["pipeline_int8_vs_f32"]),
            times(seg["bare_int8_vs_f32"]),
            _fmt(seg["pipeline_over_bare"]),
        ]
    ]
    return _grid(header, body)


def _grid(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = (c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in pairs)
        return "  ".join(padded)

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


def verdict(target_rows: dict[str, dict], ratios: dict[str, dict[str, float | None]]) -> list[str]:
    lines = []
    speed = target_rows["resnet18_int8_vs_f32"]
    if speed["measured"] is None:
        lines.append("resnet18 INT8 vs fp32@f32: not measured in this run")
    else:
        status = "MET" if speed["met"] else "NOT MET"
        lines.append(
            f"resnet18 INT8 vs fp32@f32: {speed['measured']:.2f}x "
            f"(target >= {speed['target']:.1f}x): {status}"
        )
        bare = ratios.get(BARE_MODEL, {}).get("int8_vs_fp32_f32")
        if bare is not None:
            lines.append(f"  bare NNCF + OpenVINO on the same machine: {bare:.2f}x (reference)")
    overhead = target_rows["pipeline_overhead"]
    if overhead["measured"] is None:
        lines.append("pipeline overhead: no reports/pipeline_timing.json (run the Prefect flow first)")
    else:
        status = "MET" if overhead["met"] else "NOT MET"
        stages = overhead.get("stages_run") or []
        ran = ", ".join(stages) if 0 < len(stages) <= 3 else str(len(stages))
        lines.append(
            f"pipeline overhead: {overhead['measured']:.1%} of {overhead['wall_seconds']:.1f} s edgeops-run wall "
            f"time, {overhead.get('work_seconds') or 0:.1f} s stage work (target <= {overhead['target']:.0%}): "
            f"{status}; stages that did work: {ran}"
        )
        if overhead["measured"] > OVERHEAD_TARGET and (overhead.get("work_seconds") or 0) < 10:
            lines.append(
                f"  only {overhead.get('work_seconds') or 0:.1f} s of stage work in that flow run (mostly "
                "cached): the flow's fixed cost dominates; judge the target on a run that rebuilds stages"
            )
    return lines + segmentation_verdict(target_rows)


def segmentation_verdict(target_rows: dict[str, dict]) -> list[str]:
    lines = []
    speed = target_rows.get("unet_seg_int8_vs_f32")
    if speed is not None:
        name = f"{SEG_MODEL} ({speed.get('image_size', SEG_IMAGE_SIZE)}px) INT8 vs fp32@f32"
        if speed["measured"] is None:
            lines.append(f"{name}: not measured in this run")
        else:
            status = "MET" if speed["met"] else "NOT MET"
            lines.append(f"{name}: {speed['measured']:.2f}x (target >= {speed['target']:.1f}x): {status}")
            if speed.get("isa") is not None:
                lines.append(f"  {int8_isa_note(speed['isa'])}")
    vs_bare = target_rows.get("unet_seg_pipeline_vs_bare")
    if vs_bare is not None:
        name = f"{SEG_MODEL} INT8 speed-up, pipeline / bare NNCF + OpenVINO"
        if vs_bare["measured"] is None:
            why = "bare script not run (--with-bare)" if vs_bare["pipeline_int8_vs_f32"] else "not measured"
            lines.append(f"{name}: {why} in this run")
        else:
            status = "MET" if vs_bare["met"] else "NOT MET"
            lines.append(
                f"{name}: {vs_bare['pipeline_int8_vs_f32']:.2f}x / {vs_bare['bare_int8_vs_f32']:.2f}x = "
                f"{vs_bare['measured']:.2f} (target >= {vs_bare['target']:.1f}): {status}"
            )
    return lines


# ---------------------------------------------------------------- inputs that are read, not measured


def demo_model_name(params_path: Path) -> str:
    try:
        import yaml

        params = yaml.safe_load(params_path.read_text())
        return f"{params['train']['model']} (demo, {params['data']['image_size']}px)"
    except (OSError, KeyError, TypeError, ImportError):
        return "small_cnn (demo)"


def demo_rows(variants_dir: Path, model: str) -> list[Row]:
    """The demo pipeline's evaluate@<variant> results: latency per hint + test accuracy."""
    rows = []
    for path in sorted(variants_dir.glob("*.json")):
        metrics = json.loads(path.read_text())
        if metrics.get("status", "ok") != "ok":
            continue
        for hint in HINTS:
            bench = metrics.get("benchmark", {}).get(hint)
            if not bench:
                continue
            rows.append(
                make_row(
                    model,
                    metrics.get("variant", path.stem),
                    hint,
                    bench.get("latency_ms_p50"),
                    bench.get("latency_ms_p90"),
                    bench.get("throughput_fps"),
                    bench.get("size_mb", metrics.get("size_mb")),
                    metrics.get("accuracy") if hint == "default" else metrics.get("accuracy_f32"),
                    source="pipeline metrics",
                )
            )
    return rows


BARE_MODEL = "resnet18 (bare nncf)"
SEG_BARE_MODEL = f"{SEG_MODEL} (bare nncf)"
BARE_SCRIPTS: dict[str, tuple[str, str]] = {  # --models name -> (script in bench/, row model name)
    "resnet18": ("bare_nncf.py", BARE_MODEL),
    SEG_MODEL: ("bare_nncf_segmentation.py", SEG_BARE_MODEL),
}
BARE_CALIBRATION: dict[str, str] = {
    "resnet18": "its own 64 synthetic images",
    SEG_MODEL: f"the same {CALIBRATION_IMAGES} synthetic images and seed as the pipeline's ptq",
}


def bare_rows(bare: dict, model: str = BARE_MODEL, source: str = "bare_nncf.py") -> list[Row]:
    p50, size = bare["latency_ms_p50"], bare.get("size_mb", {})
    rows = []
    for variant, hint in [("fp32", "f32"), ("fp32", "default"), ("int8", "default")]:
        row = make_row(model, variant, hint, p50[f"{variant}@{hint}"], size_mb=size.get(variant))
        rows.append({**row, "source": source})
    return rows


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- measuring


def synthetic_images(n: int, size: int, seed: int) -> Any:
    """Smooth random u8 NHWC RGB images (bilinear-upsampled 7x7 noise + a little grain)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    low = torch.from_numpy(rng.random((n, 3, 7, 7), dtype=np.float32))
    smooth = torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False).numpy()
    pixels = smooth * 255 + rng.normal(0, 8, smooth.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()


def build_irs(model_name: str, work: Path, seed: int) -> dict[str, Path]:
    """fp32 / fp16 / ptq model folders made by the pipeline's own functions."""
    import numpy as np
    import torch

    from edgeops.config import PtqConfig
    from edgeops.pipeline import compress
    from edgeops.pipeline.export import write_model_dir
    from edgeops.vision import Split, get_task

    spec = model_spec(model_name)
    size = spec.image_size
    torch.manual_seed(seed)
    task = get_task(spec.task)
    model = task.build_model(spec.arch, len(spec.labels), pretrained=False).eval()
    # ptq reads only the images; targets are placeholders of the task's shape (class ids / label maps)
    target_shape = (CALIBRATION_IMAGES, size, size) if spec.task == "segmentation" else (CALIBRATION_IMAGES,)
    calibration = Split(
        images=synthetic_images(CALIBRATION_IMAGES, size, seed),
        targets=np.zeros(target_shape, dtype=np.int64),
    )
    builders: dict[str, Callable[[], compress.Compressed]] = {
        "fp32": lambda: compress.fp32(model, size, task),
        "fp16": lambda: compress.fp16(model, size, task),
        "ptq": lambda: compress.ptq(
            model,
            size,
            calibration,
            PtqConfig(subset_size=CALIBRATION_IMAGES),
            seed,
            lambda m: log(f"{model_name}: {m}"),
            task,
        ),
    }
    dirs = {}
    for variant, build in builders.items():
        started = time.perf_counter()
        result = build()
        meta = {
            "task": spec.task,
            "variant": variant,
            "precision": result.precision,
            "labels": list(spec.labels),
            "compression": result.details,
        }
        dirs[variant] = work / model_name / variant
        write_model_dir(result.model, dirs[variant], meta, compress_to_fp16=result.compress_to_fp16)
        log(f"{model_name}: built {variant} IR in {time.perf_counter() - started:.1f} s")
    return dirs


def measure_model(model_name: str, dirs: dict[str, Path], seconds: float) -> list[Row]:
    """Every (variant, hint) of one model, round-robin in ROUNDS slices of seconds/ROUNDS each."""
    import numpy as np

    from edgeops.pipeline.benchmark import latency_slice, measure_throughput, size_mb
    from edgeops.runtime import compile_model

    configs = [(variant, hint) for variant in dirs for hint in HINTS]
    latencies: dict[tuple[str, str], list[dict]] = {c: [] for c in configs}
    fps: dict[tuple[str, str], list[float]] = {c: [] for c in configs}
    slice_s = seconds / ROUNDS
    for performance_hint in ("LATENCY", "THROUGHPUT"):
        compiled = {
            (v, h): compile_model(dirs[v], None if h == "default" else h, performance_hint)
            for v, h in configs
        }
        log(
            f"{model_name}: {performance_hint.lower()}: {len(configs)} configurations "
            f"x {ROUNDS} rounds x {slice_s:.1f} s"
        )
        requests = {}
        if performance_hint == "LATENCY":
            for config, model in compiled.items():
                shape = [int(d) for d in model.input(0).get_shape()]
                data = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)  # u8 NHWC
                requests[config] = (model.create_infer_request(), data)
                for _ in range(WARMUP_ITERATIONS):
                    requests[config][0].infer([data])
        for _ in range(ROUNDS):
            for config, model in compiled.items():
                if performance_hint == "LATENCY":
                    latencies[config].append(latency_slice(*requests[config], slice_s, MIN_SLICE_ITERATIONS))
                else:
                    fps[config].append(measure_throughput(model, slice_s))
        del compiled, requests
    rows = []
    for variant, hint in configs:
        stats = combine_rounds(latencies[(variant, hint)], fps[(variant, hint)])
        p50, p90, throughput = stats["latency_ms_p50"], stats["latency_ms_p90"], stats["throughput_fps"]
        rows.append(make_row(model_name, variant, hint, p50, p90, throughput, size_mb(dirs[variant])))
        log(
            f"{model_name}: {variant:<5} @{hint:<7} p50 {stats['latency_ms_p50']:7.2f} ms  "
            f"p90 {stats['latency_ms_p90']:7.2f} ms  {stats['throughput_fps']:7.1f} fps"
        )
    return rows


def run_bare(
    seconds: float, out: Path, script: str = "bare_nncf.py", extra: list[str] | None = None
) -> dict | None:
    log(f"bare: running bench/{script} (plain NNCF + OpenVINO, no edgeops pipeline code)")
    cmd = [
        sys.executable,
        str(ROOT / "bench" / script),
        "--seconds",
        str(seconds),
        "--out",
        str(out),
        *(extra or []),
    ]
    tail: list[str] = []
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:  # stream its progress lines; keep the rest for an error report
            if line.startswith("bare:"):
                log(line.rstrip())
            tail = [*tail[-40:], line.rstrip()]
    if proc.returncode != 0:
        log(f"bare: bench/{script} FAILED (exit {proc.returncode}):\n" + "\n".join(tail))
        return None
    return read_json(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark FP32/FP16/INT8 IRs on the OpenVINO CPU runtime")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="measuring time per configuration and mode"
    )
    parser.add_argument(
        "--models",
        default=DEFAULT_MODELS,
        help=f"comma-separated; classification model names, or {SEG_MODEL} for the segmentation UNet at "
        f"{SEG_IMAGE_SIZE}px (default {DEFAULT_MODELS})",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument(
        "--with-bare",
        action="store_true",
        help="also run the bare NNCF + OpenVINO references: bench/bare_nncf.py (with resnet18) and "
        f"bench/bare_nncf_segmentation.py (with {SEG_MODEL})",
    )
    parser.add_argument(
        "--keep-ir", type=Path, default=None, help="keep the IR folders here (e.g. for benchmark_app)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from edgeops.runtime import cpu_info

    started = time.perf_counter()
    hardware = cpu_info()
    load_before = os.getloadavg()
    log(
        f"cpu: {hardware['cpu']} ({hardware['cores']} cores; {' '.join(hardware['isa'])}); "
        f"load {load_before[0]:.2f}"
    )
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="edgeops-bench-") as tmp:
        work = args.keep_ir or Path(tmp)
        for model_name in models:
            rows += measure_model(model_name, build_irs(model_name, work, args.seed), args.seconds)

    notes = []
    if any(model_spec(m).task == "classification" for m in models):
        notes.append(
            f"classification: {IMAGE_SIZE}x{IMAGE_SIZE}, {NUM_CLASSES} classes, batch 1, random-init torchvision "
            "models (speed only); IRs built by edgeops (u8 NHWC input, normalization inside the IR)"
        )
    if SEG_MODEL in models:
        notes.append(
            f"{SEG_MODEL}: edgeops' segmentation UNet ({len(SEG_LABELS)} classes), {SEG_IMAGE_SIZE}x{SEG_IMAGE_SIZE}, "
            "batch 1, random init (speed only); IRs built by edgeops like the classifiers'"
        )
    notes += [
        f"ptq = post-training INT8 (NNCF, preset performance) calibrated on {CALIBRATION_IMAGES} seeded "
        "synthetic smooth random images, not real data",
        "hint f32 = INFERENCE_PRECISION_HINT=f32; default = no hint (bf16 on CPUs with bf16)",
        "latency: sync requests, LATENCY hint; throughput: async queue, THROUGHPUT hint; per configuration "
        f"the median of {ROUNDS} round-robin slices of {args.seconds / ROUNDS:.1f} s",
        "speed-ups: fp32 p50 over INT8 p50 at the default hint (how the edge agent runs it); compare ratios, "
        "absolute times vary from run to run",
    ]
    demo = demo_rows(ROOT / "metrics" / "variants", demo_model_name(ROOT / "params.yaml"))
    if demo:
        rows += demo
        notes.append("demo rows: read from metrics/variants/*.json (pipeline run, not re-measured here)")
    if args.with_bare:
        for model_name, (script, bare_model) in BARE_SCRIPTS.items():
            if model_name not in models:
                continue
            out = args.out.with_name(
                "bare_results.json" if model_name == "resnet18" else f"bare_{model_name}.json"
            )
            # the segmentation reference builds the same weights and calibration images: same seed
            extra = ["--seed", str(args.seed)] if model_name == SEG_MODEL else []
            bare = run_bare(args.seconds, out, script, extra)
            if bare:
                rows += bare_rows(bare, bare_model, script)
                notes.append(
                    f"{bare_model} rows: bench/{script}, plain NNCF + OpenVINO (nncf.quantize defaults, "
                    f"{BARE_CALIBRATION[model_name]}), f32 NCHW input, no pre-processing; measured in its own "
                    "process, so compare its speed-up (a ratio within that run), not its absolute times"
                )
    load_after = os.getloadavg()
    if max(load_before[0], load_after[0]) > hardware["cores"]:
        notes.append(
            f"machine was busy (1-min load {load_before[0]:.1f} -> {load_after[0]:.1f} on "
            f"{hardware['cores']} cores): absolute times are inflated; the interleaved ratios are the result"
        )

    ratios = speedups(rows)
    timing = read_json(ROOT / "reports" / "pipeline_timing.json")
    target_rows = targets(ratios, timing, hardware["isa"])
    segmentation = segmentation_summary(ratios)
    result = {
        "cpu": hardware["cpu"],
        "isa": hardware["isa"],
        "cores": hardware["cores"],
        "rows": rows,
        "speedups": ratios,
        "segmentation": segmentation,
        "targets": target_rows,
        "notes": notes,
        "seconds": args.seconds,
        "load_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "wall_seconds": time.perf_counter() - started,
    }
    write_json_atomic(args.out, result)
    print()
    print(format_table(rows))
    print()
    print(format_speedups(ratios))
    print()
    if SEG_MODEL in models:
        print(format_segmentation(segmentation))
        print()
    for line in verdict(target_rows, ratios):
        print(line)
    for note in notes:
        print(f"note: {note}")
    log(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
