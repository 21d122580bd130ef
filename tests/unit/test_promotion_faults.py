"""Promotion faults with real files and a sqlite registry: no target may stay ahead of the registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from edgeops.config import Params, parse_params
from edgeops.errors import EdgeopsError
from edgeops.registry import audit, promotion
from edgeops.registry import client as client_module
from tests.unit.edge_helpers import build_model, good_tags, register_version

if TYPE_CHECKING:
    from mlflow import MlflowClient

NAME = "clf"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root}/mlflow.db"
    for i in (1, 2):
        register_version(
            uri, NAME, build_model(root / f"m{i}", scale=0.1 * i), good_tags(), root / "artifacts"
        )
    return root


def _params(tmp_path: Path, template: Path, targets: list[str]) -> Params:
    shutil.copy(template / "mlflow.db", tmp_path / "mlflow.db")
    return parse_params(
        {
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "model_name": NAME},
            "targets": {"production": [{"uri": u} for u in targets]},
        }
    )


def _pointer_version(folder: Path) -> str | None:
    path = folder / NAME / "production.json"
    return str(json.loads(path.read_text())["version"]) if path.exists() else None


def test_a_failing_second_target_puts_the_first_targets_pointer_back(template: Path, tmp_path: Path) -> None:
    """Before: target 1 kept the new pointer (devices installed v2) while the registry said v1."""
    good, blocked = tmp_path / "edge-a", tmp_path / "edge-b"
    params = _params(tmp_path, template, [f"file://{good}", f"file://{blocked}"])
    promotion.promote(params, NAME, "1", "production")
    (blocked / NAME / "2").parent.mkdir(parents=True, exist_ok=True)
    (blocked / NAME / "2").write_text("not a folder")  # the second target cannot take v2's files
    with pytest.raises(EdgeopsError, match="registry not changed .*pointer put back on file://") as err:
        promotion.promote(params, NAME, "2", "production")
    assert "\n" not in str(err.value)
    assert _pointer_version(good) == "1" and _pointer_version(blocked) == "1"
    client = client_module.make_client(params.mlflow.tracking_uri)
    assert str(client.get_registered_model(NAME).aliases["production"]) == "1"
    (blocked / NAME / "2").unlink()  # fixed: the re-run goes through everywhere
    promotion.promote(params, NAME, "2", "production")
    assert _pointer_version(good) == "2" and _pointer_version(blocked) == "2"


def test_a_first_promotion_that_fails_leaves_no_pointer(template: Path, tmp_path: Path) -> None:
    good, blocked = tmp_path / "edge-a", tmp_path / "edge-b"
    params = _params(tmp_path, template, [f"file://{good}", f"file://{blocked}"])
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the target folder should be")
    with pytest.raises(EdgeopsError, match="registry not changed"):
        promotion.promote(params, NAME, "1", "production")
    assert _pointer_version(good) is None  # devices following edge-a see nothing promoted yet


def _v1_in_production(template: Path, tmp_path: Path) -> tuple[Path, Params, MlflowClient]:
    """A folder target and v1 promoted to production on it."""
    edge = tmp_path / "edge"
    params = _params(tmp_path, template, [f"file://{edge}"])
    promotion.promote(params, NAME, "1", "production")
    return edge, params, client_module.make_client(params.mlflow.tracking_uri)


def _registry_down(*_: Any, **__: Any) -> None:
    import requests

    raise requests.exceptions.ConnectionError("Max retries exceeded (Connection refused)")


def test_registry_failure_after_publishing_puts_the_pointers_back(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry goes away between publishing and moving the alias (see the integration test for a
    real server); before, the targets named v2 while the registry's @production stayed v1."""
    edge, params, client = _v1_in_production(template, tmp_path)
    monkeypatch.setattr(client, "set_registered_model_alias", _registry_down)
    with pytest.raises(EdgeopsError, match="connection refused.*not completed .*pointer put back"):
        promotion.promote(params, NAME, "2", "production", client=client)
    assert _pointer_version(edge) == "1"
    # the half-done promotion is not in the history `--rollback` replays (before: it was, and a
    # rollback "went back" to v2, a version that had never been live)
    assert [e["version"] for e in audit.history(client, NAME)] == ["1"]
    with pytest.raises(EdgeopsError, match="no earlier production version"):
        promotion.rollback(params, NAME, "production")
    monkeypatch.undo()
    promotion.promote(params, NAME, "2", "production")
    assert _pointer_version(edge) == "2"
    assert [e["version"] for e in audit.history(client, NAME)] == ["1", "2"]


def test_registry_failure_after_the_alias_moved_keeps_the_targets(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alias already names v2 when the registry fails: the targets must keep v2 too."""
    edge, params, client = _v1_in_production(template, tmp_path)
    monkeypatch.setattr(client, "transition_model_version_stage", _registry_down)
    with pytest.raises(EdgeopsError, match="already names v2 and the targets agree.*--force"):
        promotion.promote(params, NAME, "2", "production", client=client)
    monkeypatch.undo()
    assert str(client.get_registered_model(NAME).aliases["production"]) == "2"
    assert _pointer_version(edge) == "2"
    promotion.promote(params, NAME, "2", "production", force=True, reason="finish the interrupted one")
    assert client.get_model_version(NAME, "2").current_stage == "Production"
    assert [e["version"] for e in audit.history(client, NAME)] == ["1", "2"]
