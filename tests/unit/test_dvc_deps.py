"""Each dvc.yaml stage lists every edgeops source file it runs, so a code change reruns that stage."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# what a stage imports, including the task plug-ins it loads by name
PROBE = """
import importlib, json, sys
importlib.import_module("tasks." + sys.argv[1])
import edgeops.vision as vision
for name in vision.TASKS:
    vision.get_task(name)
files = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
print(json.dumps(files))
"""


def _has_code(path: Path) -> bool:
    """False for a package __init__ that is only a docstring."""
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def _stages() -> dict[str, dict]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


@pytest.mark.parametrize("stage", list(_stages()))
def test_stage_deps_cover_the_code_it_runs(stage: str) -> None:
    deps = [str(d) for d in _stages()[stage]["deps"]]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, stage], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = [Path(f).resolve() for f in json.loads(out.splitlines()[-1])]
    project = [f for f in loaded if f.is_relative_to(ROOT / "src") or f.is_relative_to(ROOT / "tasks")]
    ours = [f.relative_to(ROOT).as_posix() for f in project if f.suffix == ".py" and _has_code(f)]
    missing = [f for f in ours if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
    assert not missing, f"dvc.yaml stage {stage} runs {missing} but does not list it in deps"
