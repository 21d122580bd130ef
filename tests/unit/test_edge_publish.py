"""Publishing: files, then manifest, then pointer; idempotent; failures leave the pointer alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgeops.edge.publish import publish, read_pointer, sha256_bytes
from edgeops.edge.targets import FileStore, Store, TargetError, open_target
from edgeops.errors import EdgeopsError
from tests.unit.edge_helpers import build_model


class Recording(FileStore):
    """A folder target that logs writes and can fail on the N-th one."""

    def __init__(self, root: Path, fail_on: int | None = None) -> None:
        super().__init__(f"file://{root}", root)
        self.writes: list[str] = []
        self.fail_on = fail_on

    def put_bytes(self, key: str, data: bytes, **kw: Any) -> None:
        if self.fail_on is not None and len(self.writes) + 1 == self.fail_on:
            raise TargetError(f"upload to {self.describe(key)} failed: connection reset")
        super().put_bytes(key, data, **kw)
        self.writes.append(key)


def test_layout_manifest_and_pointer_last(tmp_path: Path) -> None:
    model = build_model(tmp_path / "m")
    store = Recording(tmp_path / "t")
    report = publish(model, store, "clf", "1", "production")
    assert store.writes[-1] == "clf/production.json"
    assert store.writes[-2] == "clf/1/manifest.json"
    assert sorted(store.writes[:3]) == ["clf/1/model.bin", "clf/1/model.json", "clf/1/model.xml"]
    manifest = json.loads(store.get_bytes("clf/1/manifest.json"))
    for name in ("model.xml", "model.bin", "model.json"):
        data = (model / name).read_bytes()
        assert manifest["files"][name] == {"sha256": sha256_bytes(data), "size": len(data)}
    pointer = read_pointer(store, "clf", "production")
    assert pointer is not None and pointer["version"] == "1"
    assert pointer["manifest_sha256"] == sha256_bytes(store.get_bytes("clf/1/manifest.json"))
    assert pointer["lineage"]["mlflow_run_id"] == "run123"
    assert report.pointer_written and len(report.uploaded) == 4


def test_republish_is_idempotent(tmp_path: Path) -> None:
    model = build_model(tmp_path / "m")
    store = Recording(tmp_path / "t")
    publish(model, store, "clf", "1", "production")
    pointer_before = store.get_bytes("clf/production.json")
    store.writes.clear()
    report = publish(model, store, "clf", "1", "production")
    assert store.writes == [] and not report.pointer_written
    assert store.get_bytes("clf/production.json") == pointer_before


def test_interrupted_upload_keeps_old_pointer_then_resumes(tmp_path: Path) -> None:
    store_root = tmp_path / "t"
    publish(build_model(tmp_path / "m1"), open_target(f"file://{store_root}"), "clf", "1", "production")
    m2 = build_model(tmp_path / "m2", scale=0.2)
    broken = Recording(store_root, fail_on=2)  # the 2nd file of v2 fails
    with pytest.raises(EdgeopsError, match="pointer was not changed") as err:
        publish(m2, broken, "clf", "2", "production")
    assert "clf/2/" in str(err.value)
    assert json.loads(broken.get_bytes("clf/production.json"))["version"] == "1"
    assert broken.head("clf/2/manifest.json") is None
    resumed = Recording(store_root)
    report = publish(m2, resumed, "clf", "2", "production")
    assert len(report.skipped) == 1 and report.pointer_written  # the file that made it is reused
    assert json.loads(resumed.get_bytes("clf/production.json"))["version"] == "2"


def test_published_versions_are_immutable(tmp_path: Path) -> None:
    store = open_target(f"file://{tmp_path}/t")
    publish(build_model(tmp_path / "a"), store, "clf", "1", "staging")
    with pytest.raises(EdgeopsError, match="immutable"):
        publish(build_model(tmp_path / "b", scale=0.3), store, "clf", "1", "staging")


def test_refuses_a_model_folder_that_contradicts_model_json(tmp_path: Path) -> None:
    model = build_model(tmp_path / "m")
    (model / "model.bin").write_bytes(b"garbage")
    with pytest.raises(EdgeopsError, match="model.bin does not match"):
        publish(model, open_target(f"file://{tmp_path}/t"), "clf", "1", "production")
    (model / "model.xml").unlink()
    with pytest.raises(EdgeopsError, match="model.xml missing"):
        publish(model, open_target(f"file://{tmp_path}/t"), "clf", "1", "production")


def test_pointer_changed_by_someone_else_is_detected(tmp_path: Path) -> None:
    class Racy(FileStore):
        def head(self, key: str) -> Any:
            info = super().head(key)
            if key.endswith("production.json") and info is not None:
                super().put_bytes(key, b'{"version": "99"}')  # another publisher sneaks in
            return info

    root = tmp_path / "t"
    publish(build_model(tmp_path / "a"), open_target(f"file://{root}"), "clf", "1", "production")
    store: Store = Racy(f"file://{root}", root)
    with pytest.raises(EdgeopsError, match="changed by someone else"):
        publish(build_model(tmp_path / "b", scale=0.3), store, "clf", "2", "production")


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "-x"])
def test_names_are_single_safe_segments(tmp_path: Path, bad: str) -> None:
    with pytest.raises(EdgeopsError, match="invalid"):
        publish(build_model(tmp_path / "m"), open_target(f"file://{tmp_path}/t"), bad, "1", "production")
