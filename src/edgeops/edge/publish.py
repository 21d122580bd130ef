"""Publish an exported model folder to an edge target.

Layout on the target (relative to its prefix):

    <model>/<version>/model.xml, model.bin, model.json, ...   immutable once the manifest exists
    <model>/<version>/manifest.json                           sha256 + size of every file above
    <model>/<channel>.json                                    the pointer; written LAST

Readers follow the pointer, so they never see a half-published version: files go up first, then
the manifest, then the pointer. Re-publishing the same version skips files that are already there
with the right sha256 and does not rewrite an identical pointer (idempotent).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeops.edge.targets import KeyMissing, PreconditionFailed, Store, TargetError
from edgeops.errors import EdgeopsError
from edgeops.files import read_model_json, sha256_bytes, sha256_file

MANIFEST = "manifest.json"
FORMAT = 1
REQUIRED_FILES = ("model.xml", "model.bin", "model.json")
# Lineage copied from model.json into the manifest and pointer so `edge status` can show it.
LINEAGE_KEYS = ("variant", "precision", "mlflow_run_id", "dataset_fingerprint", "git_commit")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(kind: str, value: str) -> str:
    """Model names, versions and channels become key parts: keep them to one safe segment."""
    if not _NAME.match(value) or ".." in value:
        raise EdgeopsError(f"invalid {kind} {value!r}: use letters, digits, '.', '_' or '-'")
    return value


def pointer_key(model: str, channel: str) -> str:
    return f"{check_name('model name', model)}/{check_name('channel', channel)}.json"


def version_prefix(model: str, version: str) -> str:
    return f"{check_name('model name', model)}/{check_name('version', version)}/"


def canonical_json(obj: Any) -> bytes:
    """Deterministic bytes so identical content always has an identical sha256."""
    return (json.dumps(obj, sort_keys=True, indent=2) + "\n").encode()


def build_manifest(model_dir: Path, model: str, version: str) -> dict[str, Any]:
    """Manifest of every regular top-level file; refuses a folder whose files contradict model.json."""
    for name in REQUIRED_FILES:
        if not (model_dir / name).is_file():
            raise EdgeopsError(
                f"{model_dir / name} missing: a model folder holds {', '.join(REQUIRED_FILES)}"
            )
    meta = read_model_json(model_dir, verify=False)
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.name != MANIFEST:
            files[path.name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    for name, expected in (meta.get("files") or {}).items():
        if name in files and files[name]["sha256"] != expected:
            raise EdgeopsError(
                f"{model_dir / name} does not match the sha256 in model.json: re-export the model"
            )
    lineage = {k: meta.get(k) for k in LINEAGE_KEYS if meta.get(k) is not None}
    return {"format": FORMAT, "model": model, "version": version, "files": files, "lineage": lineage}


@dataclass
class PublishReport:
    target: str
    model: str
    version: str
    channel: str | None
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pointer_written: bool = False

    def summary(self) -> str:
        where = f"{self.target} ({self.model} v{self.version}"
        where += f" → {self.channel})" if self.channel else ")"
        pointer = "pointer updated" if self.pointer_written else "pointer unchanged"
        return f"{where}: {len(self.uploaded)} uploaded, {len(self.skipped)} already there, {pointer}"


def _already_there(store: Store, key: str, sha: str, size: int) -> bool:
    info = store.head(key)
    if info is None or info.size != size:
        return False
    if info.sha256 is not None:
        return info.sha256 == sha
    return sha256_bytes(store.get_bytes(key)) == sha


def _upload_version(store: Store, model_dir: Path, manifest: dict[str, Any], report: PublishReport) -> bytes:
    base = version_prefix(report.model, report.version)
    manifest_bytes = canonical_json(manifest)
    try:
        existing = store.get_bytes(base + MANIFEST)
    except KeyMissing:
        existing = None
    if existing is not None and existing != manifest_bytes:
        raise EdgeopsError(
            f"{store.describe(base)} already holds a different version {report.version}: published versions "
            "are immutable, register a new version instead"
        )
    for name, entry in manifest["files"].items():
        key = base + name
        if _already_there(store, key, entry["sha256"], entry["size"]):
            report.skipped.append(name)
            continue
        store.put_bytes(key, (model_dir / name).read_bytes(), sha256=entry["sha256"])
        report.uploaded.append(name)
    if existing is None:
        try:
            # conditional: two publishers of the same version must not interleave different manifests
            store.put_bytes(
                base + MANIFEST, manifest_bytes, sha256=sha256_bytes(manifest_bytes), if_absent=True
            )
        except PreconditionFailed:
            if store.get_bytes(base + MANIFEST) != manifest_bytes:
                raise EdgeopsError(
                    f"{store.describe(base)} was published concurrently with other content"
                ) from None
        report.uploaded.append(MANIFEST)
    else:
        report.skipped.append(MANIFEST)
    return manifest_bytes


def make_pointer(manifest: dict[str, Any], manifest_bytes: bytes, channel: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": manifest["model"],
        "channel": channel,
        "version": manifest["version"],
        "manifest": version_prefix(manifest["model"], manifest["version"]) + MANIFEST,
        "manifest_sha256": sha256_bytes(manifest_bytes),
        "lineage": manifest.get("lineage", {}),
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _write_pointer(store: Store, pointer: dict[str, Any], report: PublishReport) -> None:
    key = pointer_key(report.model, pointer["channel"])
    info = store.head(key)
    if info is not None:
        try:
            old = json.loads(store.get_bytes(key))
        except ValueError:
            old = {}
        if (
            old.get("version") == pointer["version"]
            and old.get("manifest_sha256") == pointer["manifest_sha256"]
        ):
            return  # same version already live: do not touch it (idempotent)
    data = canonical_json(pointer)
    try:
        # optimistic concurrency: only replace the pointer we read, never one written meanwhile
        if info is None:
            store.put_bytes(key, data, if_absent=True)
        else:
            store.put_bytes(key, data, if_match=info.etag)
    except PreconditionFailed:
        raise EdgeopsError(
            f"{store.describe(key)} was changed by someone else while publishing: check it and re-run"
        ) from None
    report.pointer_written = True


def publish(model_dir: Path, store: Store, model: str, version: str, channel: str | None) -> PublishReport:
    """Upload `model_dir` as `<model>/<version>/` and then (if `channel`) move the channel pointer.

    On any failure the pointer is untouched and the error names the file that failed.
    """
    check_name("model name", model)
    check_name("version", str(version))
    if channel is not None:
        check_name("channel", channel)
    report = PublishReport(target=store.uri, model=model, version=str(version), channel=channel)
    manifest = build_manifest(Path(model_dir), model, str(version))
    try:
        manifest_bytes = _upload_version(store, Path(model_dir), manifest, report)
        if channel is not None:
            _write_pointer(store, make_pointer(manifest, manifest_bytes, channel), report)
    except TargetError as e:
        pointer = "the channel pointer was not changed" if not report.pointer_written else "pointer written"
        raise EdgeopsError(f"publishing {model} v{version} to {store.uri} failed: {e}; {pointer}") from None
    return report


def read_pointer(store: Store, model: str, channel: str) -> dict[str, Any] | None:
    try:
        raw = store.get_bytes(pointer_key(model, channel))
    except KeyMissing:
        return None
    try:
        pointer = json.loads(raw)
    except ValueError:
        raise EdgeopsError(f"{store.describe(pointer_key(model, channel))} is not valid JSON") from None
    problem = pointer_problem(pointer)
    if problem:
        raise EdgeopsError(
            f"{store.describe(pointer_key(model, channel))} is not a valid edgeops pointer ({problem}): "
            "re-promote the version to rewrite it"
        )
    return dict(pointer)


def pointer_problem(pointer: Any) -> str | None:
    """What makes `pointer` unusable by a device, or None. The manifest sha256 is the chain of trust."""
    if not isinstance(pointer, dict):
        return "not a JSON object"
    version = pointer.get("version")
    if not isinstance(version, str | int) or isinstance(version, bool):
        return "no version"
    if not _NAME.match(str(version)) or ".." in str(version):
        return f"invalid version {str(version)!r}"
    if not re.fullmatch(r"[0-9a-f]{64}", str(pointer.get("manifest_sha256", ""))):
        return "no manifest_sha256"
    return None
