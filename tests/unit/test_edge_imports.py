"""The edge agent runs with the [edge] extra only: no torch / NNCF / MLflow / Prefect / DVC."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

BLOCKED = [
    "torch",
    "torchvision",
    "torchao",
    "nncf",
    "mlflow",
    "prefect",
    "dvc",
    "sklearn",
    "pandas",
    "pycocotools",
]


def test_edge_package_imports_and_works_without_pipeline_deps(tmp_path: Path) -> None:
    helpers = Path(__file__).parent
    code = textwrap.dedent(
        f"""
        import sys
        for name in {BLOCKED!r}:
            sys.modules[name] = None  # any import of these now raises ImportError
        sys.path.insert(0, {str(helpers)!r})
        from pathlib import Path
        import edgeops.edge, edgeops.edge.targets, edgeops.edge.publish, edgeops.edge.agent
        import edgeops.edge.server, edgeops.edge.cli
        from edgeops.edge import agent, inference
        from edgeops.edge.publish import publish
        from edgeops.edge.targets import open_target
        from edgeops.edge.server import create_app
        from tests.unit.edge_helpers import build_model, image_bytes
        from fastapi.testclient import TestClient

        tmp = Path({str(tmp_path)!r})
        store = open_target(f"file://{{tmp}}/target")
        publish(build_model(tmp / "m"), store, "clf", "1", "production")
        agent.sync(store, "clf", "production", tmp / "agent")
        assert inference.load_current(tmp / "agent").predict_bytes(image_bytes())["label"] == "red"
        with TestClient(create_app(tmp / "agent")) as c:
            r = c.post("/predict", content=image_bytes(), headers={{"content-type": "image/png"}})
            assert r.status_code == 200, r.text
        from typer.testing import CliRunner
        res = CliRunner().invoke(edgeops.edge.cli.edge_app, ["status", "--dir", str(tmp / "agent")])
        assert res.exit_code == 0, res.output
        import numpy as np
        from edgeops.vision import AnswerOptions, get_task
        boxes, labels = np.zeros((1, 100, 5), np.float32), np.zeros((1, 100), np.int64)
        boxes[0, 0] = (1, 2, 3, 4, 0.9)
        answer = get_task("detection").answer((boxes, labels), (8, 8), (16, 8), ["cell"], AnswerOptions())
        assert answer["boxes"] == [{{"label": "cell", "score": 0.9, "box": [2.0, 2.0, 6.0, 4.0]}}], answer
        print("EDGE-ONLY-OK")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "EDGE-ONLY-OK" in proc.stdout


def test_edgeops_edge_cli_runs_without_pipeline_deps() -> None:
    """`edgeops edge …` through the main CLI, as typed on a device with only the [edge] extra."""
    code = textwrap.dedent(
        f"""
        import sys
        for name in {BLOCKED + ["matplotlib"]!r}:
            sys.modules[name] = None
        sys.argv = ["edgeops", "edge", "--help"]
        from edgeops.cli import main
        main()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for command in ("sync", "rollback", "status", "serve", "predict"):
        assert command in proc.stdout
