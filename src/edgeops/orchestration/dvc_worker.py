"""Run DVC stages in one long-lived process, so no stage pays again for starting Python and importing DVC.

The Prefect flow sends stage names on stdin; the worker reproduces each one with DVC's Python API
(`Repo.reproduce(stage, single_item=True)`, what `dvc repro --single-item STAGE` does) and then
prints a DONE line with an exit code. The stage's command inherits the worker's stdout, so the flow
reads DVC's and the stage's output from one pipe, in order. `dvc repro` itself never uses this.

Warm stages: a stage command `python -m MODULE ARGS` runs in a fork of a *starter*: a process that
imported torch, torchvision and MLflow once (~8 s that every stage process paid again) and has done
nothing else. The worker forks the starter before it runs any DVC code: forks of a process that had run
DVC measured 2-3x slower in NNCF's per-sample torch calls. Each stage is a fresh process for everything
else: its own environment, folder, exit code and output, as DVC would give it. Any other command,
another interpreter, EDGEOPS_WARM_STAGES=0, or a starter that died runs as DVC runs it."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeops.console import wait_or_kill

DONE = "\x1eedgeops-stage-done"  # starts with an ASCII record separator: no stage prints it
FAILED = 255  # the code `dvc repro` exits with when a stage fails


def _reason(error: BaseException) -> str:
    """DVC's message with its causes, as the dvc CLI prints it."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None and len(parts) < 4:
        text = str(current).strip()
        if text and text not in parts:
            parts.append(text)
        current = current.__cause__
    return ": ".join(parts) or type(error).__name__


# what every stage imports and none needs to import again; none of them starts a Python thread at import
# (a fork copies only the calling thread: a thread holding an import lock would hang the child).
# OpenVINO and NNCF start telemetry threads at import, so each stage imports those itself (~1.5 s).
# MLflow's SQL store is what the embedded sqlite tracking URI opens in every stage (1.7 s to import).
PRELOAD = (
    "torch",
    "torchvision",
    "mlflow",
    "mlflow.tracking",
    "mlflow.pyfunc",
    "mlflow.store.tracking.sqlalchemy_store",
    "PIL.Image",
    "matplotlib.pyplot",
)


def warm_stages_enabled() -> bool:
    return os.environ.get("EDGEOPS_WARM_STAGES", "1") != "0"


def preload() -> None:
    if not warm_stages_enabled():
        return
    for name in PRELOAD:
        with contextlib.suppress(Exception):  # a missing optional library: the stage reports it itself
            importlib.import_module(name)
    # mlflow.pyfunc.log_model maps every installed distribution to its modules (1.2 s per model logged)
    # and caches the map in the process: built once here, each stage inherits it. The venv does not
    # change during a run.
    with contextlib.suppress(Exception):
        from mlflow.utils.requirements_utils import _init_packages_to_modules_map

        _init_packages_to_modules_map()


def python_module_argv(cmd: str, env: dict[str, str]) -> list[str] | None:
    """[MODULE, *ARGS] if cmd is `python -m MODULE ARGS` run by this worker's own environment."""
    try:
        parts = shlex.split(cmd)
    except ValueError:
        return None
    if len(parts) < 3 or parts[0] != "python" or parts[1] != "-m":
        return None
    python = shutil.which("python", path=env.get("PATH"))
    if python is None or Path(python).parent != Path(sys.executable).parent:
        return None
    return parts[2:]


def _child(argv: list[str], env: dict[str, str], cwd: str) -> None:
    """In the forked process: become `python -m MODULE ARGS` in cwd with env; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the worker's stdin carries the flow's stage names: not for the stage
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.path[0] = cwd  # what `python -m` puts first
        sys.argv = list(argv)
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_forked(argv: list[str], env: dict[str, str], cwd: str) -> int:
    """Run `python -m MODULE ARGS` in a fork of this process; returns its exit code (-N: killed by N)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(argv, env, cwd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _starter_loop(requests: int, replies: int) -> None:
    """The starter process: for each request line (JSON argv, env, cwd), fork the stage, wait, reply its
    exit code. Ends when the worker closes the requests pipe (it exited or was killed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the stage's (its own handler) and the worker's
    code = 0
    try:
        with os.fdopen(requests) as lines, os.fdopen(replies, "w") as out:
            for line in lines:
                request = json.loads(line)
                out.write(f"{_run_forked(request['argv'], request['env'], request['cwd'])}\n")
                out.flush()
    except BaseException:
        code = 1
    finally:
        os._exit(code)


class Starter:
    """The worker's side of the starter process."""

    def __init__(self) -> None:
        worker_requests, starter_requests = os.pipe()
        starter_replies, worker_replies = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(starter_requests)
            os.close(starter_replies)
            _starter_loop(worker_requests, worker_replies)
        os.close(worker_requests)
        os.close(worker_replies)
        self.pid: int | None = pid
        self.requests = os.fdopen(starter_requests, "w")
        self.replies = os.fdopen(starter_replies)

    @property
    def alive(self) -> bool:
        if self.pid is not None and os.waitpid(self.pid, os.WNOHANG)[0]:
            self.pid = None  # exited (and now reaped): the next stages start as DVC starts them
        return self.pid is not None

    def run(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        self.requests.write(json.dumps({"argv": argv, "env": env, "cwd": cwd}) + "\n")
        self.requests.flush()
        old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as DVC does while its command runs
        try:
            reply = self.replies.readline()
        finally:
            signal.signal(signal.SIGINT, old_handler)
        if not reply:
            raise OSError("the stage starter process exited")
        return int(reply)


_STARTER: Starter | None = None


def start_starter() -> None:
    """Fork the starter now, while this process has only imported PRELOAD (no thread, no DVC work)."""
    global _STARTER
    if warm_stages_enabled() and threading.active_count() == 1:
        _STARTER = Starter()


def _install_warm_runner() -> None:
    """Route DVC's stage commands through the starter where that is safe; DVC's own runner otherwise."""
    import dvc.stage.run as dvc_run
    from dvc.stage.exceptions import StageCmdFailedError

    if _STARTER is None or getattr(dvc_run._run, "edgeops_warm", False):
        return
    starter = _STARTER
    dvc_subprocess_run = dvc_run._run

    def warm_run(executable: str | None, cmd: str, **kwargs: Any) -> None:
        argv = python_module_argv(cmd, kwargs["env"])
        if argv is None or not starter.alive:
            dvc_subprocess_run(executable, cmd, **kwargs)
            return
        code = starter.run(argv, kwargs["env"], kwargs["cwd"])
        if code != 0:
            raise StageCmdFailedError(cmd, code)

    warm_run.edgeops_warm = True  # type: ignore[attr-defined]
    dvc_run._run = warm_run


def reproduce(stage: str, pull: bool = False) -> int:
    """`dvc repro --single-item STAGE` (with `--pull`: restored from the DVC remote's run cache when
    another workspace ran it with the same inputs)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    _install_warm_runner()

    os.environ["EDGEOPS_STAGE"] = stage  # the stage's process records its own time under this name
    try:
        with Repo(".") as repo:
            repo.scm_context.quiet = True  # no "git add dvc.lock" hint after every stage
            repo.reproduce(stage, single_item=True, pull=pull)
        return 0
    except DvcException as e:
        print(f"ERROR: {_reason(e)}", flush=True)
        return FAILED
    except Exception as e:  # DVC itself crashed: one line, like every edgeops failure
        print(f"ERROR: {type(e).__name__}: {_reason(e)}", flush=True)
        return FAILED
    finally:
        os.environ.pop("EDGEOPS_STAGE", None)


def serve() -> None:
    preload()
    start_starter()
    for line in sys.stdin:
        if line.strip():
            request = json.loads(line)
            # the flow's environment for this stage: the worker may have started before the flow run did
            os.environ.clear()
            os.environ.update(request["env"])
            code = reproduce(request["stage"], request.get("pull", False))
            sys.stderr.flush()
            print(f"{DONE} {code}", flush=True)
    # the flow closed stdin: nothing is left to write, so skip tearing down torch, MLflow and DVC (~3-4 s
    # that the flow run would wait for)
    sys.stderr.flush()
    os._exit(0)


class DvcWorker:
    """The flow's side: one worker process, restarted if it dies (a task retry then gets a fresh one).

    env: the environment every stage runs in, sent with each stage (the process may have been started
    earlier, by prestart, with the environment of that moment). pull: restore stages from the DVC
    remote's run cache (team mode)."""

    def __init__(self, project_dir: Path, env: dict[str, str], pull: bool = False) -> None:
        self.project_dir = project_dir
        self.env = env
        self.pull = pull
        self.proc: subprocess.Popen[str] | None = None

    @classmethod
    def for_project(cls, project_dir: Path, env: dict[str, str], pull: bool = False) -> DvcWorker:
        """The worker prestart started for project_dir (its imports done or under way), else a new one."""
        worker = _PRESTARTED.pop(project_dir, None) or cls(project_dir, env)
        worker.env, worker.pull = env, pull
        return worker

    def _started(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgeops.orchestration.dvc_worker"],
                cwd=self.project_dir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                env=self.env,
            )
        return self.proc

    def reproduce(self, stage: str, on_line: Callable[[str], None]) -> int:
        """Reproduce one stage, passing each output line to on_line; returns 0 or the failure code."""
        proc = self._started()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"stage": stage, "env": self.env, "pull": self.pull}) + "\n")
        proc.stdin.flush()
        for line in proc.stdout:
            if line.startswith(DONE):
                return int(line.split()[-1])
            on_line(line.rstrip("\n"))
        code = proc.wait()  # the worker itself died: report it, the next call starts a new one
        on_line(f"ERROR: the DVC worker exited with code {code}")
        return code or FAILED

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # end of input: the worker's loop ends
            wait_or_kill(self.proc)
        self.proc = None

    def __enter__(self) -> DvcWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_PRESTARTED: dict[Path, DvcWorker] = {}


def prestart(project_dir: Path, env: dict[str, str]) -> None:
    """Start project_dir's worker now, so its imports (~10 s) overlap what the caller waits for (the
    Prefect server's start); the flow run then takes it with DvcWorker.for_project."""
    discard_prestarted()
    worker = DvcWorker(project_dir, env)
    worker._started()
    _PRESTARTED[project_dir] = worker


def discard_prestarted() -> None:
    """Stop a prestarted worker that no flow run took (the run failed before its first stage)."""
    while _PRESTARTED:
        _PRESTARTED.popitem()[1].close()


if __name__ == "__main__":
    serve()
