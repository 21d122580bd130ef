"""Team mode's worker workspaces and sweep points, on real git repositories (no servers)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from edgeops.config import load_params
from edgeops.errors import EdgeopsError
from edgeops.orchestration import workspace as ws
from edgeops.orchestration.deploy import default_repo, parse_point, source_of
from edgeops.pipeline import plan

ROOT = Path(__file__).resolve().parents[2]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A tiny repository with the project's params.yaml, two commits."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=repo, check=True)
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    (repo / "a.txt").write_text("one")
    subprocess.run([*GIT, "add", "."], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "one"], cwd=repo, check=True)
    (repo / "a.txt").write_text("two")
    subprocess.run([*GIT, "commit", "-qam", "two"], cwd=repo, check=True)
    return repo


def _head(repo: Path, rev: str = "HEAD") -> str:
    return subprocess.run(["git", "rev-parse", rev], cwd=repo, capture_output=True, text=True).stdout.strip()


def test_checkout_is_the_commit_asked_for_and_a_retry_finds_it_again(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ws.WORKSPACES_ENV, str(tmp_path / "workspaces"))
    first = _head(repo, "HEAD~1")
    lines: list[str] = []
    workspace = ws.checkout(str(repo), first, "run-1", lines.append)
    assert workspace == tmp_path / "workspaces" / "run-1"
    assert (workspace / "a.txt").read_text() == "one"  # the deployment's commit, not the branch tip
    (workspace / "partial-output").write_text("from the failed attempt")
    again = ws.checkout(str(repo), first, "run-1", lines.append)
    assert again == workspace and (again / "partial-output").exists()
    assert "reused" in lines[-1]
    other = ws.checkout(str(repo), _head(repo), "run-2", lines.append)
    assert (other / "a.txt").read_text() == "two" and other != workspace


def test_checkout_refuses_what_is_not_a_commit_and_names_a_missing_one(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ws.WORKSPACES_ENV, str(tmp_path / "workspaces"))
    with pytest.raises(EdgeopsError, match="not a git commit id"):
        ws.checkout(str(repo), "main; rm -rf /", "run-1")
    with pytest.raises(EdgeopsError, match="is it pushed there"):
        ws.checkout(str(repo), "0" * 40, "run-1")
    assert not (tmp_path / "workspaces" / "run-1").exists()  # no half-made workspace left for a retry


def test_apply_choices_writes_params_yaml_and_rejects_bad_keys(repo: Path) -> None:
    lines = ws.apply_choices(
        repo,
        data="data/mine",
        task="segmentation",
        model="lraspp_mobilenet_v3",
        variants=["fp32", "ptq"],
        overrides={"compress.variants.ptq.subset_size": 64},
    )
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["path"] == "data/mine" and params["task"] == "segmentation"
    assert params["by_task"]["segmentation"]["model"] == "lraspp_mobilenet_v3"
    assert list(params["compress"]["variants"]) == ["fp32", "ptq"]
    assert params["compress"]["variants"]["ptq"]["subset_size"] == 64
    assert "task=segmentation" in lines
    assert list(plan.read(repo)) == ["lraspp_mobilenet_v3"]  # the candidates follow params.yaml
    with pytest.raises(EdgeopsError, match="compress.variants.ptq.subset_sise"):
        ws.apply_choices(repo, overrides={"compress.variants.ptq.subset_sise": 64})
    with pytest.raises(EdgeopsError, match="not in params.yaml"):
        ws.apply_choices(repo, variants=["fp32", "int4"])
    with pytest.raises(EdgeopsError, match="no section"):
        ws.apply_choices(repo, overrides={"nothing.here": 1})


def test_data_that_is_neither_in_the_repo_nor_tracked_is_one_clear_error(repo: Path) -> None:
    with pytest.raises(EdgeopsError, match="dvc add data/mine"):
        ws.pull_data(repo, "data/mine")
    (repo / "data" / "here").mkdir(parents=True)
    ws.pull_data(repo, "data/here")  # committed with the repository: nothing to pull
    ws.pull_data(repo, "data/demo")  # the pipeline's demo stage makes it


def test_sweep_points_parse_yaml_values() -> None:
    assert parse_point("compress.variants.prune_int8.ratio=0.4, train.patience=3,train.augment=false") == {
        "compress.variants.prune_int8.ratio": 0.4,
        "train.patience": 3,
        "train.augment": False,
    }
    with pytest.raises(EdgeopsError, match="KEY=VALUE"):
        parse_point("train.patience")


def test_deploy_source_is_origin_at_head_and_warns_about_uncommitted_changes(repo: Path) -> None:
    assert default_repo(repo) == str(repo.resolve())  # no origin: the folder itself
    (repo / "a.txt").write_text("uncommitted")
    warnings: list[str] = []
    source = source_of(repo, None, None, warnings.append)
    assert source.commit == _head(repo) and "uncommitted" in warnings[0]
    assert "candidates.yaml is not what params.yaml says" in warnings[1]  # none committed here
    plan.write(load_params(repo / "params.yaml"), repo)
    warnings.clear()
    source_of(repo, None, None, warnings.append)
    assert len(warnings) == 1 and "uncommitted" in warnings[0]
    subprocess.run(["git", "remote", "add", "origin", "https://example.com/team/edgeops.git"], cwd=repo)
    assert source_of(repo, None, "abc1234", warnings.append).repo == "https://example.com/team/edgeops.git"
