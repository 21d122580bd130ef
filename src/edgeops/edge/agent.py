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
import fcntl
import io
import json
import os
import queue
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeops.edge.publish import (
    MANIFEST,
    REQUIRED_FILES,
    check_name,
    read_pointer,
    version_prefix,
)
from edgeops.edge.targets import Store, TargetError, deadline
from edgeops.errors import EdgeopsError
from edgeops.files import sha256_bytes, sha256_file, write_json_atomic
from edgeops.images import model_input, open_image
from edgeops.vision import get_task

STATE = "state.json"
HISTORY_LIMIT = 50
DEFAULT_SYNC_TIMEOUT_S = 1800.0  # a whole sync; per-request timeouts don't stop a trickling store


def sync_timeout() -> float:
    """EDGEOPS_SYNC_TIMEOUT seconds (0 disables); the default fits a few hundred MB on a slow link."""
    raw = os.environ.get("EDGEOPS_SYNC_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_SYNC_TIMEOUT_S
    except ValueError:
        raise EdgeopsError(f"EDGEOPS_SYNC_TIMEOUT={raw!r} is not a number of seconds") from None


class IntegrityError(EdgeopsError):
    """A downloaded version failed verification; the current model was kept."""


class InferenceError(EdgeopsError):
    """The model ran but its output is unusable (e.g. NaN/inf logits from corrupt weights)."""


class BadImage(EdgeopsError):
    """An input that is not a usable image. `status` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- folder state


def read_state(agent_dir: Path) -> dict[str, Any]:
    try:
        state = json.loads((agent_dir / STATE).read_text())
        return state if isinstance(state, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def _record(agent_dir: Path, state: dict[str, Any], action: str, version: str, **extra: Any) -> None:
    history = list(state.get("history", []))
    history.append({"when": _now(), "action": action, "version": version, **extra})
    state["history"] = history[-HISTORY_LIMIT:]
    write_json_atomic(agent_dir / STATE, state)


@contextlib.contextmanager
def _agent_lock(agent_dir: Path) -> Iterator[None]:
    """One writer at a time (sync --watch, a manual rollback, a one-shot sync)."""
    agent_dir.mkdir(parents=True, exist_ok=True)
    with open(agent_dir / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _link_version(agent_dir: Path, name: str) -> str | None:
    try:
        target = os.readlink(agent_dir / name)
    except (FileNotFoundError, OSError):
        return None
    return Path(target).name


def current_version(agent_dir: Path) -> str | None:
    return _link_version(agent_dir, "current")


def previous_version(agent_dir: Path) -> str | None:
    return _link_version(agent_dir, "previous")


def current_dir(agent_dir: Path) -> Path | None:
    """Resolved folder of the current version (stable even if `current` is swapped later)."""
    version = current_version(agent_dir)
    return (agent_dir / "versions" / version) if version else None


def _swap_link(agent_dir: Path, name: str, version: str) -> None:
    tmp = agent_dir / f".{name}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(f"versions/{version}", tmp)  # relative: the folder may be moved as a whole
    os.replace(tmp, agent_dir / name)  # atomic: readers see the old or the new link


def _prune(agent_dir: Path) -> None:
    keep = {current_version(agent_dir), previous_version(agent_dir)}
    versions = agent_dir / "versions"
    for child in versions.iterdir() if versions.is_dir() else []:
        if child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
    for child in agent_dir.glob(".incoming-*"):  # left behind by a killed sync
        shutil.rmtree(child, ignore_errors=True)


# --------------------------------------------------------------------------- sync


@dataclass
class SyncResult:
    changed: bool
    version: str
    previous: str | None
    message: str


def _verify_file(path: Path, name: str, entry: dict[str, Any], where: str) -> None:
    size = path.stat().st_size
    if size != entry.get("size"):
        raise IntegrityError(
            f"{name} from {where} has {size} bytes, manifest says {entry.get('size')}: partial or tampered "
            "download refused, current model kept"
        )
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise IntegrityError(
            f"{name} from {where} has sha256 {actual[:12]}…, manifest says {str(entry.get('sha256'))[:12]}…: "
            "tampered or corrupt file refused, current model kept"
        )


def local_damage(folder: Path) -> str | None:
    """Why an installed version folder can't be trusted (missing, truncated, tampered file), or None.

    Checks every file against the folder's own manifest.json: sizes, then sha256."""
    if not folder.is_dir():
        return f"{folder} is missing"
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        if not isinstance(files, dict) or not all(n in files for n in REQUIRED_FILES):
            return f"{folder / MANIFEST} is not a valid manifest"
        for name, entry in files.items():
            if not (folder / name).is_file():
                return f"{name} is missing from {folder}"
            _verify_file(folder / name, name, entry, str(folder))
    except FileNotFoundError:
        return f"{folder} has no {MANIFEST}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{folder / MANIFEST} is not a valid manifest"
    except IntegrityError as e:
        return str(e).split(":", 1)[0]  # "model.bin from DIR has N bytes, manifest says M"
    except OSError as e:
        return f"cannot read {folder}: {e.strerror or e}"
    return None


def verify_folder(folder: Path) -> None:
    """Raise IntegrityError unless every file of an installed version matches its manifest."""
    damage = local_damage(folder)
    if damage:
        raise IntegrityError(f"v{folder.name} on disk is damaged: {damage}; not loading it")


def disk_error(agent_dir: Path, e: OSError) -> EdgeopsError:
    """A local write/read failure (disk full, read-only, permissions) as one actionable line."""
    where = e.filename or agent_dir
    return EdgeopsError(
        f"cannot write the agent folder {agent_dir}: {e.strerror or e} ({where}); "
        "free space or fix permissions and re-run, current model kept"
    )


def _check_loadable(folder: Path) -> None:
    """The last gate before a swap: OpenVINO must read the IR and it must match model.json."""
    import openvino as ov

    meta = json.loads((folder / "model.json").read_text())
    try:
        model = ov.Core().read_model(str(folder / "model.xml"))
    except Exception as e:  # openvino raises RuntimeError subclasses with long messages
        raise IntegrityError(f"model.xml does not load in OpenVINO: {str(e).splitlines()[0]}") from None
    want = meta.get("input", {}).get("shape")
    got = (
        list(model.inputs[0].get_partial_shape().to_shape())
        if model.inputs[0].get_partial_shape().is_static
        else None
    )
    if want and got and list(want) != got:
        raise IntegrityError(f"model.xml input shape {got} does not match model.json input.shape {want}")


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
        _verify_file(dest / name, name, entry, store.describe(base + name))
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
    with _agent_lock(agent_dir):
        with deadline(sync_timeout(), f"reading the {channel} pointer of {model} from {store.uri}"):
            pointer = read_pointer(store, model, channel)
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
            _swap_link(agent_dir, "previous", current)
        _swap_link(agent_dir, "current", version)
        state["held"] = [v for v in state.get("held", []) if v != version]
        _record(agent_dir, state, "sync", version, replaced=current, reused=reused)
        _prune(agent_dir)
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
        with deadline(sync_timeout(), f"downloading {model} v{version} from {store.uri}"):
            _download_verified(store, pointer, model, incoming)
        _check_loadable(incoming)
        (incoming / "pointer.json").write_text(json.dumps({**pointer, "synced_at": _now()}, indent=2))
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
        (folder / "pointer.json").write_text(json.dumps({**pointer, "synced_at": _now()}, indent=2))
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
    with _agent_lock(agent_dir):
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
        _swap_link(agent_dir, "current", previous)
        _swap_link(agent_dir, "previous", current)
        state = read_state(agent_dir)
        state["held"] = sorted(set(state.get("held", [])) | {current})
        _record(agent_dir, state, "rollback", previous, replaced=current)
        return current, previous


def status(agent_dir: Path) -> dict[str, Any]:
    agent_dir = Path(agent_dir)
    folder = _current_folder(agent_dir)
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


# --------------------------------------------------------------------------- inference

DEFAULT_MAX_PIXELS = 40_000_000  # ~ 6300 x 6300: above this, an upload is a decompression bomb to us


class EdgeModel:
    """A compiled model of one version folder. Thread-safe: a small pool of infer requests."""

    def __init__(self, folder: Path, *, device: str = "CPU", config: dict[str, Any] | None = None) -> None:
        import openvino as ov

        self.folder = Path(folder)
        self.meta: dict[str, Any] = json.loads((self.folder / "model.json").read_text())
        self.version = self.folder.name
        self.labels: list[str] = [str(x) for x in self.meta.get("labels", [])]
        self.task = get_task(str(self.meta.get("task", "classification")))
        shape = self.meta.get("input", {}).get("shape") or [1, 0, 0, 3]
        self.height, self.width = int(shape[1]), int(shape[2])
        self.compiled = ov.Core().compile_model(
            str(self.folder / "model.xml"), device, config or {"PERFORMANCE_HINT": "LATENCY"}
        )
        try:
            n = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        except Exception:
            n = 1
        self._requests: queue.Queue[Any] = queue.Queue()
        for _ in range(max(1, min(n, 4))):
            self._requests.put(self.compiled.create_infer_request())

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Raw logits for one preprocessed u8 NHWC batch."""
        request = self._requests.get()
        try:
            request.infer({0: batch})
            return np.array(request.get_output_tensor(0).data, copy=True)
        finally:
            self._requests.put(request)

    def preprocess(
        self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """Model input (1, H, W, 3) u8 and the original (width, height), decoded as in training."""
        from PIL import UnidentifiedImageError

        try:
            img = open_image(io.BytesIO(data))  # lazy: reads the header only
        except UnidentifiedImageError:
            raise BadImage(
                "not an image (could not identify the format): upload a JPEG or PNG", 400
            ) from None
        except ValueError:  # Pillow's own decompression-bomb limit
            raise BadImage(f"image too large (over {max_pixels} pixels)", 413) from None
        w, h = img.size
        if w * h > max_pixels:
            raise BadImage(f"image too large: {w}x{h} is over {max_pixels} pixels", 413)
        try:
            pixels = model_input(img, (self.width, self.height))
        except (OSError, ValueError, SyntaxError) as e:  # truncated / corrupt payloads
            raise BadImage(f"corrupt image: {e}", 400) from None
        return pixels[None], (w, h)

    def predict_bytes(
        self, data: bytes, top_k: int = 5, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> dict[str, Any]:
        batch, original_size = self.preprocess(data, max_pixels)
        raw = self.infer(batch)
        if not np.all(np.isfinite(raw)):
            raise InferenceError(
                f"v{self.version} produced non-finite scores (NaN/inf): the model is broken, "
                "roll back with `edgeops edge rollback`"
            )
        labels = self.labels or [str(i) for i in range(int(raw.shape[1]))]
        return {"version": self.version, **self.task.answer(raw, original_size, labels, top_k)}


def _current_folder(agent_dir: Path) -> Path:
    folder = current_dir(Path(agent_dir))
    if folder is None:
        raise EdgeopsError(
            f"{agent_dir} has no current model: run `edgeops edge sync --dir {agent_dir}` first"
        )
    if not (folder / "model.json").is_file():
        raise EdgeopsError(
            f"{agent_dir}/current names v{folder.name} but {folder} is missing or incomplete: "
            f"run `edgeops edge sync --dir {agent_dir}` to repair it"
        )
    return folder


def load_current(agent_dir: Path) -> EdgeModel:
    """The current version, verified file by file against its manifest before it is compiled."""
    folder = _current_folder(Path(agent_dir))
    verify_folder(folder)
    return EdgeModel(folder)
