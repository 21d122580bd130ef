"""The Prefect flow runs exactly dvc.yaml's stages in dependency order; the CLI fails in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from edgeops.config import load_params
from edgeops.orchestration.dvcgraph import stage_order
from edgeops.pipeline import plan

ROOT = Path(__file__).resolve().parents[2]
EDGEOPS = Path(sys.executable).parent / "edgeops"


def test_flow_stages_are_dvc_stages_in_dependency_order():
    order = stage_order(ROOT)
    variants = load_params(ROOT / "params.yaml").compress.variants.enabled()
    (candidate,) = plan.read(ROOT)  # the committed candidates.yaml: params.yaml's one model
    expected = {"demo", "prepare", f"train@{candidate}", "select", "register"}
    expected |= {f"{stage}@{candidate}-{v}" for v in variants for stage in ("compress", "evaluate")}
    assert set(order) == expected and len(order) == len(expected)
    position = {stage: i for i, stage in enumerate(order)}
    assert position["demo"] < position["prepare"] < position[f"train@{candidate}"]
    for v in variants:
        compress, evaluate = f"compress@{candidate}-{v}", f"evaluate@{candidate}-{v}"
        assert position[f"train@{candidate}"] < position[compress] < position[evaluate] < position["select"]
    assert position["select"] < position["register"]


def test_the_committed_candidates_file_is_what_params_yaml_says():
    assert plan.read(ROOT) == plan.resolve(load_params(ROOT / "params.yaml"))


def test_every_stage_command_is_a_task_module():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        cmd = stage["do"]["cmd"] if "foreach" in stage else stage["cmd"]  # matrix stages: cmd as is
        module = cmd.split()[2]
        assert module.startswith("tasks."), name
        assert (ROOT / (module.replace(".", "/") + ".py")).exists(), name


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EDGEOPS_DEBUG"}
    return subprocess.run(
        [str(EDGEOPS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_missing_dataset_is_one_line_exit_2(tmp_path):
    result = run_cli("validate-data", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_bad_params_key_stops_run_before_anything_starts(tmp_path):
    (tmp_path / "params.yaml").write_text("data:\n  pth: x\n")
    result = run_cli("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: params.yaml: unknown key 'data.pth' (see README 'Configuration' for valid keys)"
    )


def test_plan_writes_the_candidates_and_says_when_they_are_up_to_date(tmp_path):
    (tmp_path / "params.yaml").write_text("by_task: {classification: {model: [small_cnn, mobilenet_v3_small@64], "
                                          "image_size: 32, epochs: 2, batch_size: 8, lr: 0.01}}\n")  # fmt: skip
    first, again = run_cli("plan", cwd=tmp_path), run_cli("plan", cwd=tmp_path)
    assert first.stdout.strip() == "plan: candidates.yaml updated: small_cnn, mobilenet_v3_small@64", (
        first.stderr
    )
    assert again.stdout.strip() == "plan: candidates.yaml up to date: small_cnn, mobilenet_v3_small@64"
    assert list(plan.read(tmp_path)) == ["small_cnn", "mobilenet_v3_small_64"]
    (tmp_path / "params.yaml").write_text("by_task: {classification: {model: [vgg]}}\n")
    bad = run_cli("plan", cwd=tmp_path)
    assert (
        bad.returncode == 2
        and bad.stderr.startswith("error: params.yaml: ")
        and "Traceback" not in bad.stderr
    )
    assert list(plan.read(tmp_path)) == ["small_cnn", "mobilenet_v3_small_64"]  # left as it was


def _project(root: Path) -> Path:
    """A folder `edgeops run` accepts as a project (dvc.yaml, flows/pipeline.py), with params.yaml `seed: 0`."""
    (root / "flows").mkdir(parents=True, exist_ok=True)
    (root / "flows" / "pipeline.py").write_text("")
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "params.yaml").write_text("seed: 0\n")
    return root


def test_run_outside_a_project_is_one_line_exit_2(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    result = run_cli("run", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert "is not an edgeops project" in result.stderr


def test_run_with_missing_data_folder(tmp_path):
    _project(tmp_path)
    result = run_cli("run", "--data", str(tmp_path / "missing"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "missing is not a folder (or does not exist)" in result.stderr
    assert (tmp_path / "params.yaml").read_text() == "seed: 0\n"  # not rewritten on a bad --data


def test_validate_data_reports_counts(tmp_path):
    from tests.helpers import write_image_folder

    write_image_folder(tmp_path, {"a": 5, "b": 6})
    result = run_cli("validate-data", str(tmp_path))
    assert result.returncode == 0
    assert "11 images, 2 classes" in result.stdout


def test_predict_on_a_non_image_is_a_clear_error(tmp_path):
    import torch

    from edgeops.pipeline.export import to_openvino, with_preprocessing, write_model_dir
    from edgeops.vision.classification.models import build_model

    torch.manual_seed(0)
    meta = {"task": "classification", "variant": "fp32", "precision": "FP32", "labels": ["a", "b"]}
    write_model_dir(with_preprocessing(to_openvino(build_model("small_cnn", 2), 16)), tmp_path / "m", meta)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    result = run_cli("predict", "--model", str(tmp_path / "m"), str(text))
    assert result.returncode == 2 and "not a readable image" in result.stderr
    folder = run_cli("predict", "--model", str(tmp_path / "m"), str(tmp_path / "m"))  # a folder as an image
    assert folder.returncode == 2 and "is a folder, not an image file" in folder.stderr
    assert "--model" in folder.stderr and "Traceback" not in folder.stderr
    from tests.helpers import write_image_folder

    write_image_folder(tmp_path / "imgs", {"a": 1})
    ok = run_cli("predict", "--model", str(tmp_path / "m"), "--top-k", "2", str(tmp_path / "imgs/a/000.png"))
    assert ok.returncode == 0, ok.stderr
    labels = [part.split()[0] for part in ok.stdout.split(": ", 1)[1].split(", ")]
    assert sorted(labels) == ["a", "b"]


def test_run_refuses_a_dataset_with_a_broken_symlink_before_anything_starts(tmp_path):
    from tests.helpers import write_image_folder

    write_image_folder(tmp_path / "data", {"a": 3, "b": 3})
    (tmp_path / "data" / "a" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    _project(tmp_path)
    result = run_cli("run", "--data", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 2 and "broken symlink" in result.stderr and "gone.png" in result.stderr
    assert (tmp_path / "params.yaml").read_text() == "seed: 0\n"
    assert not (tmp_path / ".prefect").exists()  # failed before Prefect started


def test_validate_data_applies_the_params_class_size_rule(tmp_path):
    from tests.helpers import write_image_folder

    write_image_folder(tmp_path / "data", {"a": 3, "b": 8})
    (tmp_path / "params.yaml").write_text("data:\n  min_images_per_class: 5\n")
    result = run_cli("validate-data", str(tmp_path / "data"), "--params", str(tmp_path / "params.yaml"))
    assert result.returncode == 2 and "a (3)" in result.stderr and "min_images_per_class" in result.stderr


def test_every_cached_stage_output_is_ignored_by_the_root_gitignore():
    """Else DVC adds it to a tracked .gitignore (e.g. data/.gitignore) and every later stage records a
    `-dirty` git commit as its lineage."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        cached = [str(out) for stage in repo.index.stages for out in stage.outs if out.use_cache]
    assert cached, "no cached outputs found in dvc.yaml"
    not_ignored = [
        path
        for path in cached
        if subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode != 0
    ]
    assert not not_ignored, f"add these to .gitignore: {not_ignored}"
