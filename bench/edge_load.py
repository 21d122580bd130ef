"""Small, bounded load test of `edgeops edge serve` on loopback.

Measures, on the same model and the same image:
  direct infer    compiled OpenVINO model, preprocessed input (the floor)
  direct predict  decode + resize + infer + softmax in-process (what the server does per request)
  server          HTTP POST /predict (raw image body) over a keep-alive connection, sequential
  server multipart the same with a multipart/form-data upload
  server xN       N concurrent clients: requests/s
and, during the concurrent phase, publishes + syncs a new version so the server hot-swaps:
every request must still succeed.

    python bench/edge_load.py [--model-dir models/selected] [--requests 300] [--concurrency 4]

Without --model-dir it uses models/selected (if exported) or a synthetic small CNN of the demo's
shape (u8 NHWC 32x32x3 → 3 convs → 10 classes). Writes bench/edge_results.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from edgeops.edge import agent, inference  # noqa: E402
from edgeops.edge.publish import publish, sha256_file  # noqa: E402
from edgeops.edge.targets import open_target  # noqa: E402


def synthetic_model(folder: Path, size: int = 32, classes: int = 10) -> Path:
    """A small CNN with random weights and a model.json (for machines without a pipeline run)."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    param = ops.parameter([1, size, size, 3], ov.Type.u8, name="image")
    x = ops.convert(param, ov.Type.f32)
    x = ops.multiply(x, ops.constant(np.array(1 / 255, dtype=np.float32)))
    x = ops.transpose(x, ops.constant(np.array([0, 3, 1, 2], dtype=np.int64)))
    channels = 3
    for out, stride in ((16, 1), (32, 2), (64, 2)):
        w = ops.constant((rng.standard_normal((out, channels, 3, 3)) * 0.1).astype(np.float32))
        x = ops.relu(ops.convolution(x, w, [stride, stride], [1, 1], [1, 1], [1, 1]))
        channels = out
    x = ops.reduce_mean(x, ops.constant(np.array([2, 3], dtype=np.int64)), keep_dims=False)
    logits = ops.matmul(
        x, ops.constant(rng.standard_normal((channels, classes)).astype(np.float32)), False, False
    )
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.Model([logits], [param], "synthetic_small_cnn"), str(folder / "model.xml"))
    meta = {
        "task": "classification",
        "labels": [f"class_{i}" for i in range(classes)],
        "input": {
            "name": "image",
            "shape": [1, size, size, 3],
            "layout": "NHWC",
            "element_type": "u8",
            "color": "RGB",
        },
        "precision": "FP32",
        "variant": "synthetic",
        "metrics": {"accuracy": 0.0},
        "files": {n: sha256_file(folder / n) for n in ("model.xml", "model.bin")},
        "mlflow_run_id": None,
        "dataset_fingerprint": None,
        "git_commit": None,
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2))
    return folder


def test_image(size: int = 64) -> bytes:
    from PIL import Image

    arr = np.random.default_rng(1).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def stats(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def timed(fn: Any, n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name") and not model.strip():
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = [
                    f
                    for f in line.split(":", 1)[1].split()
                    if f in {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"}
                ]
                break
    except OSError:
        pass
    return {"cpu": model, "isa": flags, "cores": os.cpu_count()}


def start_server(agent_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "EDGEOPS_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-m", "edgeops.edge.cli", "serve", "--dir", str(agent_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_healthy(client: Any, url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if client.get(f"{url}/health").status_code == 200:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("edge serve did not become healthy")


def concurrent_phase(
    url: str, image: bytes, total: int, workers: int, deadline_s: float, swap: Any
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    failures: list[str] = []
    versions: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))
    end = time.monotonic() + deadline_s

    def worker() -> None:
        with httpx.Client(timeout=30) as c:
            while time.monotonic() < end:
                with lock:
                    if next(counter, None) is None:
                        return
                t = time.perf_counter()
                try:
                    r = c.post(f"{url}/predict", content=image, headers={"content-type": "image/png"})
                    ok, body = r.status_code == 200, r.json()
                except Exception as e:  # any transport error counts as a failed request
                    ok, body = False, {"detail": repr(e)}
                dt = time.perf_counter() - t
                with lock:
                    if ok:
                        latencies.append(dt)
                        versions[body["version"]] = versions.get(body["version"], 0) + 1
                    else:
                        failures.append(str(body.get("detail")))

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    swap_info = swap()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "requests": len(latencies) + len(failures),
        "failures": len(failures),
        "failure_samples": failures[:5],
        "rps": round(len(latencies) / wall, 1),
        "versions_served": versions,
        "swap": swap_info,
        **stats(latencies),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--requests", type=int, default=300, help="per sequential phase (bounded)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=60, help="hard bound for the concurrent phase")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "edge_results.json")
    args = ap.parse_args()
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="edgeops-bench-"))
    proc = None
    try:
        model_dir = args.model_dir or (ROOT / "models" / "selected")
        if (model_dir / "model.xml").is_file():
            meta = json.loads((model_dir / "model.json").read_text())
            source = f"{model_dir.name} ({meta.get('variant')}, {meta.get('precision')})"
        else:
            model_dir, source = (
                synthetic_model(tmp / "model"),
                "synthetic small CNN (no exported model found)",
            )
        store = open_target(f"file://{tmp}/target")
        publish(model_dir, store, "bench", "1", "production")
        agent_dir = tmp / "agent"
        agent.sync(store, "bench", "production", agent_dir)
        image = test_image()

        model = inference.load_current(agent_dir)
        batch, _ = model.preprocess(image)
        direct_infer = stats(timed(lambda: model.infer(batch), args.requests))
        direct_predict = stats(timed(lambda: model.predict_bytes(image), args.requests))

        port = free_port()
        proc = start_server(agent_dir, port)
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=30) as c:
            wait_healthy(c, url)
            raw = stats(
                timed(
                    lambda: c.post(
                        f"{url}/predict", content=image, headers={"content-type": "image/png"}
                    ).raise_for_status(),
                    args.requests,
                )
            )
            multipart = stats(
                timed(
                    lambda: c.post(
                        f"{url}/predict", files={"file": ("x.png", image, "image/png")}
                    ).raise_for_status(),
                    args.requests,
                )
            )

        def swap() -> dict[str, Any]:
            time.sleep(0.5)  # let the load ramp up, then promote v2 under load
            t = time.perf_counter()
            publish(model_dir, store, "bench", "2", "production")
            agent.sync(store, "bench", "production", agent_dir)
            with httpx.Client(timeout=10) as c:
                while c.get(f"{url}/health").json().get("version") != "2":
                    if time.perf_counter() - t > 30:
                        return {"swapped": False}
                    time.sleep(0.05)
            return {"swapped": True, "seconds_to_serve_v2": round(time.perf_counter() - t, 3)}

        load = concurrent_phase(url, image, args.requests * 3, args.concurrency, args.max_seconds, swap)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)

    overhead = round(raw["p50_ms"] - direct_predict["p50_ms"], 3)
    results = {
        "model": source,
        "model_dir": str(model_dir),
        "image_bytes": len(image),
        **cpu_info(),
        "direct_infer": direct_infer,
        "direct_predict": direct_predict,
        "server_raw": raw,
        "server_multipart": multipart,
        f"server_x{args.concurrency}": load,
        "server_overhead_p50_ms": overhead,
        "target_overhead_p50_ms": 2.0,
        "overhead_ok": overhead < 2.0,
        "swap_failures": load["failures"],
    }
    rows = [
        ("direct infer (compiled model)", direct_infer, "-"),
        ("direct predict (decode+infer)", direct_predict, "-"),
        ("server POST raw image", raw, "-"),
        ("server POST multipart", multipart, "-"),
        (f"server x{args.concurrency} clients + swap", load, f"{load['rps']}"),
    ]
    print(
        f"\nedge serve load test — {source}; {results['cpu']} ({', '.join(results['isa'])}), "
        f"{results['cores']} cores"
    )
    print(f"{'path':<34}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    for name, s, rps in rows:
        rps = rps if rps != "-" else f"{1000 / s['mean_ms']:.0f}"
        print(f"{name:<34}{s['n']:>6}{s['p50_ms']:>10.3f}{s['p99_ms']:>10.3f}{rps:>10}")
    print(
        f"server overhead p50 vs direct predict: {overhead:.3f} ms (target < 2 ms: "
        f"{'ok' if results['overhead_ok'] else 'MISSED'})"
    )
    print(
        f"hot swap under load: {load['swap']}, versions served {load['versions_served']}, "
        f"failed requests {load['failures']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    if load["failures"] or not load["swap"].get("swapped"):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
