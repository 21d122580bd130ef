"""Embedded Prefect for `edgeops run`: its home inside the project and a temporary local API server.

Without PREFECT_API_URL, Prefect starts a temporary server by itself once the flow starts, after
importing its server code into this process as well (2-3 s). Here the same server (the command
Prefect's ephemeral mode runs) starts first, as its own process, while this process imports Prefect
and reads the DVC graph. A PREFECT_API_URL set by the user always wins."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from edgeops.console import wait_or_kill
from edgeops.errors import EdgeopsError

BIND_FAILED = 3  # uvicorn's exit code when the port was taken in the meantime


def embedded_defaults() -> None:
    """Prefect's home inside the project, no telemetry; flows/ and tasks/ importable from the project root."""
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    os.environ.setdefault("PREFECT_HOME", str(Path(".prefect").resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _flush_prefect_logs() -> None:
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=5)


def _own_session_dying_with_parent() -> None:
    os.setsid()
    if sys.platform == "linux":  # PR_SET_PDEATHSIG: SIGTERM if edgeops itself is killed
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class TemporaryServer:
    """A Prefect API server on loopback for the length of one command (nothing to do if the user has one)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = os.environ.get("PREFECT_API_URL", "")

    def start(self) -> TemporaryServer:
        if self.url and self.proc is None:
            return self  # the user's server
        port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app"]
            + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1"},
            # Ctrl-C must not kill the server before the flow has reported its end to it; it stops with us
            preexec_fn=_own_session_dying_with_parent,
        )
        self.url = f"http://127.0.0.1:{port}/api"
        os.environ["PREFECT_API_URL"] = self.url  # read by Prefect when it is imported after this
        # no "View at" link in the logs: this server has no UI and stops with the command
        os.environ.setdefault("PREFECT_UI_URL", "")
        return self

    def wait_ready(self, seconds: float | None = None) -> None:
        """Block until the API answers (by default 90 s for our server, 10 s for the user's); one clear
        line if it never does."""
        seconds = seconds if seconds is not None else (90 if self.proc else 10)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
            if self.proc is not None and self.proc.poll() is not None:
                if self.proc.returncode == BIND_FAILED:
                    self.start()
                    continue
                raise EdgeopsError(
                    f"the temporary Prefect server exited with code {self.proc.returncode} (see its output "
                    f"above); check PREFECT_HOME={os.environ.get('PREFECT_HOME')} is writable"
                )
            time.sleep(0.1)
        if self.proc is None:
            raise EdgeopsError(
                f"the Prefect API at PREFECT_API_URL={self.url} is not reachable: start that server, "
                "or unset PREFECT_API_URL to use a temporary local one"
            )
        raise EdgeopsError(f"the temporary Prefect server did not answer within {seconds:.0f}s")

    def stop(self) -> None:
        if self.proc is not None:
            _flush_prefect_logs()  # else Prefect sends its last log lines at exit, to a server that is gone
            self.proc.terminate()
            wait_or_kill(self.proc)
            self.proc = None
            os.environ.pop("PREFECT_API_URL", None)

    def __enter__(self) -> TemporaryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
