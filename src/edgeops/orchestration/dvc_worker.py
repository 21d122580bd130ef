"""Run DVC stages in one long-lived process, so no stage pays again for starting Python and importing DVC.

The Prefect flow sends stage names on stdin; the worker reproduces each one with DVC's Python API
(`Repo.reproduce(stage, single_item=True)`, what `dvc repro --single-item STAGE` does) and then
prints a DONE line with an exit code. The stage's command inherits the worker's stdout, so the flow
reads DVC's and the stage's output from one pipe, in order. `dvc repro` itself never uses this."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

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


def reproduce(stage: str) -> int:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    os.environ["EDGEOPS_STAGE"] = stage  # the stage's process records its own time under this name
    try:
        with Repo(".") as repo:
            repo.scm_context.quiet = True  # no "git add dvc.lock" hint after every stage
            repo.reproduce(stage, single_item=True)
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
    for line in sys.stdin:
        stage = line.strip()
        if stage:
            code = reproduce(stage)
            sys.stderr.flush()
            print(f"{DONE} {code}", flush=True)


class DvcWorker:
    """The flow's side: one worker process, restarted if it dies (a task retry then gets a fresh one)."""

    def __init__(self, project_dir: Path, env: dict[str, str]) -> None:
        self.project_dir = project_dir
        self.env = env
        self.proc: subprocess.Popen[str] | None = None

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
        proc.stdin.write(stage + "\n")
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


if __name__ == "__main__":
    serve()
