"""Files every part shares (pipeline, registry, edge): sha256, atomic writes, the model folder's model.json.

Needs only the standard library: the edge agent imports it without torch."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeops.errors import EdgeopsError

MODEL_JSON = "model.json"
# model.json's own format; bumped when a key changes meaning. 2 = task-specific `output`, `format_version`.
MODEL_FORMAT_VERSION = 2
IR_FILES = ("model.xml", "model.bin")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Readers see the old file or the new one, never a partial one (temp file in the same folder,
    fsync, rename). mode: the file's permissions (mkstemp alone makes 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, obj: Any, mode: int | None = None) -> None:
    write_atomic(Path(path), (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), mode)


@contextlib.contextmanager
def replaced_dir(out: str | Path) -> Iterator[Path]:
    """Yields a fresh temp folder beside `out`; on success it replaces `out`, on any failure it is
    deleted and `out` is left as it was (a stage's output is all new or all old)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def read_model_json(model_dir: str | Path, verify: bool = True) -> dict[str, Any]:
    """model.json of a model folder; with verify, every file it lists must match its sha256."""
    model_dir = Path(model_dir)
    path = model_dir / MODEL_JSON
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeopsError(
            f"{path} not found: pass a model folder made by the pipeline (model.xml, model.bin, model.json)"
        ) from None
    except (OSError, ValueError) as e:
        raise EdgeopsError(f"{path} is unreadable or not JSON ({e}): re-export the model") from None
    if not isinstance(meta, dict):
        raise EdgeopsError(f"{path}: expected a JSON object")
    if verify:
        if not isinstance(meta.get("files"), dict):
            raise EdgeopsError(f"{path} has no `files` checksums: re-export the model with this edgeops")
        for name, expected in meta["files"].items():
            file = model_dir / name
            if not file.exists():
                raise EdgeopsError(f"{file} is missing: the model folder is incomplete")
            if sha256_file(file) != expected:
                raise EdgeopsError(f"{file} does not match its sha256 in model.json: the file is corrupt")
    return meta
