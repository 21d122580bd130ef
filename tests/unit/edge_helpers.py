"""Test helpers for the edge/promotion tests: a tiny OpenVINO IR that honours the model.json contract.

Graph: u8 NHWC [1,H,W,3] → f32 → mean over H,W → [1,3] → matmul [3,N] → logits [1,N].
The weights make class i favour colour channel i (red/green/blue), so predictions are checkable.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LABELS = ["red", "green", "blue"]


def build_model(
    folder: Path,
    *,
    size: int = 8,
    labels: list[str] | None = None,
    scale: float = 0.05,
    variant: str = "ptq",
    precision: str = "INT8",
    accuracy: float = 0.9,
    run_id: str = "run123",
    fingerprint: str = "fp-abc",
    commit: str = "deadbeef",
    extra: dict[str, Any] | None = None,
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
    files = {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in ("model.xml", "model.bin")
    }
    meta = {
        "format_version": 2,  # edgeops.files.MODEL_FORMAT_VERSION (not imported: edge tests stay light)
        "task": "classification",
        "labels": labels,
        "input": {
            "name": "image",
            "shape": [1, size, size, 3],
            "layout": "NHWC",
            "element_type": "u8",
            "color": "RGB",
        },
        "output": {
            "name": "logits",
            "kind": "logits",
            "shape": [1, n],
            "classes": n,
            "decode": "argmax = index into labels; softmax for scores",
        },
        "precision": precision,
        "variant": variant,
        "metric": "accuracy",
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


def register_version(
    tracking_uri: str, name: str, model_dir: Path, tags: dict[str, str], artifact_root: Path | None = None
) -> str:
    """Register `model_dir` the way registry.py does: run artifacts `model/`, version source `<run>/model`."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    exp = client.get_experiment_by_name("edgeops-test")
    if exp is None:
        location = artifact_root.as_uri() if artifact_root else None
        exp_id = client.create_experiment("edgeops-test", artifact_location=location)
    else:
        exp_id = exp.experiment_id
    run = client.create_run(exp_id)
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
    client.set_terminated(run.info.run_id)
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    mv = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags
    )
    return str(mv.version)


def good_tags(**over: Any) -> dict[str, str]:
    """The tags the register stage sets on a version (tasks/register.py), of a version that passes the gates."""
    tags = {
        "variant": "ptq",
        "precision": "INT8",
        "task": "classification",
        "metric": "accuracy",
        "score": "0.95",
        "fp32_score": "0.955",
        "score_drop": "0.005",
        "latency_ms_p50": "1.2",
        "size_mb": "0.5",
        "dataset_fingerprint": "fp-abc",
        "git_commit": "deadbeef",
        "parent_run_id": "parent",
    }
    tags.update({k: str(v) for k, v in over.items()})
    return tags


def free_port(pair: bool = False) -> int:
    """A free TCP port on loopback (and port+1 too when `pair`: radosgw's monitor uses it)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not pair or port >= 65535:
            return port
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair on 127.0.0.1")


@dataclass(frozen=True)
class S3Server:
    """A running S3 server (radosgw) on loopback; credentials are test-only."""

    endpoint: str
    access_key: str
    secret_key: str
    dir: Path

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )


@dataclass(frozen=True)
class MlflowServer:
    uri: str
    dir: Path


@contextlib.contextmanager
def run_mlflow_server(folder: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`mlflow server` on 127.0.0.1:port (sqlite + proxied artifacts in folder), healthy before it is
    yielded and stopped after; restartable on the same folder (its log is appended to)."""
    import pytest

    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db"]
    cmd += ["--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1"]
    with open(folder / "server.log", "a") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while True:
                health = f"http://127.0.0.1:{port}/health"
                with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=1) as r:
                    if r.status == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
                time.sleep(0.3)
            yield proc
        finally:
            # the server runs uvicorn in a child: signal the process group we created for it
            stop_process_group(proc, timeout=15)


def stop_process_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group a test server was started in (start_new_session=True); SIGKILL if it hangs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
