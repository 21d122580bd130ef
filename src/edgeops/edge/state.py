"""The agent folder's state: `current` / `previous` links, state.json, the lock, pruning old versions."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeops.files import write_json_atomic

STATE = "state.json"
HISTORY_LIMIT = 50


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- folder state


def read_state(agent_dir: Path) -> dict[str, Any]:
    try:
        state = json.loads((agent_dir / STATE).read_text())
        return state if isinstance(state, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def record(agent_dir: Path, state: dict[str, Any], action: str, version: str, **extra: Any) -> None:
    history = list(state.get("history", []))
    history.append({"when": utc_now(), "action": action, "version": version, **extra})
    state["history"] = history[-HISTORY_LIMIT:]
    write_json_atomic(agent_dir / STATE, state)


@contextlib.contextmanager
def agent_lock(agent_dir: Path) -> Iterator[None]:
    """One writer at a time (sync --watch, a manual rollback, a one-shot sync)."""
    agent_dir.mkdir(parents=True, exist_ok=True)
    with open(agent_dir / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def link_version(agent_dir: Path, name: str) -> str | None:
    try:
        target = os.readlink(agent_dir / name)
    except (FileNotFoundError, OSError):
        return None
    return Path(target).name


def current_version(agent_dir: Path) -> str | None:
    return link_version(agent_dir, "current")


def previous_version(agent_dir: Path) -> str | None:
    return link_version(agent_dir, "previous")


def current_dir(agent_dir: Path) -> Path | None:
    """Resolved folder of the current version (stable even if `current` is swapped later)."""
    version = current_version(agent_dir)
    return (agent_dir / "versions" / version) if version else None


def swap_link(agent_dir: Path, name: str, version: str) -> None:
    tmp = agent_dir / f".{name}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(f"versions/{version}", tmp)  # relative: the folder may be moved as a whole
    os.replace(tmp, agent_dir / name)  # atomic: readers see the old or the new link


def prune(agent_dir: Path) -> None:
    keep = {current_version(agent_dir), previous_version(agent_dir)}
    versions = agent_dir / "versions"
    for child in versions.iterdir() if versions.is_dir() else []:
        if child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
    for child in agent_dir.glob(".incoming-*"):  # left behind by a killed sync
        shutil.rmtree(child, ignore_errors=True)
