"""The commit a run records (MLflow tag, model.json) and a deployment ships: HEAD, marked when dirty."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgeops.console import git_commit
from edgeops.errors import EdgeopsError
from edgeops.orchestration.workspace import current_commit


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_commit_is_head_and_marked_dirty_only_for_tracked_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    _git(tmp_path, "add", "params.yaml")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    head = _git(tmp_path, "rev-parse", "HEAD")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "untracked.txt").write_text("not part of the run's code")
    assert git_commit() == head and current_commit(tmp_path) == (head, False)
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    assert git_commit() == head + "-dirty" and current_commit(tmp_path) == (head, True)


def test_outside_a_checkout_the_run_records_none_and_a_deployment_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit() is None
    with pytest.raises(EdgeopsError, match="reading the git commit"):
        current_commit(tmp_path)
