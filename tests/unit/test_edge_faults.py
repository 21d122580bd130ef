"""Faults on the device and the targets: a damaged local copy, a full or read-only disk, a tampered
version at server start, a broken model's NaN output, file-target permissions, missing credentials,
a pointer without its manifest sha256. Each reproduces a failure seen by hand before the fix."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from edgeops.edge import agent, inference
from edgeops.edge.cli import edge_app
from edgeops.edge.publish import canonical_json, publish
from edgeops.edge.server import create_app
from edgeops.edge.targets import S3Store, Store, TargetError, open_target
from edgeops.errors import EdgeopsError
from tests.unit.edge_helpers import build_model, image_bytes


@pytest.fixture
def target(tmp_path: Path) -> Store:
    return open_target(f"file://{tmp_path}/target")


def _publish(tmp_path: Path, store: Store, version: str, scale: float = 0.05) -> None:
    publish(build_model(tmp_path / f"m{version}", scale=scale), store, "clf", version, "production")


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "deleted file": lambda v: (v / "model.bin").unlink(),
    "truncated file": lambda v: (v / "model.bin").write_bytes((v / "model.bin").read_bytes()[:7]),
    "same-size tamper": lambda v: _flip_last_byte(v / "model.bin"),
    "deleted version folder": lambda v: shutil.rmtree(v),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_sync_repairs_a_damaged_current_copy(tmp_path: Path, target: Store, damage: str) -> None:
    """Before: `sync` said "v1 is current" (exit 0) and the device could not load its model again."""
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    DAMAGE[damage](d / "versions" / "1")
    r = agent.sync(target, "clf", "production", d)
    assert r.changed and r.message.startswith("repaired v1 (") and "(was" not in r.message
    assert agent.local_damage(d / "versions" / "1") is None
    assert inference.load_current(d).predict_bytes(image_bytes())["version"] == "1"
    assert not agent.sync(target, "clf", "production", d).changed  # healthy again: nothing to do


def test_load_current_refuses_a_tampered_copy(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    _flip_last_byte(d / "versions" / "1" / "model.bin")
    with pytest.raises(agent.IntegrityError, match="model.bin"):
        inference.load_current(d)


def test_status_of_a_dangling_current_link_says_how_to_repair(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    shutil.rmtree(d / "versions" / "1")
    with pytest.raises(EdgeopsError, match="names v1 but .* missing .*to repair it"):
        agent.status(d)


def test_rollback_refuses_a_damaged_previous(tmp_path: Path, target: Store) -> None:
    """Before: only model.xml's existence was checked, so the device switched to a broken copy."""
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    _publish(tmp_path, target, "2", scale=0.1)
    agent.sync(target, "clf", "production", d)
    (d / "versions" / "1" / "model.bin").unlink()
    with pytest.raises(EdgeopsError, match="cannot roll back .* to v1: model.bin is missing.*v2 kept"):
        agent.rollback(d)
    assert agent.current_version(d) == "2"


def test_disk_full_during_sync_is_one_line_exit_2_and_keeps_the_model(
    tmp_path: Path, target: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: `internal error: OSError: [Errno 28] No space left on device`, exit 1."""
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    _publish(tmp_path, target, "2", scale=0.1)

    def full(self: Store, key: str, dest: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest))

    monkeypatch.setattr(type(target), "download", full)
    r = CliRunner().invoke(
        edge_app, ["sync", "--target", target.uri, "--model", "clf", "--dir", str(d)], catch_exceptions=False
    )
    assert r.exit_code == 2
    assert "No space left on device" in r.output and "current model kept" in r.output
    assert "internal error" not in r.output and "Traceback" not in r.output
    assert agent.current_version(d) == "1" and not list(d.glob(".incoming-*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_agent_folder_is_one_line(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    _publish(tmp_path, target, "2", scale=0.1)
    d.chmod(0o555)
    try:
        with pytest.raises(EdgeopsError, match="cannot write the agent folder"):
            agent.sync(target, "clf", "production", d)
    finally:
        d.chmod(0o755)
    assert agent.current_version(d) == "1"


def test_s3_download_to_an_unwritable_place_is_not_reported_as_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env: None
) -> None:
    """Before: a local write error inside S3Store.download read "failed after 5 attempts … reachable?"."""
    from moto import mock_aws

    with mock_aws():
        s3 = open_target("s3://bucket/p")
        assert isinstance(s3, S3Store)
        s3.client.create_bucket(Bucket="bucket")
        s3.put_bytes("k", b"data")
        with pytest.raises(OSError) as err:
            s3.download("k", tmp_path / "no" / "such" / "dir" / "k")
        assert not isinstance(err.value, TargetError)
        s3.download("k", tmp_path / "k")
        assert (tmp_path / "k").read_bytes() == b"data"


def test_missing_s3_credentials_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: "failed after 5 attempts: Unable to locate credentials (is … reachable?)"."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = open_target("s3://bucket/p", endpoint_url="http://127.0.0.1:9", max_attempts=1)
    with pytest.raises(TargetError, match="no AWS credentials found .*AWS_ACCESS_KEY_ID") as err:
        s3.get_bytes("k")
    assert "reachable" not in str(err.value)


def test_pointer_without_manifest_sha256_is_refused(tmp_path: Path, target: Store) -> None:
    """Before: a pointer `{"version": "2"}` was followed with no check of the manifest it names."""
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    _publish(tmp_path, target, "2", scale=0.1)
    pointer = json.loads(target.get_bytes("clf/production.json"))
    del pointer["manifest_sha256"]
    target.put_bytes("clf/production.json", canonical_json(pointer))
    with pytest.raises(EdgeopsError, match="not a valid edgeops pointer \\(no manifest_sha256\\)"):
        agent.sync(target, "clf", "production", d)
    target.put_bytes("clf/production.json", canonical_json({**pointer, "version": "../1"}))
    with pytest.raises(EdgeopsError, match="invalid version '../1'"):
        agent.sync(target, "clf", "production", d)
    assert agent.current_version(d) == "1"


def test_file_target_files_are_readable_by_other_users(tmp_path: Path, target: Store) -> None:
    """Before: every file on a folder target was 0600 (mkstemp), unreadable by a device's own user."""
    _publish(tmp_path, target, "1")
    root = tmp_path / "target" / "clf"
    for path in [root / "production.json", *sorted((root / "1").iterdir())]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o044 == 0o044 & ~_umask(), (path, oct(mode))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_server_refuses_a_tampered_current_and_serves_the_previous(tmp_path: Path, target: Store) -> None:
    """Before: on (re)start the server compiled whatever bytes were in versions/<current>/."""
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1", scale=1.0)
    agent.sync(target, "clf", "production", d)
    _publish(tmp_path, target, "2", scale=0.7)
    agent.sync(target, "clf", "production", d)
    _flip_last_byte(d / "versions" / "2" / "model.bin")
    with TestClient(create_app(d, poll_seconds=60)) as c:
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["version"] == "1"
        r = c.post("/predict", content=image_bytes(), headers={"content-type": "image/png"})
        assert r.status_code == 200 and r.json()["version"] == "1"
    os.unlink(d / "previous")
    with TestClient(create_app(d, poll_seconds=60)) as c:
        health = c.get("/health")
        assert health.status_code == 503 and "model.bin" in health.json()["detail"]


def test_non_finite_model_output_is_a_500_with_a_message(tmp_path: Path, target: Store) -> None:
    """Before: NaN scores made JSONResponse raise ValueError (an unhandled 500 with a traceback)."""
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1", scale=float("inf"))  # inf weights: logits inf/NaN
    agent.sync(target, "clf", "production", d)
    with TestClient(create_app(d, poll_seconds=60)) as c:
        r = c.post("/predict", content=image_bytes((0, 0, 0)), headers={"content-type": "image/png"})
        assert r.status_code == 500 and "non-finite" in r.json()["detail"]
        assert c.get("/health").status_code == 200


class TricklingS3:
    """A loopback HTTP server that answers every GET with 200 and trickles the body one byte a second
    (so no socket timeout ever fires), except keys in `fast`, answered at once."""

    def __init__(self, fast: dict[str, bytes] | None = None) -> None:
        import socket
        import threading

        self.fast = fast or {}
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Any) -> None:
        with conn:
            try:
                request = conn.recv(65536).decode(errors="replace")
                path = request.split(" ", 2)[1] if " " in request else ""
                body = next((v for k, v in self.fast.items() if path.endswith(k)), None)
                length = len(body) if body is not None else 100_000
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode())
                if body is not None:
                    conn.sendall(body)
                    return
                while not self.stop.wait(1.0):
                    conn.sendall(b" ")
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("in_thread", [False, True], ids=["main-thread", "worker-thread"])
@pytest.mark.parametrize("phase", ["pointer", "download"])
def test_a_trickling_store_cannot_hang_sync(
    tmp_path: Path, target: Store, monkeypatch: pytest.MonkeyPatch, phase: str, in_thread: bool, aws_env: None
) -> None:
    """Before: a store answering one byte a second never hit the 30 s read timeout: `edge sync`
    hung for hours. Now the pointer read and the download each have a deadline, which also holds
    when sync runs outside the main thread (as in a Prefect task), where a SIGALRM cannot."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("EDGEOPS_SYNC_TIMEOUT", "2")
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    _publish(tmp_path, target, "2", scale=0.1)
    fast = {"/clf/production.json": target.get_bytes("clf/production.json")} if phase == "download" else {}
    server = TricklingS3(fast)
    try:
        slow = open_target("s3://bucket/p", endpoint_url=f"http://127.0.0.1:{server.port}", max_attempts=1)
        start = time.monotonic()
        with pytest.raises(EdgeopsError, match="took over 2s") as err:
            if in_thread:
                with ThreadPoolExecutor(1) as pool:
                    pool.submit(agent.sync, slow, "clf", "production", d).result(timeout=30)
            else:
                agent.sync(slow, "clf", "production", d)
        assert time.monotonic() - start < 10
    finally:
        server.close()
    assert ("current model kept" in str(err.value)) == (phase == "download")
    assert agent.current_version(d) == "1" and not list(d.glob(".incoming-*"))
