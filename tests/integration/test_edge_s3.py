"""Edge delivery against a real S3 server (Ceph radosgw on loopback): promote → publish → sync → serve →
predict, a new version while serving, registry and device rollbacks, an interrupted upload, a tampered
object, S3 unreachable."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgeops.edge.publish import publish
from edgeops.edge.targets import S3Store, TargetError, open_target
from edgeops.errors import EdgeopsError
from tests.unit.edge_helpers import S3Server, build_model, free_port, image_bytes

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MODEL = "clf"


def edge_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`edgeops edge …` in a fresh process, exactly as on a device."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgeops.edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )


def store_for(rgw: S3Server, bucket: str, **kw: Any) -> S3Store:
    store = open_target(f"s3://{bucket}/fleet", rgw.endpoint, **kw)
    assert isinstance(store, S3Store)
    return store


def pointer_version(rgw: S3Server, bucket: str) -> str:
    body = rgw.client().get_object(Bucket=bucket, Key=f"fleet/{MODEL}/production.json")["Body"]  # type: ignore
    return str(json.loads(body.read())["version"])


def sync_args(rgw: S3Server, bucket: str, agent_dir: Path) -> list[str]:
    return [
        "sync",
        "--target",
        f"s3://{bucket}/fleet",
        "--endpoint-url",
        rgw.endpoint,
        "--model",
        MODEL,
        "--channel",
        "production",
        "--dir",
        str(agent_dir),
    ]


def status_version(agent_dir: Path) -> str:
    r = edge_cli("status", "--dir", str(agent_dir), "--json")
    assert r.returncode == 0, r.stderr
    return str(json.loads(r.stdout)["version"])


@pytest.fixture
def published_v1(rgw: S3Server, bucket: str, tmp_path: Path) -> Path:
    """v1 published to the bucket and synced into an agent folder; returns the agent folder."""
    publish(build_model(tmp_path / "m1", scale=1.0), store_for(rgw, bucket), MODEL, "1", "production")
    agent_dir = tmp_path / "agent"
    r = edge_cli(*sync_args(rgw, bucket, agent_dir))
    assert r.returncode == 0 and "installed v1" in r.stdout, r.stderr
    return agent_dir


@contextlib.contextmanager
def serving(agent_dir: Path) -> Iterator[str]:
    """`edgeops edge serve` in its own process on a free loopback port; yields its URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeops.edge.cli", "serve", "--dir", str(agent_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("edge serve did not become healthy")
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_for_version(url: str, version: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while httpx.get(f"{url}/health", timeout=5).json().get("version") != version:
        assert time.monotonic() < deadline, f"server never switched to v{version}"
        time.sleep(0.1)


class Hammer:
    """Background clients posting images until stopped; records served versions and failures."""

    def __init__(self, url: str, clients: int = 2) -> None:
        self.url, self.served, self.failures = url, [], []  # type: ignore[var-annotated]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=10) as c:
            while not self.stop.is_set():
                try:
                    r = c.post(
                        f"{self.url}/predict", content=image_bytes(), headers={"content-type": "image/png"}
                    )
                    (self.served if r.status_code == 200 else self.failures).append(
                        r.json().get("version", r.text)
                    )
                except httpx.HTTPError as e:
                    self.failures.append(repr(e))

    def __enter__(self) -> Hammer:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)


def test_promote_sync_serve_predict_then_new_version_while_serving_and_rollbacks(
    rgw: S3Server, bucket: str, tmp_path: Path
) -> None:
    """The whole path: registry → promote (publishes to S3) → device sync → serve, under load."""
    from edgeops.config import parse_params
    from edgeops.registry import promotion
    from tests.unit.edge_helpers import good_tags, register_version

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    v1, v2 = (
        register_version(uri, MODEL, build_model(tmp_path / f"m{i}", scale=s), good_tags(), tmp_path / "art")
        for i, s in ((1, 1.0), (2, 0.7))
    )
    params = parse_params(
        {
            "mlflow": {"tracking_uri": uri, "model_name": MODEL},
            "targets": {"production": [{"uri": f"s3://{bucket}/fleet", "endpoint_url": rgw.endpoint}]},
        }
    )
    agent_dir = tmp_path / "agent"
    promotion.promote(params, MODEL, v1, "production", reason="first")
    assert edge_cli(*sync_args(rgw, bucket, agent_dir)).returncode == 0
    with serving(agent_dir) as url:
        resp = httpx.post(f"{url}/predict", files={"file": ("x.png", image_bytes((0, 0, 255)), "image/png")})
        assert resp.status_code == 200 and resp.json()["label"] == "blue" and resp.json()["version"] == v1
        assert httpx.get(f"{url}/model").json()["source_run"] == "run123"
        with Hammer(url) as load:
            promotion.promote(params, MODEL, v2, "production", reason="second, while serving")
            r = edge_cli(*sync_args(rgw, bucket, agent_dir))
            assert r.returncode == 0 and f"installed v{v2} (was v{v1})" in r.stdout, r.stderr
            wait_for_version(url, v2)
            promotion.rollback(params, MODEL, "production", reason="registry rollback")  # pointer → v1
            r = edge_cli(*sync_args(rgw, bucket, agent_dir))
            assert r.returncode == 0 and f"kept copy of v{v1}" in r.stdout, r.stderr
            wait_for_version(url, v1)
            promotion.promote(params, MODEL, v2, "production", reason="again")
            assert edge_cli(*sync_args(rgw, bucket, agent_dir)).returncode == 0
            wait_for_version(url, v2)
            r = edge_cli("rollback", "--dir", str(agent_dir))  # device-local rollback
            assert r.returncode == 0 and f"v{v2} → v{v1}" in r.stdout
            wait_for_version(url, v1)
            time.sleep(0.3)
        assert load.failures == [] and {v1, v2} <= set(load.served) and len(load.served) > 20
    # the pointer says v2 again, but the device keeps its local rollback until a new version comes
    r = edge_cli(*sync_args(rgw, bucket, agent_dir))
    assert r.returncode == 0 and "rolled back on this device" in r.stdout
    assert status_version(agent_dir) == v1


def test_interrupted_upload_keeps_pointer_and_agent_model(
    rgw: S3Server, bucket: str, published_v1: Path, tmp_path: Path
) -> None:
    class DropsAfterTwo(S3Store):
        puts = 0

        def put_bytes(self, key: str, data: bytes, **kw: Any) -> None:
            if self.puts == 2:
                raise TargetError(f"upload to {self.describe(key)} failed: connection reset by peer")
            self.puts += 1
            super().put_bytes(key, data, **kw)

    m2 = build_model(tmp_path / "m2", scale=0.7)
    flaky = DropsAfterTwo(f"s3://{bucket}/fleet", bucket, "fleet", rgw.endpoint)
    with pytest.raises(EdgeopsError, match="pointer was not changed"):
        publish(m2, flaky, MODEL, "2", "production")
    listed = store_for(rgw, bucket).list(f"{MODEL}/2/")
    assert len(listed) == 2 and f"{MODEL}/2/manifest.json" not in listed  # half a version, never pointed at
    assert pointer_version(rgw, bucket) == "1"
    r = edge_cli(*sync_args(rgw, bucket, published_v1))
    assert r.returncode == 0 and "v1 is current" in r.stdout
    report = publish(m2, store_for(rgw, bucket), MODEL, "2", "production")  # resume: only the rest goes up
    assert len(report.skipped) == 2 and report.pointer_written
    assert edge_cli(*sync_args(rgw, bucket, published_v1)).returncode == 0
    assert status_version(published_v1) == "2"


def test_tampered_object_is_refused_with_the_file_named(
    rgw: S3Server, bucket: str, published_v1: Path, tmp_path: Path
) -> None:
    publish(build_model(tmp_path / "m2", scale=0.7), store_for(rgw, bucket), MODEL, "2", "production")
    rgw.client().put_object(Bucket=bucket, Key=f"fleet/{MODEL}/2/model.bin", Body=b"\x00" * 52)  # type: ignore
    r = edge_cli(*sync_args(rgw, bucket, published_v1))
    assert r.returncode != 0
    assert "model.bin" in r.stderr and "current model kept" in r.stderr and "Traceback" not in r.stderr
    assert status_version(published_v1) == "1"
    assert sorted(p.name for p in (published_v1 / "versions").iterdir()) == ["1"]


def test_s3_unreachable_is_a_clear_error_with_retries_and_no_partial_state(
    rgw: S3Server, bucket: str, published_v1: Path, tmp_path: Path
) -> None:
    m2 = build_model(tmp_path / "m2", scale=0.7)
    # 1) nothing listening: connection refused, retried with backoff
    dead = open_target(f"s3://{bucket}/fleet", f"http://127.0.0.1:{free_port()}", max_attempts=3)
    assert isinstance(dead, S3Store)
    with pytest.raises(EdgeopsError, match="after 3 attempts") as err:
        publish(m2, dead, MODEL, "2", "production")
    assert dead.requests_sent >= 3 and "pointer was not changed" in str(err.value)
    assert "\n" not in str(err.value) and rgw.secret_key not in str(err.value)
    # 2) the real server hangs (SIGSTOP): timeouts, retries, then a clear error; then it comes back
    rgw_pid = int((rgw.dir / "pids").read_text().split()[2])
    os.kill(rgw_pid, signal.SIGSTOP)
    try:
        slow = {
            "EDGEOPS_S3_READ_TIMEOUT": "1",
            "EDGEOPS_S3_CONNECT_TIMEOUT": "1",
            "EDGEOPS_S3_MAX_ATTEMPTS": "2",
        }
        r = edge_cli(*sync_args(rgw, bucket, published_v1), env=slow)
        assert r.returncode == 2 and "after 2 attempts" in r.stderr and r.stderr.strip().count("\n") == 0
        os.environ.update(slow)  # timeouts are read when the client is made
        try:
            hung = open_target(f"s3://{bucket}/fleet", rgw.endpoint, max_attempts=2)
            with pytest.raises(EdgeopsError, match="pointer was not changed"):
                publish(m2, hung, MODEL, "2", "production")
        finally:
            for key in slow:
                os.environ.pop(key, None)
    finally:
        os.kill(rgw_pid, signal.SIGCONT)
    assert pointer_version(rgw, bucket) == "1"
    assert f"{MODEL}/2/manifest.json" not in store_for(rgw, bucket).list(f"{MODEL}/")
    assert status_version(published_v1) == "1"
    publish(m2, store_for(rgw, bucket), MODEL, "2", "production")  # once reachable, it just works
    assert edge_cli(*sync_args(rgw, bucket, published_v1)).returncode == 0
    assert status_version(published_v1) == "2"


def test_second_target_missing_bucket_puts_the_first_targets_pointer_back(
    rgw: S3Server, bucket: str, tmp_path: Path
) -> None:
    """production → a folder and an S3 bucket that does not exist. Before: the folder's pointer moved
    to v2 (its devices installed it) although the promotion failed and @production stayed v1."""
    from edgeops.config import parse_params
    from edgeops.registry import promotion
    from tests.unit.edge_helpers import good_tags, register_version

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    v1, v2 = (
        register_version(uri, MODEL, build_model(tmp_path / f"m{i}", scale=s), good_tags(), tmp_path / "art")
        for i, s in ((1, 1.0), (2, 0.7))
    )
    folder = tmp_path / "edge"

    def params(s3_bucket: str) -> Any:
        targets = [
            {"uri": f"file://{folder}"},
            {"uri": f"s3://{s3_bucket}/fleet", "endpoint_url": rgw.endpoint},
        ]
        return parse_params(
            {"mlflow": {"tracking_uri": uri, "model_name": MODEL}, "targets": {"production": targets}}
        )

    promotion.promote(params(bucket), MODEL, v1, "production")
    with pytest.raises(EdgeopsError) as err:
        promotion.promote(params(f"{bucket}-gone"), MODEL, v2, "production")
    message = str(err.value)
    assert f"bucket '{bucket}-gone' does not exist" in message and "pointer put back" in message
    assert "\n" not in message and rgw.secret_key not in message
    assert json.loads((folder / MODEL / "production.json").read_text())["version"] == v1
    assert pointer_version(rgw, bucket) == v1
    agent_dir = tmp_path / "agent"
    r = edge_cli("sync", "--target", f"file://{folder}", "--model", MODEL, "--dir", str(agent_dir))
    assert r.returncode == 0 and f"installed v{v1}" in r.stdout, r.stderr


def test_credentials_faults_are_one_line_without_secrets(
    rgw: S3Server, bucket: str, published_v1: Path
) -> None:
    """Wrong secret, unknown key, no credentials at all: each one line, exit 2, model kept. Before, the
    missing-credentials case read "failed after 5 attempts … (is the endpoint reachable?)"."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
    base.update({"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"})
    wrong_secret = {"AWS_ACCESS_KEY_ID": rgw.access_key, "AWS_SECRET_ACCESS_KEY": "not-the-secret-42"}
    unknown_key = {"AWS_ACCESS_KEY_ID": "NOSUCHKEY", "AWS_SECRET_ACCESS_KEY": rgw.secret_key}
    for creds, expected in (
        (wrong_secret, "SignatureDoesNotMatch"),
        (unknown_key, "InvalidAccessKeyId"),
        ({}, "no AWS credentials found"),
    ):
        env = {**base, **creds, "PYTHONPATH": str(ROOT / "src")}
        r = subprocess.run(
            [sys.executable, "-m", "edgeops.edge.cli", *sync_args(rgw, bucket, published_v1)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert r.returncode == 2 and expected in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0 and "reachable" not in r.stderr
        assert rgw.secret_key not in r.stderr and "not-the-secret-42" not in r.stderr
    assert status_version(published_v1) == "1"


def test_device_repairs_a_damaged_copy_from_s3(rgw: S3Server, bucket: str, published_v1: Path) -> None:
    """kill -9 of a cleanup, a bad disk, a curious admin: the current copy no longer matches its
    manifest. Before: `sync` said "v1 is current" forever; now it re-downloads and verifies."""
    (published_v1 / "versions" / "1" / "model.bin").write_bytes(b"\x00" * 3)
    r = edge_cli(*sync_args(rgw, bucket, published_v1))
    assert r.returncode == 0 and "repaired v1 (model.bin" in r.stdout, r.stderr
    r = edge_cli("predict", "--dir", str(published_v1), "--top-k", "1", "/dev/null")
    assert "damaged" not in r.stderr  # loads again (the image itself is not valid: that is fine)
    assert edge_cli(*sync_args(rgw, bucket, published_v1)).stdout.strip() == "v1 is current"
