"""Agent: verify before use, atomic switch, keep previous, rollback, never install a broken version."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from edgeops.edge import agent, inference
from edgeops.edge.publish import publish
from edgeops.edge.targets import Store, open_target
from edgeops.errors import EdgeopsError
from edgeops.vision import AnswerOptions
from tests.unit.edge_helpers import build_model, image_bytes


@pytest.fixture
def target(tmp_path: Path) -> Store:
    return open_target(f"file://{tmp_path}/target")


def _publish(tmp_path: Path, store: Store, version: str, scale: float = 0.05) -> None:
    publish(build_model(tmp_path / f"m{version}", scale=scale), store, "clf", version, "production")


def test_sync_installs_verifies_and_switches(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    r = agent.sync(target, "clf", "production", d)
    assert r.changed and r.version == "1"
    assert os.readlink(d / "current") == "versions/1"
    assert not agent.sync(target, "clf", "production", d).changed  # nothing new
    _publish(tmp_path, target, "2", scale=0.1)
    r = agent.sync(target, "clf", "production", d)
    assert r.changed and r.previous == "1"
    assert agent.current_version(d) == "2" and agent.previous_version(d) == "1"
    assert not list(d.glob(".incoming-*"))
    _publish(tmp_path, target, "3", scale=0.2)
    agent.sync(target, "clf", "production", d)
    assert sorted(p.name for p in (d / "versions").iterdir()) == ["2", "3"]  # current + previous kept


def _tamper(target: Store, key: str) -> None:
    data = bytearray(target.get_bytes(key))
    data[-1] ^= 0xFF
    target.put_bytes(key, bytes(data))


@pytest.mark.parametrize("victim", ["model.bin", "model.xml", "model.json", "manifest.json"])
def test_tampered_file_is_refused_and_named(tmp_path: Path, target: Store, victim: str) -> None:
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    _publish(tmp_path, target, "2", scale=0.1)
    _tamper(target, f"clf/2/{victim}")
    with pytest.raises(agent.IntegrityError, match=victim):
        agent.sync(target, "clf", "production", d)
    assert agent.current_version(d) == "1"
    assert not (d / "versions" / "2").exists() and not list(d.glob(".incoming-*"))
    assert inference.load_current(d).predict_bytes(image_bytes())["version"] == "1"


def test_partial_version_is_refused(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    _publish(tmp_path, target, "2", scale=0.1)
    (Path(str(target.uri)[len("file://") :]) / "clf/2/model.bin").unlink()
    with pytest.raises(EdgeopsError, match="model.bin"):
        agent.sync(target, "clf", "production", d)
    assert agent.current_version(d) == "1"


def test_consistent_but_broken_ir_is_refused(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    m2 = build_model(tmp_path / "m2", scale=0.1)
    (m2 / "model.xml").write_text("<net>not really</net>")
    meta = json.loads((m2 / "model.json").read_text())
    meta["files"]["model.xml"] = hashlib.sha256((m2 / "model.xml").read_bytes()).hexdigest()
    (m2 / "model.json").write_text(json.dumps(meta))
    publish(m2, target, "clf", "2", "production")
    with pytest.raises(agent.IntegrityError, match="does not load"):
        agent.sync(target, "clf", "production", d)
    assert agent.current_version(d) == "1"


def test_rollback_holds_the_bad_version(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    with pytest.raises(EdgeopsError, match="no current model"):
        agent.rollback(d)
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    with pytest.raises(EdgeopsError, match="no previous version"):
        agent.rollback(d)
    _publish(tmp_path, target, "2", scale=0.1)
    agent.sync(target, "clf", "production", d)
    assert agent.rollback(d) == ("2", "1")
    assert agent.current_version(d) == "1" and agent.previous_version(d) == "2"
    r = agent.sync(target, "clf", "production", d)  # the pointer still says 2: do not flip back
    assert not r.changed and "rolled back" in r.message and agent.current_version(d) == "1"
    assert agent.sync(target, "clf", "production", d, force=True).changed
    assert agent.current_version(d) == "2"
    _publish(tmp_path, target, "3", scale=0.2)  # a new version is installed normally
    assert agent.sync(target, "clf", "production", d).version == "3"


def test_status_shows_lineage(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    with pytest.raises(EdgeopsError, match="edge sync"):
        agent.status(d)
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    s = agent.status(d)
    assert s["version"] == "1" and s["model"] == "clf" and s["channel"] == "production"
    assert (s["source_run"], s["dataset_fingerprint"], s["git_commit"]) == ("run123", "fp-abc", "deadbeef")
    assert s["target"] == target.uri and s["synced_at"]


def test_missing_pointer_says_what_to_do(tmp_path: Path, target: Store) -> None:
    with pytest.raises(EdgeopsError, match="nothing promoted"):
        agent.sync(target, "clf", "production", tmp_path / "agent")


def test_predict_labels_and_scores(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    publish(build_model(tmp_path / "m", scale=1.0), target, "clf", "1", "production")
    agent.sync(target, "clf", "production", d)
    model = inference.load_current(d)
    for color, label in (((255, 0, 0), "red"), ((0, 255, 0), "green"), ((0, 0, 255), "blue")):
        out = model.predict_bytes(image_bytes(color, size=40, fmt="JPEG"), AnswerOptions(top_k=3))
        assert out["label"] == label and len(out["top"]) == 3
        assert abs(sum(t["score"] for t in out["top"]) - 1.0) < 1e-6


def test_bad_images_are_rejected_with_status(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    _publish(tmp_path, target, "1")
    agent.sync(target, "clf", "production", d)
    model = inference.load_current(d)
    with pytest.raises(inference.BadImage) as e:
        model.predict_bytes(b"definitely not an image")
    assert e.value.status == 400
    with pytest.raises(inference.BadImage) as e:
        model.predict_bytes(image_bytes(size=200), max_pixels=100 * 100)
    assert e.value.status == 413
    with pytest.raises(inference.BadImage) as e:
        model.predict_bytes(image_bytes(size=64, fmt="PNG")[:60])  # truncated
    assert e.value.status == 400


def test_registry_rollback_reuses_the_kept_previous_version(tmp_path: Path, target: Store) -> None:
    d = tmp_path / "agent"
    m1 = build_model(tmp_path / "m1")
    publish(m1, target, "clf", "1", "production")
    agent.sync(target, "clf", "production", d)
    _publish(tmp_path, target, "2", scale=0.1)
    agent.sync(target, "clf", "production", d)
    publish(m1, target, "clf", "1", "production")  # what `edgeops promote --rollback` does to the pointer
    downloads: list[str] = []
    original = target.download
    target.download = lambda key, dest: (downloads.append(key), original(key, dest))[1]  # type: ignore[method-assign]
    r = agent.sync(target, "clf", "production", d)
    assert r.changed and "kept copy" in r.message and downloads == []
    assert agent.current_version(d) == "1" and agent.previous_version(d) == "2"
    (d / "versions" / "2" / "model.bin").write_bytes(b"rot")  # a damaged local copy is not trusted
    assert publish(tmp_path / "m2", target, "clf", "2", "production").pointer_written  # forward again
    r = agent.sync(target, "clf", "production", d)
    assert r.changed and r.message.startswith("installed v2") and downloads
