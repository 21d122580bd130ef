"""Promotion against a local sqlite registry: gates, alias + stage, audit, history, rollback, concurrency."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from edgeops.config import GatesConfig, Params, parse_params
from edgeops.errors import EdgeopsError
from edgeops.pipeline.gates import Measured, check_gates
from edgeops.registry import audit, promotion
from edgeops.registry import client as client_module
from edgeops.registry.cli import models_app, promote_command
from tests.unit.edge_helpers import build_model, good_tags, register_version

NAME = "clf"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with v1 (good), v2 (good), v3 (accuracy drop too large), built once per module."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root}/mlflow.db"
    for i, tags in enumerate([good_tags(), good_tags(score="0.96"), good_tags(score_drop="0.05")], 1):
        register_version(uri, NAME, build_model(root / f"m{i}", scale=0.1 * i), tags, root / "artifacts")
    return root


@pytest.fixture
def params(template: Path, tmp_path: Path) -> Params:
    shutil.copy(template / "mlflow.db", tmp_path / "mlflow.db")  # each test gets its own registry state
    return parse_params(
        {
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "model_name": NAME},
            "gates": {"max_score_drop": 0.01, "min_score": 0.9, "latency_budget_ms": 5},
            "targets": {
                "production": [{"uri": f"file://{tmp_path}/edge-prod"}],
                "staging": [{"uri": f"file://{tmp_path}/edge-staging"}],
            },
        }
    )


def _pointer(params: Params, stage: str) -> dict[str, Any] | None:
    path = Path(getattr(params.targets, stage)[0].uri[len("file://") :]) / NAME / f"{stage}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _alias(client: Any, stage: str) -> str:
    return str(client.get_registered_model(NAME).aliases[stage])


def test_version_gates_pure() -> None:
    gates = GatesConfig(max_score_drop=0.01, min_score=0.9, latency_budget_ms=2, max_size_mb=1)
    assert all(g.ok for g in promotion.version_gates(good_tags(), gates))
    failed = {g.gate for g in promotion.version_gates(good_tags(score="0.8", size_mb="3"), gates) if not g.ok}
    assert failed == {"min_score", "max_size_mb"}
    tags = good_tags()
    del tags["latency_ms_p50"], tags["score_drop"]  # drop derived from fp32_score; latency missing
    measured = promotion.measured_from_tags(tags)
    assert measured.metric == "accuracy" and measured.score_drop == pytest.approx(0.005)
    assert measured.latency_ms_p50 is None and measured.size_mb == 0.5
    results = {g.gate: g for g in promotion.version_gates(tags, gates)}
    assert results["max_score_drop"].ok and not results["latency_budget_ms"].ok
    assert "not measured" in results["latency_budget_ms"].detail
    del tags["fp32_score"]  # no drop at all: the drop gate cannot pass
    results = {g.gate: g for g in promotion.version_gates(tags, gates)}
    assert not results["max_score_drop"].ok and results["max_score_drop"].value is None


def test_promotion_gates_are_the_selection_gates() -> None:
    """promote and select judge the same measurements the same way (edgeops.pipeline.gates)."""
    gates = GatesConfig(max_score_drop=0.01, min_score=0.9, latency_budget_ms=1.0, max_size_mb=1)
    tags = good_tags(score="0.85", score_drop="0.02")
    measured = Measured("accuracy", 0.85, 0.02, 1.2, 0.5)
    assert promotion.version_gates(tags, gates) == check_gates(measured, gates)
    assert {g.gate for g in check_gates(measured, gates) if not g.ok} == {
        "min_score",
        "max_score_drop",
        "latency_budget_ms",
    }


def test_promote_moves_alias_stage_audits_and_publishes(
    params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEOPS_USER", "alice")
    r = promotion.promote(params, NAME, 1, "production", reason="first release")
    assert r.changed and r.replaces is None and not r.forced and len(r.published) == 1
    client = client_module.make_client(params.mlflow.tracking_uri)
    assert _alias(client, "production") == "1"
    mv = client.get_model_version(NAME, "1")
    assert mv.current_stage == "Production"
    assert mv.tags["promotion.1.to"] == "production" and mv.tags["promotion.1.reason"] == "first release"
    assert mv.tags["promotion.1.who"].startswith("alice@") and mv.tags["promotion.1.forced"] == "false"
    assert json.loads(mv.tags["promotion.1.gates"])[0]["ok"] is True
    pointer = _pointer(params, "production")
    assert pointer is not None and pointer["version"] == "1"
    assert _pointer(params, "staging") is None  # only the stage's own targets
    promotion.promote(params, NAME, 2, "production")
    assert client.get_model_version(NAME, "1").current_stage == "Archived"  # one version per stage
    assert client.get_model_version(NAME, "2").current_stage == "Production"
    events = audit.history(client, NAME)
    assert [(e["version"], e["replaces"]) for e in events] == [("1", None), ("2", "1")]


def test_failing_gate_refuses_and_changes_nothing(params: Params) -> None:
    promotion.promote(params, NAME, 1, "production")
    with pytest.raises(
        EdgeopsError, match=r"max_score_drop: accuracy drop 0.05 > max_score_drop 0.01.*--force"
    ):
        promotion.promote(params, NAME, 3, "production")
    client = client_module.make_client(params.mlflow.tracking_uri)
    assert _alias(client, "production") == "1"
    assert _pointer(params, "production")["version"] == "1"  # type: ignore[index]
    assert "promotion.count" not in client.get_model_version(NAME, "3").tags
    r = promotion.promote(params, NAME, 3, "production", force=True, reason="hotfix")
    assert r.forced
    mv = client.get_model_version(NAME, "3")
    assert mv.tags["promotion.1.forced"] == "true" and mv.tags["promotion.1.reason"] == "hotfix"
    assert audit.history(client, NAME)[-1]["forced"] is True


def test_rollback_walks_back_the_production_history(params: Params) -> None:
    with pytest.raises(EdgeopsError, match="no earlier production version"):
        promotion.rollback(params, NAME, "production")
    for v in (1, 2):
        promotion.promote(params, NAME, v, "production")
    promotion.promote(params, NAME, 3, "production", force=True)
    promotion.promote(params, NAME, 2, "staging")  # other stages don't interfere
    client = client_module.make_client(params.mlflow.tracking_uri)
    r = promotion.rollback(params, NAME, "production")
    assert (r.version, r.replaces, r.action) == ("2", "3", "rollback")
    assert _alias(client, "production") == "2"
    assert _pointer(params, "production")["version"] == "2"  # type: ignore[index]
    assert promotion.rollback(params, NAME, "production").version == "1"
    with pytest.raises(EdgeopsError, match="no earlier"):
        promotion.rollback(params, NAME, "production")
    assert _alias(client, "staging") == "2"
    assert client.get_model_version(NAME, "1").tags["promotion.2.action"] == "rollback"


def test_repromoting_the_same_version_is_a_noop(params: Params) -> None:
    promotion.promote(params, NAME, 1, "staging")
    r = promotion.promote(params, NAME, 1, "staging")
    assert not r.changed and len(r.published) == 1
    assert len(audit.history(client_module.make_client(params.mlflow.tracking_uri), NAME)) == 1


def test_unknown_things_are_clear_errors(params: Params) -> None:
    with pytest.raises(EdgeopsError, match="has no version 42"):
        promotion.promote(params, NAME, 42, "production")
    with pytest.raises(EdgeopsError, match="no registered model 'nope'"):
        promotion.promote(params, "nope", 1, "production")
    with pytest.raises(EdgeopsError, match="unknown stage"):
        promotion.promote(params, NAME, 1, "prod")


def test_unreachable_target_leaves_registry_unchanged(
    params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("EDGEOPS_S3_MAX_ATTEMPTS", "1")
    p = params.model_copy(deep=True)
    p.targets.production.append(
        p.targets.production[0].model_copy(
            update={"uri": "s3://bucket/edge", "endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"}
        )
    )
    with pytest.raises(
        EdgeopsError,
        match=r"publishing clf v1 to s3://.*127.0.0.1:9.*registry not changed \(pointer put back on",
    ):
        promotion.promote(p, NAME, 1, "production")
    assert _pointer(params, "production") is None  # the folder target's new pointer was removed again
    client = client_module.make_client(p.mlflow.tracking_uri)
    assert "production" not in client.get_registered_model(NAME).aliases
    assert audit.history(client, NAME) == []


def test_two_promotions_at_once_leave_one_consistent_result(params: Params, tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    start_at = time.time() + 8  # both processes import mlflow first, then start together
    script = textwrap.dedent(
        f"""
        import sys, time
        from edgeops.config import parse_params
        from edgeops.registry import client as client_module, promotion
        p = parse_params({params.model_dump(mode="json")!r})
        v = sys.argv[1]
        client = client_module.make_client(p.mlflow.tracking_uri)
        client.get_registered_model({NAME!r})
        time.sleep(max(0.0, {start_at} - time.time()))
        print(promotion.promote(p, {NAME!r}, v, "production", reason="race " + v, client=client).version)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(src)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, v],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in ("1", "2")
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    client = client_module.make_client(params.mlflow.tracking_uri)
    alias = _alias(client, "production")
    events = audit.history(client, NAME)
    assert [e["seq"] for e in events] == [1, 2]  # no lost or duplicated audit entry
    assert events[-1]["version"] == alias and events[-1]["replaces"] == events[0]["version"]
    stages = {v: client.get_model_version(NAME, v).current_stage for v in ("1", "2")}
    assert stages[alias] == "Production" and list(stages.values()).count("Production") == 1
    assert _pointer(params, "production")["version"] == alias  # type: ignore[index]


def _cli(params: Params, tmp_path: Path) -> tuple[CliRunner, Path]:
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps(params.model_dump(mode="json")))  # JSON is valid YAML
    return CliRunner(), path


def test_models_cli_tables_and_json(params: Params, tmp_path: Path) -> None:
    runner, path = _cli(params, tmp_path)
    promotion.promote(params, NAME, 2, "production", reason="cli test")
    r = runner.invoke(models_app, ["list", "--params", str(path)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("NAME") and "ALIASES" in lines[0] and len(lines) == 4
    assert any("production" in line and "Production" in line for line in lines)
    rows = json.loads(runner.invoke(models_app, ["list", "--json", "--params", str(path)]).stdout)
    assert {r["version"] for r in rows} == {"1", "2", "3"}
    by_version = {r["version"]: r for r in rows}
    assert by_version["2"]["task"] == "classification" and by_version["2"]["metric"] == "accuracy"
    assert by_version["2"]["score"] == 0.96 and by_version["3"]["score_drop"] == 0.05
    r = runner.invoke(models_app, ["show", NAME, "--version", "2", "--params", str(path)])
    assert r.exit_code == 0 and "fp-abc" in r.stdout and "cli test" in r.stdout
    detail = json.loads(
        runner.invoke(models_app, ["show", NAME, "--version", "2", "--json", "--params", str(path)]).stdout
    )
    assert detail["aliases"] == ["production"] and detail["promotion_history"][0]["reason"] == "cli test"
    r = runner.invoke(models_app, ["history", NAME, "--params", str(path)])
    assert r.exit_code == 0 and "cli test" in r.stdout
    r = runner.invoke(models_app, ["show", "missing", "--params", str(path)])
    assert r.exit_code == 2 and "no registered model" in r.stderr


def test_promote_command(params: Params, tmp_path: Path) -> None:
    runner, path = _cli(params, tmp_path)
    app = typer.Typer()
    app.command("promote")(promote_command)
    app.command("noop")(lambda: None)  # keep typer in multi-command mode like edgeops.cli
    base = ["promote", NAME, "--params", str(path)]
    r = runner.invoke(app, [*base, "--version", "1", "--to", "production", "--reason", "go"])
    assert r.exit_code == 0 and "promoted clf v1 → @production" in r.stdout and "published" in r.stdout
    r = runner.invoke(app, [*base, "--version", "3", "--to", "production"])
    assert r.exit_code == 2 and "refusing" in r.stderr and "Traceback" not in r.output
    r = runner.invoke(app, [*base, "--version", "3", "--to", "production", "--force"])
    assert r.exit_code == 0 and "FORCED" in r.stdout
    r = runner.invoke(app, [*base, "--rollback", "production"])
    assert r.exit_code == 0 and "rolled back clf v1 → @production (was v3)" in r.stdout
    r = runner.invoke(app, [*base, "--version", "1"])
    assert r.exit_code == 2 and "--to" in r.stderr


def test_unreachable_registry_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    params = parse_params({"mlflow": {"tracking_uri": "http://127.0.0.1:9"}})
    with pytest.raises(EdgeopsError, match=r"registry at http://127.0.0.1:9 failed: connection refused"):
        promotion.promote(params, NAME, 1, "production")
    path = tmp_path / "params.yaml"
    path.write_text("{}")
    r = CliRunner().invoke(models_app, ["list", "--params", str(path)])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "connection refused" in r.stderr
