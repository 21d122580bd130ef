"""The edge agent: sync a channel from a target, verify, switch atomically, roll back, predict.

Agent folder layout:

    DIR/versions/<version>/   model.xml, model.bin, model.json, manifest.json, pointer.json
    DIR/current  -> versions/<version>     (relative symlink, swapped with os.replace)
    DIR/previous -> versions/<version>     (what `edge rollback` goes back to)
    DIR/state.json                         origin (target, model, channel), held versions, history
    DIR/.incoming-*/                        downloads in progress (never used before verification)

Needs only openvino, numpy, pillow (+ boto3 for s3:// targets): no torch / NNCF / MLflow / Prefect.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeops.edge.inference import current_folder
from edgeops.edge.publish import (
    MANIFEST,
    REQUIRED_FILES,
    check_name,
    read_pointer,
    version_prefix,
)
from edgeops.edge.state import (
    agent_lock,
    current_version,
    previous_version,
    prune,
    read_state,
    record,
    swap_link,
    utc_now,
)
from edgeops.edge.targets import Store, TargetError, within_deadline
from edgeops.edge.verify import (
    IntegrityError,
    check_loadable,
    disk_error,
    local_damage,
    verify_file,
)
from edgeops.errors import EdgeopsError
from edgeops.files import sha256_bytes, sha256_file

DEFAULT_SYNC_TIMEOUT_S = 1800.0  # a whole sync; per-request timeouts don't stop a trickling store


def sync_timeout() -> float:
    """EDGEOPS_SYNC_TIMEOUT seconds (0 disables); the default fits a few hundred MB on a slow link."""
    raw = os.environ.get("EDGEOPS_SYNC_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_SYNC_TIMEOUT_S
    except ValueError:
        raise EdgeopsError(f"EDGEOPS_SYNC_TIMEOUT={raw!r} is not a number of seconds") from None


# --------------------------------------------------------------------------- sync


@dataclass
class SyncResult:
    changed: bool
    version: str
    previous: str | None
    message: str


def _download_verified(store: Store, pointer: dict[str, Any], model: str, dest: Path) -> dict[str, Any]:
    version = check_name("version", str(pointer["version"]))
    base = version_prefix(model, version)
    manifest_bytes = store.get_bytes(base + MANIFEST)
    if sha256_bytes(manifest_bytes) != pointer["manifest_sha256"]:
        raise IntegrityError(
            f"{MANIFEST} of {model} v{version} at {store.describe(base)} does not match the pointer's "
            "sha256: tampered manifest refused, current model kept"
        )
    try:
        manifest = json.loads(manifest_bytes)
        files: dict[str, dict[str, Any]] = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{store.describe(base + MANIFEST)} is not a valid manifest") from None
    for name in REQUIRED_FILES:
        if name not in files:
            raise IntegrityError(f"{store.describe(base + MANIFEST)} does not list {name}")
    for name, entry in files.items():
        if "/" in name or name.startswith(".") or name in (MANIFEST, "pointer.json"):
            raise IntegrityError(f"{store.describe(base + MANIFEST)} lists an unsafe file name {name!r}")
        store.download(base + name, dest / name)
        verify_file(dest / name, name, entry, store.describe(base + name))
    # second, independent check: the sha256s the exporter wrote into model.json
    meta = json.loads((dest / "model.json").read_text())
    for name, sha in (meta.get("files") or {}).items():
        if name in files and files[name]["sha256"] != sha:
            raise IntegrityError(f"{name} of {model} v{version} does not match the sha256 in model.json")
    (dest / MANIFEST).write_bytes(manifest_bytes)
    return manifest


def sync(store: Store, model: str, channel: str, agent_dir: Path, *, force: bool = False) -> SyncResult:
    """Install the version the channel pointer names, if it is new. Never breaks the current model."""
    agent_dir = Path(agent_dir)
    try:
        return _sync_locked(store, model, channel, agent_dir, force)
    except OSError as e:  # disk full, read-only folder, permissions: the old model is still in place
        raise disk_error(agent_dir, e) from None


def _sync_locked(store: Store, model: str, channel: str, agent_dir: Path, force: bool) -> SyncResult:
    with agent_lock(agent_dir):
        pointer = within_deadline(
            lambda: read_pointer(store, model, channel),
            sync_timeout(),
            f"reading the {channel} pointer of {model} from {store.uri}",
        )
        if pointer is None:
            raise EdgeopsError(
                f"{store.describe(f'{model}/{channel}.json')} not found: nothing promoted to '{channel}' yet "
                "(run `edgeops promote` or check --target/--model/--channel)"
            )
        version = check_name("version", str(pointer["version"]))
        state = read_state(agent_dir)
        state.update({"target": store.uri, "model": model, "channel": channel})
        current = current_version(agent_dir)
        installed_sha = _installed_manifest_sha(agent_dir, version) if current == version else None
        damage = local_damage(agent_dir / "versions" / version) if current == version else None
        if not force and installed_sha == pointer["manifest_sha256"] and damage is None:
            return SyncResult(False, version, previous_version(agent_dir), f"v{version} is current")
        if not force and version in state.get("held", []):
            return SyncResult(
                False,
                current or version,
                previous_version(agent_dir),
                f"v{version} was rolled back on this device; not re-installing it (use --force)",
            )
        reused = not force and current != version and _local_copy_ok(agent_dir, version, pointer)
        if not reused:  # e.g. a registry rollback to our `previous`: no download needed
            _fetch_and_install(store, pointer, model, agent_dir, version)
        if current and current != version:
            swap_link(agent_dir, "previous", current)
        swap_link(agent_dir, "current", version)
        state["held"] = [v for v in state.get("held", []) if v != version]
        record(agent_dir, state, "sync", version, replaced=current, reused=reused)
        prune(agent_dir)
        if current == version and damage and not force:
            return SyncResult(True, version, previous_version(agent_dir), f"repaired v{version} ({damage})")
        how = "switched to the kept copy of" if reused else "installed"
        was = f" (was v{current})" if current and current != version else ""
        return SyncResult(True, version, current, f"{how} v{version}{was}")


def _fetch_and_install(
    store: Store, pointer: dict[str, Any], model: str, agent_dir: Path, version: str
) -> None:
    incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=agent_dir))
    os.chmod(incoming, 0o755)  # mkdtemp makes 0700; a server may run as another user
    try:
        # only the network part is under the deadline: the local install below must not be interrupted
        within_deadline(
            lambda: _download_verified(store, pointer, model, incoming),
            sync_timeout(),
            f"downloading {model} v{version} from {store.uri}",
        )
        check_loadable(incoming)
        (incoming / "pointer.json").write_text(json.dumps({**pointer, "synced_at": utc_now()}, indent=2))
        _install(agent_dir, incoming, version)
    except TargetError as e:
        raise EdgeopsError(f"sync of {model} v{version} failed: {e}; current model kept") from None
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def _local_copy_ok(agent_dir: Path, version: str, pointer: dict[str, Any]) -> bool:
    """A kept version (usually `previous`) that still matches the pointer's manifest, file by file."""
    folder = agent_dir / "versions" / version
    expected = pointer.get("manifest_sha256")
    if not expected or not (folder / MANIFEST).is_file() or sha256_file(folder / MANIFEST) != expected:
        return False
    if local_damage(folder) is not None:
        return False
    with contextlib.suppress(OSError):  # record where it came from this time
        (folder / "pointer.json").write_text(json.dumps({**pointer, "synced_at": utc_now()}, indent=2))
    return True


def _installed_manifest_sha(agent_dir: Path, version: str) -> str | None:
    path = agent_dir / "versions" / version / MANIFEST
    return sha256_file(path) if path.is_file() else None


def _install(agent_dir: Path, incoming: Path, version: str) -> None:
    versions = agent_dir / "versions"
    versions.mkdir(exist_ok=True)
    final = versions / version
    if final.exists():  # a forced re-sync: move the old copy aside, then replace
        trash = Path(tempfile.mkdtemp(prefix=".incoming-old-", dir=agent_dir))
        os.rename(final, trash / version)
    os.rename(incoming, final)
    incoming.mkdir()  # keep the caller's cleanup simple


# --------------------------------------------------------------------------- rollback / status


def rollback(agent_dir: Path) -> tuple[str, str]:
    """Switch back to the previous version; the abandoned one is held so a watcher won't re-install it."""
    agent_dir = Path(agent_dir)
    try:
        return _rollback_locked(agent_dir)
    except OSError as e:
        raise disk_error(agent_dir, e) from None


def _rollback_locked(agent_dir: Path) -> tuple[str, str]:
    with agent_lock(agent_dir):
        current, previous = current_version(agent_dir), previous_version(agent_dir)
        if not current:
            raise EdgeopsError(f"{agent_dir} has no current model: run `edgeops edge sync` first")
        if not previous or not (agent_dir / "versions" / previous).is_dir():
            raise EdgeopsError(f"{agent_dir} has no previous version to roll back to (only v{current})")
        damage = local_damage(agent_dir / "versions" / previous)
        if damage:
            raise EdgeopsError(
                f"cannot roll back {agent_dir} to v{previous}: {damage}; v{current} kept "
                "(sync that version again to repair it)"
            )
        swap_link(agent_dir, "current", previous)
        swap_link(agent_dir, "previous", current)
        state = read_state(agent_dir)
        state["held"] = sorted(set(state.get("held", [])) | {current})
        record(agent_dir, state, "rollback", previous, replaced=current)
        return current, previous


def status(agent_dir: Path) -> dict[str, Any]:
    agent_dir = Path(agent_dir)
    folder = current_folder(agent_dir)
    meta = json.loads((folder / "model.json").read_text())
    pointer: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        pointer = json.loads((folder / "pointer.json").read_text())
    state = read_state(agent_dir)
    return {
        "version": folder.name,
        "model": state.get("model") or pointer.get("model"),
        "channel": state.get("channel") or pointer.get("channel"),
        "target": state.get("target"),
        "source_run": meta.get("mlflow_run_id"),
        "dataset_fingerprint": meta.get("dataset_fingerprint"),
        "git_commit": meta.get("git_commit"),
        "variant": meta.get("variant"),
        "precision": meta.get("precision"),
        "task": meta.get("task"),
        "metric": meta.get("metric"),
        "score": (meta.get("metrics") or {}).get(meta.get("metric", "accuracy")),
        "labels": meta.get("labels", []),
        "input": meta.get("input", {}),
        "previous": previous_version(agent_dir),
        "held": state.get("held", []),
        "published_at": pointer.get("published_at"),
        "synced_at": pointer.get("synced_at"),
        "path": str(folder),
    }
