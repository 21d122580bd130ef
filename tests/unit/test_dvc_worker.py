"""The flow's DVC worker runs real DVC stages in one process and reports each stage's output and result."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from edgeops.errors import EdgeopsError
from edgeops.orchestration.dvc_worker import FAILED, DvcWorker, discard_prestarted, prestart
from edgeops.orchestration.prefect_local import TemporaryServer
from tests.unit.edge_helpers import free_port

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
STAGES = {
    "a": {
        "cmd": "python -c \"import os; print('hello from a'); open('a.txt', 'w').write(os.environ['EDGEOPS_STAGE'])\"",
        "outs": ["a.txt"],
    },
    "b": {"cmd": "python -c \"import sys; print('error: bad input', file=sys.stderr); sys.exit(2)\""},
    "c": {"cmd": "python -c \"import os; print('run id', os.environ.get('EDGEOPS_TEST_RUN'))\""},
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": STAGES}))
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, check=True)
    return tmp_path


def test_a_prestarted_worker_runs_stages_in_the_flow_runs_environment(project: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    prestart(project, {**env, "EDGEOPS_TEST_RUN": "not known yet"})
    try:
        worker = DvcWorker.for_project(project, {**env, "EDGEOPS_TEST_RUN": "run-1"})
        early = worker.proc
        assert early is not None and early.poll() is None  # started before the flow run took it
        with worker:
            lines: list[str] = []
            assert worker.reproduce("c", lines.append) == 0
            assert worker.proc is early
        assert "run id run-1" in lines, lines
        assert DvcWorker.for_project(project, env).proc is None  # taken once; the next run starts its own
    finally:
        discard_prestarted()


def test_an_untaken_prestarted_worker_is_stopped(project: Path) -> None:
    from edgeops.orchestration import dvc_worker

    prestart(project, dict(os.environ))
    process = dvc_worker._PRESTARTED[project].proc
    assert process is not None

    discard_prestarted()  # no flow run took it

    assert process.wait(timeout=60) is not None
    assert DvcWorker.for_project(project, dict(os.environ)).proc is None


def test_stages_run_in_one_worker_with_their_output_and_exit_codes(project: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    with DvcWorker(project, env) as worker:
        lines: list[str] = []
        assert worker.reproduce("a", lines.append) == 0
        assert "hello from a" in lines and any("Running stage 'a'" in line for line in lines)
        assert (project / "a.txt").read_text() == "a"  # the stage knows its name (for its timing)
        assert "a:" in (project / "dvc.lock").read_text()
        first = worker.proc
        assert first is not None

        again: list[str] = []
        assert worker.reproduce("a", again.append) == 0
        assert "hello from a" not in again  # up to date: DVC skipped it
        assert worker.proc is first  # same process: DVC is imported once

        failed: list[str] = []
        assert worker.reproduce("b", failed.append) == FAILED
        assert "error: bad input" in failed
        assert any(line.startswith("ERROR: ") and "'b'" in line for line in failed), failed

        first.kill()  # a dead worker is replaced on the next stage
        first.wait()
        (project / "a.txt").unlink()
        assert worker.reproduce("a", lambda line: None) == 0
        assert worker.proc is not first and (project / "a.txt").exists()
    assert worker.proc is None


WARM_STAGE = """
import os, stat, sys
# imported by the worker before this module ran: it is a fork of the warm worker, not a new interpreter
print("warm" if "torch" in sys.modules else "cold", sys.argv[1:], os.getcwd() == os.environ["DVC_ROOT"])
open("w.txt", "w").write(os.environ["EDGEOPS_STAGE"] + " " + os.environ["MARKER"])
print("stdin", stat.S_ISCHR(os.fstat(0).st_mode), flush=True)  # the worker's stdin (the flow's stage names) is not the stage's
if sys.argv[1] == "fail":
    print("error: bad input", file=sys.stderr)
    sys.exit(2)
os._exit(0)  # like a stage's fast exit
"""


def test_python_module_stages_run_warm_with_their_own_env_args_and_exit_code(project: Path) -> None:
    (project / "warm_stage.py").write_text(WARM_STAGE)
    stages = {
        "ok": {"cmd": "python -m warm_stage 'two words'", "outs": ["w.txt"]},
        "bad": {"cmd": "python -m warm_stage fail"},
    }
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MARKER": "m1"}
    with DvcWorker(project, env) as worker:
        lines: list[str] = []
        assert worker.reproduce("ok", lines.append) == 0
        assert "warm ['two words'] True" in lines and "stdin True" in lines, lines
        assert (project / "w.txt").read_text() == "ok m1"
        failed: list[str] = []
        assert worker.reproduce("bad", failed.append) == FAILED
        assert "error: bad input" in failed
        assert any("'bad'" in line and "exited with 2" in line for line in failed), failed
        pid = worker.proc.pid if worker.proc else None
        assert worker.reproduce("ok", lambda line: None) == 0  # up to date; the worker survived both
        assert worker.proc is not None and worker.proc.pid == pid

        starter = psutil.Process(pid).children()  # between stages, the starter is its only child
        assert len(starter) == 1
        starter[0].kill()
        for _ in range(100):  # dead, not yet reaped by the worker: a zombie
            if starter[0].status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.1)
        (project / "w.txt").unlink()
        after: list[str] = []
        assert worker.reproduce("ok", after.append) == 0  # a dead starter: the stage starts as DVC starts it
        assert "cold ['two words'] True" in after, after

    cold: list[str] = []
    (project / "w.txt").unlink()
    with DvcWorker(project, {**env, "EDGEOPS_WARM_STAGES": "0"}) as worker:
        assert worker.reproduce("ok", cold.append) == 0
    assert "cold ['two words'] True" in cold, cold


def test_unreachable_prefect_api_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    server = TemporaryServer().start()  # the user's server: nothing is started
    assert server.proc is None
    with pytest.raises(EdgeopsError, match="not reachable.*unset PREFECT_API_URL"):
        server.wait_ready(seconds=0.5)
    server.stop()
    assert os.environ["PREFECT_API_URL"] == url  # the user's setting is left alone


def test_run_against_an_unreachable_prefect_server_fails_in_one_line(project: Path) -> None:
    (project / "params.yaml").write_text("seed: 0\n")
    shutil.copytree(ROOT / "flows", project / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "EDGEOPS_DEBUG"}
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{free_port()}/api"
    result = subprocess.run(
        [str(BIN / "edgeops"), "run"], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith("error: the Prefect API at PREFECT_API_URL=")
    assert "Traceback" not in result.stderr and not (project / "a.txt").exists()


def test_the_flow_runs_a_project_elsewhere_without_changing_folder(project: Path, tmp_path: Path) -> None:
    """A worker runs flows for projects in their own workspaces: the flow gets the folder as a parameter,
    its tasks get only names (no live process), and the worker's current folder never changes."""
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"a": STAGES["a"]}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import os\n"
        "from edgeops.orchestration.prefect_local import TemporaryServer\n"
        "with TemporaryServer() as api:\n"
        "    api.wait_ready()\n"
        "    from flows.pipeline import pipeline\n"
        f"    summary = pipeline({str(project)!r})\n"
        "print('cwd', os.getcwd(), 'stages', summary['stage_task_seconds'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "EDGEOPS_DEBUG")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PATH": f"{BIN}{os.pathsep}{env['PATH']}",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"cwd {elsewhere} stages {{'a':" in result.stdout
    assert (project / "a.txt").read_text() == "a" and (project / "reports/pipeline_timing.json").is_file()
    assert not (elsewhere / "reports").exists()


def test_preload_starts_no_thread_so_the_starter_can_fork() -> None:
    # start_starter() forks only a single-threaded process: a preloaded library that started a thread
    # would silently turn warm stages off
    code = (
        "import threading\n"
        "from edgeops.orchestration import dvc_worker\n"
        "dvc_worker.preload()\n"
        "import sys\n"
        "missing = [name for name in dvc_worker.PRELOAD if name not in sys.modules]\n"
        "print(threading.active_count(), missing)\n"
    )
    env = {**os.environ, "EDGEOPS_WARM_STAGES": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[-2] == "1 []"
