"""Publishing a version to every edge target of a stage, and putting pointers back when a later step fails."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgeops.config import Target
from edgeops.errors import EdgeopsError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from edgeops.edge.targets import Store


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """MLflow draws a tqdm bar per download; promotion output should stay a few lines."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def download_model(client: MlflowClient, name: str, version: str, tracking_uri: str, dest: Path) -> Path:
    import mlflow.artifacts

    try:
        # resolve through *this* client: `models:/` URIs would consult the process-wide default registry
        source = client.get_model_version_download_uri(name, version)
        with quiet_progress():
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(dest), tracking_uri=tracking_uri
            )
    except Exception as e:
        raise EdgeopsError(f"cannot download the files of {name} v{version} from the registry: {e}") from None
    # the IR folder: a plain folder (older versions), or inside the MLflow model (edgeops' pyfunc)
    candidates = [Path(path), Path(path) / "model", *sorted(Path(path).glob("artifacts/*"))]
    found = [f for f in candidates if (f / "model.xml").is_file()]
    folder = found[0] if found else Path(path)
    if not (folder / "model.xml").is_file():
        raise EdgeopsError(
            f"{name} v{version} has no model.xml in its source: it was not registered by edgeops"
        )
    return folder


@dataclass
class PointerUndo:
    """How to put a target's channel pointer back if the promotion does not complete."""

    store: Store
    key: str
    old: bytes | None  # the pointer before this promotion (None: there was none)


def read_old_pointer(store: Store, key: str) -> bytes | None:
    from edgeops.edge.targets import KeyMissing

    try:
        return store.get_bytes(key)
    except KeyMissing:
        return None


def undo_pointers(undo: list[PointerUndo]) -> str:
    """Put back every pointer this promotion moved; says what it did (or could not do) in a few words."""
    from edgeops.edge.targets import TargetError

    restored, failed = [], []
    for u in reversed(undo):
        try:
            info = u.store.head(u.key)
            if u.old is None:
                u.store.delete(u.key)
            elif info is not None:
                u.store.put_bytes(u.key, u.old, if_match=info.etag)  # not if someone moved it meanwhile
            restored.append(u.store.uri)
        except TargetError:
            failed.append(u.store.uri)
    text = f"pointer put back on {', '.join(restored)}" if restored else ""
    if failed:
        text += ("; " if text else "") + f"could NOT put back the pointer on {', '.join(failed)}: re-run"
    return text


def publish_to_targets(
    client: MlflowClient,
    tracking_uri: str,
    name: str,
    version: str,
    stage: str,
    targets: list[Target],
    undo: list[PointerUndo] | None = None,
) -> list[str]:
    """Publish to every target of the stage; the first failure stops and puts back the pointers
    already moved on the earlier targets, so no target is ahead of the (unchanged) registry.
    `undo` collects how to put back each moved pointer, for a registry failure after this."""
    if not targets:
        return []
    from edgeops.edge.publish import pointer_key, publish
    from edgeops.edge.targets import open_target

    done: list[str] = []
    moved: list[PointerUndo] = [] if undo is None else undo
    with tempfile.TemporaryDirectory(prefix="edgeops-promote-") as tmp:
        folder = download_model(client, name, version, tracking_uri, Path(tmp))
        for target in targets:
            store = open_target(target.uri, target.endpoint_url, target.region)
            key = pointer_key(name, stage)
            try:
                try:
                    old = read_old_pointer(store, key)
                except EdgeopsError as e:
                    raise EdgeopsError(
                        f"publishing {name} v{version} to {store.uri} failed: {e}; "
                        "the channel pointer was not changed"
                    ) from None
                report = publish(folder, store, name, version, stage)
            except EdgeopsError as e:
                put_back = undo_pointers(moved)
                moved.clear()
                ok = f" ({put_back})" if put_back else ""
                raise EdgeopsError(f"{e}; registry not changed{ok}: fix the target and re-run") from None
            if report.pointer_written:
                moved.append(PointerUndo(store, key, old))
            done.append(report.summary())
    return done
