"""Console conventions: progress lines, and one-line errors instead of tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

T = TypeVar("T")


def log(message: str) -> None:
    print(message, flush=True)


UNAVAILABLE = 75  # EX_TEMPFAIL: a server did not answer; the same command may work later


def fail(message: str, code: int = 2) -> NoReturn:
    """Exit code 2 = bad input or environment (fix and rerun); 75 = a server did not answer (rerun
    later); anything else = a bug or crash."""
    prefix = {2: "error", 130: "error", UNAVAILABLE: "unavailable"}.get(code, "internal error")
    print(f"{prefix}: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def run_main(main: Callable[[], T], fast_exit: bool = False) -> T:
    """Run a stage or command and return its result; user errors print one line and exit 2, bugs exit 1.

    EDGEOPS_DEBUG=1 shows the traceback. fast_exit: after a successful stage whose outputs are all
    written and closed, skip the interpreter's teardown (torch/NNCF/OpenVINO take 1-1.5 s to unload)."""
    from edgeops.errors import EdgeopsError, ServiceUnavailable

    try:
        result = main()
        _record_timing()
        if fast_exit:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return result
    except EdgeopsError as e:
        if os.environ.get("EDGEOPS_DEBUG"):
            raise
        fail(str(e), UNAVAILABLE if isinstance(e, ServiceUnavailable) else 2)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as e:  # a bug or an unexpected library failure: still one line by default
        if os.environ.get("EDGEOPS_DEBUG"):
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        fail(f"{type(e).__name__}: {first} (rerun with EDGEOPS_DEBUG=1 for the traceback)", 1)


def _record_timing() -> None:
    """When the Prefect flow runs this stage, it collects the stage's own time (process start to end,
    imports included): the rest of the flow's wall time is orchestration overhead."""
    path, stage = os.environ.get("EDGEOPS_TIMINGS"), os.environ.get("EDGEOPS_STAGE")
    if path and stage:
        with open(path, "a") as f:
            f.write(json.dumps({"stage": stage, "seconds": process_seconds()}) + "\n")


def process_seconds() -> float:
    """Wall time since this process started (what a stopwatch around the command would show so far)."""
    import psutil

    return time.time() - psutil.Process().create_time()


def wait_or_kill(proc: subprocess.Popen, seconds: float = 10) -> None:
    """Give a process we asked to stop `seconds` to exit, then kill it; it is reaped either way."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def git_commit() -> str | None:
    """HEAD commit, with '-dirty' when tracked files differ; None outside a git checkout."""
    from pathlib import Path

    from edgeops.errors import EdgeopsError
    from edgeops.orchestration.workspace import current_commit

    try:
        head, dirty = current_commit(Path("."), timeout=10)
    except EdgeopsError:
        return None
    return head + ("-dirty" if dirty else "")
