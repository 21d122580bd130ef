"""Promotion against a real `mlflow server` on loopback (sqlite backend, proxied artifacts in tmp)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edgeops.config import Params, parse_params
from edgeops.errors import EdgeopsError
from edgeops.registry import audit, promotion
from edgeops.registry import client as client_module
from edgeops.registry.cli import models_app
from tests.unit.edge_helpers import (
    MlflowServer,
    build_model,
    free_port,
    good_tags,
    register_version,
    run_mlflow_server,
    stop_process_group,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def registered(
    mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[str]]:
    """A model with three versions logged through the server (artifacts proxied by it)."""
    name = "served-clf"
    root = tmp_path_factory.mktemp("models")
    tags = [good_tags(), good_tags(score="0.97"), good_tags(score_drop="0.2")]
    versions = [
        register_version(mlflow_server.uri, name, build_model(root / f"m{i}", scale=0.2 * (i + 1)), t)
        for i, t in enumerate(tags)
    ]
    return name, versions


def params_for(server: MlflowServer, tmp_path: Path, name: str) -> Params:
    return parse_params(
        {
            "mlflow": {"tracking_uri": server.uri, "model_name": name},
            "gates": {"max_score_drop": 0.01, "min_score": 0.9},
            "targets": {"production": [{"uri": f"file://{tmp_path}/edge"}]},
        }
    )


def test_promote_list_history_rollback_through_the_server(
    mlflow_server: MlflowServer, registered: tuple[str, list[str]], tmp_path: Path
) -> None:
    name, (v1, v2, v3) = registered
    params = params_for(mlflow_server, tmp_path, name)
    client = client_module.make_client(mlflow_server.uri)
    promotion.promote(params, name, v1, "production", reason="first")
    promotion.promote(params, name, v2, "production", reason="better")
    with pytest.raises(EdgeopsError, match="refusing"):
        promotion.promote(params, name, v3, "production")
    assert str(client.get_registered_model(name).aliases["production"]) == v2
    assert client.get_model_version(name, v2).current_stage == "Production"
    # the files came through the server's artifact proxy and landed on the target
    pointer = json.loads((tmp_path / "edge" / name / "production.json").read_text())
    assert pointer["version"] == v2
    assert (tmp_path / "edge" / name / v2 / "model.bin").is_file()

    r = promotion.rollback(params, name, "production", reason="regression")
    assert r.version == v1 and r.replaces == v2
    assert json.loads((tmp_path / "edge" / name / "production.json").read_text())["version"] == v1

    runner = CliRunner()
    (tmp_path / "params.yaml").write_text(json.dumps(params.model_dump(mode="json")))
    out = runner.invoke(models_app, ["history", name, "--json", "--params", str(tmp_path / "params.yaml")])
    assert out.exit_code == 0, out.output
    events = json.loads(out.stdout)
    assert [(e["action"], e["version"]) for e in events][-3:] == [
        ("promote", v1),
        ("promote", v2),
        ("rollback", v1),
    ]
    out = runner.invoke(models_app, ["list", "--params", str(tmp_path / "params.yaml")])
    assert out.exit_code == 0 and name in out.stdout and "production" in out.stdout


def test_concurrent_promotions_via_server(
    mlflow_server: MlflowServer, registered: tuple[str, list[str]], tmp_path: Path
) -> None:
    name, (v1, v2, _) = registered
    params = params_for(mlflow_server, tmp_path, name)
    client = client_module.make_client(mlflow_server.uri)
    before = len(audit.history(client, name))
    start_at = time.time() + 8
    script = textwrap.dedent(
        f"""
        import sys, time
        from edgeops.config import parse_params
        from edgeops.registry import client as client_module, promotion
        p = parse_params({params.model_dump(mode="json")!r})
        client = client_module.make_client(p.mlflow.tracking_uri)
        client.get_registered_model({name!r})
        time.sleep(max(0.0, {start_at} - time.time()))
        promotion.promote(p, {name!r}, sys.argv[1], "staging", reason="race", client=client)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, v], env=env, stderr=subprocess.PIPE, text=True)
        for v in (v1, v2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    events = audit.history(client, name)[before:]
    assert sorted(e["version"] for e in events) == sorted([v1, v2])
    assert [e["seq"] for e in events] == [before + 1, before + 2]
    alias = str(client.get_registered_model(name).aliases["staging"])
    assert alias == events[-1]["version"]
    stages = [client.get_model_version(name, v).current_stage for v in (v1, v2)]
    assert stages.count("Staging") == 1 and client.get_model_version(name, alias).current_stage == "Staging"


def test_server_going_down_after_publishing_puts_the_pointer_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracking server dies between publishing to the targets and moving the alias. Before the
    fix the target's pointer named v2 (devices installed it) while @production stayed v1; now the
    pointer is put back, the error says so on one line, and the re-run after a restart completes."""
    name, port = "restart-clf", free_port()
    uri = f"http://127.0.0.1:{port}"
    params = parse_params(
        {
            "mlflow": {"tracking_uri": uri, "model_name": name},
            "targets": {"production": [{"uri": f"file://{tmp_path}/edge"}]},
        }
    )
    pointer = tmp_path / "edge" / name / "production.json"
    with run_mlflow_server(tmp_path, port) as server:
        v1, v2 = (
            register_version(uri, name, build_model(tmp_path / f"m{i}", scale=0.3 * i), good_tags())
            for i in (1, 2)
        )
        promotion.promote(params, name, v1, "production")
        real_publish = promotion.publish_to_targets

        def publish_then_crash(*args: Any, **kwargs: Any) -> list[str]:
            done = real_publish(*args, **kwargs)
            stop_process_group(server, timeout=15)  # the registry dies right after the targets moved
            return done

        monkeypatch.setattr(promotion, "publish_to_targets", publish_then_crash)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        with pytest.raises(EdgeopsError) as err:
            promotion.promote(params, name, v2, "production")
        message = str(err.value)
        assert "connection refused" in message and "pointer put back" in message and "\n" not in message
        assert json.loads(pointer.read_text())["version"] == v1
        monkeypatch.undo()
    with run_mlflow_server(tmp_path, port):  # restarted on the same database
        client = client_module.make_client(uri)
        assert str(client.get_registered_model(name).aliases["production"]) == v1
        promotion.promote(params, name, v2, "production", reason="after the restart")
        assert str(client.get_registered_model(name).aliases["production"]) == v2
        assert json.loads(pointer.read_text())["version"] == v2
