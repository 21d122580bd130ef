"""Ctrl-C during `edgeops run`: one line, exit 130, and no process left behind (stage, DVC worker, Prefect)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_ctrl_c_stops_everything_with_one_line(tmp_path: Path) -> None:
    stage = {"cmd": "python -c \"import time; open('started', 'w').close(); time.sleep(120)\""}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"slow": stage}}))
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "EDGEOPS_DEBUG")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["PREFECT_HOME"] = str(tmp_path / ".prefect")
    run = subprocess.Popen(
        [str(BIN / "edgeops"), "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
        # as in a terminal: Ctrl-C not ignored, even when the test suite itself was started in the
        # background by a non-interactive shell (which ignores SIGINT for its `&` jobs)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.2)
    family = [run.pid, *(p.pid for p in psutil.Process(run.pid).children(recursive=True))]
    assert len(family) >= 4  # edgeops, the Prefect server, the DVC worker, the stage
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in stderr
    time.sleep(1)
    left = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert not left, [psutil.Process(pid).cmdline() for pid in left]
