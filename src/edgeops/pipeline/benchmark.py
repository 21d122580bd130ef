"""Latency and throughput on the real OpenVINO CPU runtime, per precision hint."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import openvino as ov

from edgeops.runtime import compile_model

# "default" = no INFERENCE_PRECISION_HINT: the runtime picks (bf16 on CPUs with bf16 support).
PRECISION_HINTS: dict[str, str | None] = {"f32": "f32", "default": None}


def size_mb(model_dir: str | Path) -> float:
    model_dir = Path(model_dir)
    return sum((model_dir / f).stat().st_size for f in ("model.xml", "model.bin")) / 1e6


def _input_like(compiled: ov.CompiledModel, seed: int = 0) -> np.ndarray:
    shape = [int(d) for d in compiled.input(0).get_shape()]
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def latency_slice(request: ov.InferRequest, data: np.ndarray, seconds: float, min_iterations: int) -> dict:
    """Batch-1 synchronous requests for about `seconds` (at least min_iterations); p50/p90 in ms."""
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < min_iterations:
        start = time.perf_counter()
        request.infer([data])
        times.append((time.perf_counter() - start) * 1000)
    return {
        "latency_ms_p50": float(np.percentile(times, 50)),
        "latency_ms_p90": float(np.percentile(times, 90)),
        "iterations": len(times),
    }


def measure_latency(
    compiled: ov.CompiledModel, seconds: float, warmup: int, min_iterations: int = 20
) -> dict:
    """`warmup` requests, then a latency slice of about `seconds` on a fresh infer request."""
    request = compiled.create_infer_request()
    data = _input_like(compiled)
    for _ in range(warmup):
        request.infer([data])
    return latency_slice(request, data, seconds, min_iterations)


def measure_throughput(compiled: ov.CompiledModel, seconds: float) -> float:
    """Frames per second with as many parallel requests as the runtime finds optimal."""
    data = _input_like(compiled)
    queue = ov.AsyncInferQueue(compiled, 0)  # 0 = OPTIMAL_NUMBER_OF_INFER_REQUESTS
    for _ in range(len(queue)):
        queue.start_async([data])
    queue.wait_all()
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        queue.start_async([data])
        done += 1
    queue.wait_all()
    return done / (time.perf_counter() - start)


def benchmark_model_dir(
    model_dir: str | Path, seconds: float = 1.0, warmup: int = 10, rounds: int = 3
) -> list[dict]:
    """One row per precision hint: latency (LATENCY hint) and throughput (THROUGHPUT hint).

    The hints are measured in alternating short rounds and the medians kept, so a burst of other
    load on the machine hits both alike instead of skewing one."""
    latency_models = {
        name: compile_model(model_dir, hint, "LATENCY") for name, hint in PRECISION_HINTS.items()
    }
    fps_models = {
        name: compile_model(model_dir, hint, "THROUGHPUT") for name, hint in PRECISION_HINTS.items()
    }
    slice_seconds = seconds / rounds
    latencies: dict[str, list[dict]] = {name: [] for name in PRECISION_HINTS}
    fps: dict[str, list[float]] = {name: [] for name in PRECISION_HINTS}
    for round_index in range(rounds):
        for name in PRECISION_HINTS:
            # warm up once per compiled model; a slice needs a few requests, not many (a 30 ms model
            # would otherwise stretch every slice far beyond its share of `seconds`)
            first = round_index == 0
            latencies[name].append(
                measure_latency(latency_models[name], slice_seconds, warmup if first else 1, min_iterations=5)
            )
            fps[name].append(measure_throughput(fps_models[name], slice_seconds))
    rows = []
    for name in PRECISION_HINTS:
        rows.append(
            {
                "precision_hint": name,
                "latency_ms_p50": float(np.median([r["latency_ms_p50"] for r in latencies[name]])),
                "latency_ms_p90": float(np.median([r["latency_ms_p90"] for r in latencies[name]])),
                "iterations": sum(r["iterations"] for r in latencies[name]),
                "throughput_fps": float(np.median(fps[name])),
                "size_mb": size_mb(model_dir),
            }
        )
    return rows
