"""The cross-machine promotion lock against a real PostgreSQL server and a real `mlflow server` on loopback.

Each promoter is an `edgeops promote` process started in its own working folder with its own params.yaml
and its own local lock file (standing in for two machines): only the PostgreSQL advisory lock is shared.
The edge targets are shared folders, standing in for the S3 buckets every promoter publishes to."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeops.config import parse_params
from edgeops.registry import audit, lock, promotion
from edgeops.registry import client as client_module
from tests.unit.edge_helpers import MlflowServer, build_model, free_port, good_tags, register_version

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NAME = "locked-clf"

# A promoter with two test hooks: it records when it held the lock (from inside the lock), and its publish
# is slow (HOLD_S seconds after the files landed), so that without a shared lock two promotions overlap.
PROMOTER = textwrap.dedent(
    """
    import contextlib, json, os, sys, time
    from pathlib import Path
    from edgeops.registry import client as client_module, promotion

    hold = float(os.environ["HOLD_S"])
    real_lock, real_publish = promotion.promotion_lock, promotion.publish_to_targets

    @contextlib.contextmanager
    def recorded_lock(uri, name):
        with real_lock(uri, name) as where:
            start = time.time()
            try:
                yield where
            finally:
                with open("spans.jsonl", "a") as f:
                    f.write(json.dumps({"pid": os.getpid(), "start": start, "end": time.time()}) + "\\n")

    def slow_publish(*args, **kwargs):
        done = real_publish(*args, **kwargs)
        Path("holding").write_text(str(os.getpid()))
        time.sleep(hold)
        return done

    promotion.promotion_lock, promotion.publish_to_targets = recorded_lock, slow_publish
    client_module.make_client(os.environ["MLFLOW_TRACKING_URI"]).get_registered_model(sys.argv[1])  # warm
    Path("ready").touch()
    while not Path(os.environ["GO_FILE"]).exists():
        time.sleep(0.01)
    sys.argv = ["edgeops", "promote", sys.argv[1], "--version", sys.argv[2], "--to", sys.argv[3]]
    from edgeops.cli import main
    main()
    """
)


@pytest.fixture(scope="module")
def versions(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("locked-models")
    return [
        register_version(
            mlflow_server.uri, NAME, build_model(root / f"m{i}", scale=0.25 * (i + 1)), good_tags()
        )
        for i in range(3)
    ]


@pytest.fixture
def lock_url(postgres: str) -> str:
    return f"{postgres}/edgeops"


def machine(tmp_path: Path, label: str, server: MlflowServer, targets: list[Path]) -> Path:
    """A working folder with its own params.yaml, as a promoter on another machine would have."""
    folder = tmp_path / label
    folder.mkdir()
    edge = [{"uri": f"file://{t}"} for t in targets]
    params = {
        "mlflow": {"tracking_uri": server.uri, "model_name": NAME},
        "gates": {"max_score_drop": 0.01, "min_score": 0.9},
        "targets": {"staging": edge, "production": edge},
    }
    (folder / "params.yaml").write_text(json.dumps(params))
    (folder / "promoter.py").write_text(PROMOTER)
    return folder


def promoter_env(folder: Path, server: MlflowServer, lock_url: str, hold: float = 0.0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEOPS_", "MLFLOW_"))}
    return env | {
        "MLFLOW_TRACKING_URI": server.uri,
        "EDGEOPS_LOCK_URL": lock_url,
        "EDGEOPS_PROMOTION_LOCK": str(folder / "local.lock"),  # per machine: the flock cannot serialise
        "EDGEOPS_PROMOTION_LOCK_TIMEOUT": "60",
        "HOLD_S": str(hold),
        "GO_FILE": str(folder.parent / "go"),
        "PYTHONPATH": str(ROOT),
    }


def start_promoter(folder: Path, env: dict[str, str], version: str, stage: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "promoter.py", NAME, version, stage],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_file(path: Path, procs: list[subprocess.Popen[str]], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"promoter exited early ({p.returncode}): {p.communicate()[1][-2000:]}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def pointer_version(target: Path, stage: str) -> str | None:
    path = target / NAME / f"{stage}.json"
    return str(json.loads(path.read_text())["version"]) if path.exists() else None


def registry_state(client: Any) -> dict[str, Any]:
    model = client.get_registered_model(NAME)
    versions = client.search_model_versions(f"name='{NAME}'")
    return {
        "aliases": dict(model.aliases),
        "tags": dict(model.tags),
        "versions": {v.version: (v.current_stage, dict(v.tags)) for v in versions},
    }


def holders(lock_url: str, key: int) -> list[str]:
    import psycopg2

    unsigned = key % (1 << 64)
    with psycopg2.connect(lock_url, connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute(lock.HOLDER_SQL, (unsigned >> 32, unsigned & 0xFFFFFFFF))
        rows = cur.fetchall()
    conn.close()
    return [str(app) for _, app in rows]


def test_two_machines_racing_to_one_stage_are_serialised(
    mlflow_server: MlflowServer, versions: list[str], lock_url: str, tmp_path: Path
) -> None:
    v1, v2, _ = versions
    targets = [tmp_path / "edge-1", tmp_path / "edge-2"]
    client = client_module.make_client(mlflow_server.uri)
    before = len(audit.history(client, NAME))
    folders = [machine(tmp_path, label, mlflow_server, targets) for label in ("machine-a", "machine-b")]
    procs = [
        start_promoter(folder, promoter_env(folder, mlflow_server, lock_url, hold=2.0), v, "staging")
        for folder, v in zip(folders, (v1, v2), strict=True)
    ]
    try:
        for folder in folders:
            wait_for_file(folder / "ready", procs)
        (tmp_path / "go").touch()  # both start their promotion now
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]

    # the lock serialised them: the critical sections, timed from inside, do not overlap
    spans = sorted(
        (
            json.loads(line) | {"folder": f}
            for f in folders
            for line in (f / "spans.jsonl").read_text().splitlines()
        ),
        key=lambda s: s["start"],
    )
    first, second = spans
    assert first["end"] <= second["start"], spans
    assert second["start"] - first["start"] >= 2.0  # the second waited out the first's slow publish
    # ... and it was the shared PostgreSQL lock (each machine's flock file is its own): the waiter said whom
    waiter = procs[folders.index(second["folder"])]
    waited = [line for line in outs[procs.index(waiter)][1].splitlines() if line.startswith("waiting")]
    assert waited == [
        f"waiting for another promotion of {NAME} (lock held by pid {first['pid']} on "
        f"{socket.gethostname()}; up to 60s)"
    ]

    # one consistent result: history, alias, stage and every edge target name the last promoter's version
    winner = v1 if second["folder"] == folders[0] else v2
    events = audit.history(client, NAME)[before:]
    assert [e["seq"] for e in events] == [before + 1, before + 2]
    assert sorted(e["version"] for e in events) == sorted([v1, v2]) and events[-1]["version"] == winner
    assert str(client.get_registered_model(NAME).aliases["staging"]) == winner
    assert [client.get_model_version(NAME, v).current_stage for v in (v1, v2)].count("Staging") == 1
    assert client.get_model_version(NAME, winner).current_stage == "Staging"
    for target in targets:
        assert pointer_version(target, "staging") == winner
        assert (target / NAME / winner / "model.bin").is_file()


def test_a_killed_holder_does_not_orphan_the_lock(
    mlflow_server: MlflowServer,
    versions: list[str],
    lock_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v1, v2, _ = versions
    targets = [tmp_path / "edge"]
    folder = machine(tmp_path, "machine-a", mlflow_server, targets)
    (tmp_path / "go").touch()
    victim = start_promoter(folder, promoter_env(folder, mlflow_server, lock_url, hold=300), v1, "production")
    try:
        wait_for_file(folder / "holding", [victim])  # v1's files are on the target; the alias not moved yet
        key = lock.lock_key(mlflow_server.uri, NAME)
        assert holders(lock_url, key) == [f"edgeops-promote {socket.gethostname()} {victim.pid}"]
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(timeout=10)
    finally:
        victim.kill()
        victim.communicate()

    # the next promotion, from this process: it gets the lock within seconds, and completes
    acquired: list[float] = []
    real_lock = promotion.promotion_lock

    @contextlib.contextmanager
    def timed_lock(uri: str, name: str) -> Iterator[str]:
        with real_lock(uri, name) as where:
            acquired.append(time.monotonic())
            yield where

    monkeypatch.setattr(promotion, "promotion_lock", timed_lock)
    monkeypatch.setenv("EDGEOPS_LOCK_URL", lock_url)
    monkeypatch.setenv("EDGEOPS_PROMOTION_LOCK_TIMEOUT", "30")
    params = parse_params(json.loads((folder / "params.yaml").read_text()))
    result = promotion.promote(params, NAME, v2, "production", reason="after a killed promoter")
    assert acquired and acquired[0] - killed_at < 5, acquired[0] - killed_at
    print(f"lock re-acquired {acquired[0] - killed_at:.2f}s after the SIGKILL", file=sys.stderr)
    assert result.version == v2
    client = client_module.make_client(mlflow_server.uri)
    assert str(client.get_registered_model(NAME).aliases["production"]) == v2
    assert pointer_version(targets[0], "production") == v2
    assert holders(lock_url, key) == []  # released after the promotion


@pytest.mark.parametrize("fault", ["nothing listens", "wrong password"])
def test_an_unreachable_lock_server_is_one_line_and_changes_nothing(
    mlflow_server: MlflowServer, versions: list[str], postgres: str, tmp_path: Path, fault: str
) -> None:
    v3 = versions[2]
    targets = [tmp_path / "edge"]
    folder = machine(tmp_path, "machine-a", mlflow_server, targets)
    password = postgres.split("://", 1)[1].split("@")[0].split(":", 1)[1]
    if fault == "nothing listens":
        bad = f"postgresql://edgeops:{password}@127.0.0.1:{free_port()}/edgeops"
    else:
        bad = f"{postgres.replace(password, 'not-' + password[:6])}/edgeops"
    client = client_module.make_client(mlflow_server.uri)
    before = registry_state(client)
    env = promoter_env(folder, mlflow_server, bad)
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("edgeops")),
            "promote",
            NAME,
            "--version",
            v3,
            "--to",
            "production",
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    message = lines[0]
    assert message.startswith("error: promotion lock server postgresql://edgeops:***@127.0.0.1:")
    assert password not in message and password[:6] not in message and "Traceback" not in message
    assert (
        "Connection refused" if fault == "nothing listens" else "password authentication failed"
    ) in message
    assert "check EDGEOPS_LOCK_URL" in message and "make up" in message
    assert took < 30, took
    assert registry_state(client) == before  # nothing moved: not v3, nor its audit tags
    assert not targets[0].exists()  # nothing published either
