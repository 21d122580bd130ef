"""Fixtures for integration tests: real servers on loopback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.edge_helpers import MlflowServer, S3Server, free_port, run_mlflow_server

ROOT = Path(__file__).resolve().parents[2]

# --- edge / S3 fixtures ---
# A real S3 server: Debian's Ceph radosgw (1 mon + 1 OSD + rgw, auth none) on 127.0.0.1, started once per
# session with the project's own scripts/rgw/start-rgw.sh. CI installs it with
#   apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd
# Without those packages the S3 tests skip, unless EDGEOPS_REQUIRE_RGW=1 (CI) makes that a failure.


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if not shutil.which("radosgw"):
        msg = "radosgw not installed: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd"
        if os.environ.get("EDGEOPS_REQUIRE_RGW") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    folder = tmp_path_factory.mktemp("rgw")  # short path: ceph admin sockets live inside it
    port = free_port(pair=True)
    scripts = ROOT / "scripts" / "rgw"
    proc = subprocess.run(
        [str(scripts / "start-rgw.sh"), str(folder), str(port)], capture_output=True, text=True, timeout=180
    )
    if proc.returncode != 0:
        subprocess.run([str(scripts / "stop-rgw.sh"), str(folder)], capture_output=True, timeout=120)
        pytest.fail(f"radosgw did not start: {proc.stderr[-2000:]}")
    found = re.search(r"ENDPOINT=(\S+) ACCESS_KEY=(\S+) SECRET_KEY=(\S+)", proc.stdout)
    assert found, proc.stdout
    server = S3Server(found[1], found[2], found[3], folder)
    with pytest.MonkeyPatch.context() as mp:  # credentials only through the environment, as users do
        mp.setenv("AWS_ACCESS_KEY_ID", server.access_key)
        mp.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.delenv("AWS_PROFILE", raising=False)
        try:
            yield server
        finally:
            subprocess.run([str(scripts / "stop-rgw.sh"), str(folder)], capture_output=True, timeout=120)


@pytest.fixture
def bucket(rgw: S3Server) -> str:
    name = f"edge-{uuid.uuid4().hex[:12]}"
    rgw.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


# --- MLflow server fixture (promotion against a real tracking server) ---


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    with run_mlflow_server(folder, port):
        yield MlflowServer(f"http://127.0.0.1:{port}", folder)


# --- PostgreSQL fixture (team mode: MLflow's backend store, the cross-machine promotion lock) ---
# Debian's PostgreSQL on 127.0.0.1, started once per session with scripts/postgres/start-postgres.sh, which
# creates the role `edgeops` and the databases mlflow, prefect and edgeops. CI installs it with
#   apt-get install -y --no-install-recommends postgresql
# Without it the PostgreSQL tests skip, unless EDGEOPS_REQUIRE_POSTGRES=1 (CI) makes that a failure.


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The server's URL, `postgresql://edgeops:PASSWORD@127.0.0.1:PORT` without a database: append
    `/mlflow`, `/prefect` or `/edgeops`."""
    import glob
    import tempfile

    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        msg = "PostgreSQL not installed: apt-get install -y --no-install-recommends postgresql"
        if os.environ.get("EDGEOPS_REQUIRE_POSTGRES") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    # not pytest's tmp_path (mode 0700): as root the server runs as `postgres`, which must reach the folder
    folder = Path(tempfile.mkdtemp(prefix="edgeops-pg-"))
    folder.chmod(0o755)
    scripts = ROOT / "scripts" / "postgres"
    proc = subprocess.run(
        [str(scripts / "start-postgres.sh"), str(folder), str(free_port())],
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        if proc.returncode != 0:
            pytest.fail(f"PostgreSQL did not start: {proc.stderr[-2000:]}")
        found = re.search(r"^DATABASE_URL=(\S+)$", proc.stdout, re.MULTILINE)
        assert found, proc.stdout
        yield found[1]
    finally:
        subprocess.run([str(scripts / "stop-postgres.sh"), str(folder)], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
