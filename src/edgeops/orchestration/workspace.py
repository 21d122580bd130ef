"""A worker's own workspace for one flow run: a checkout of the repository at the deployment's commit.

Team mode runs the pipeline on Prefect workers, never in the submitter's folder. Each flow run gets
`$EDGEOPS_WORKSPACES/<flow run id>`: a clone of the deployment's repository at its commit, data from
the DVC remote (`dvc pull`), and results pushed back (`dvc push`). A retry of the same flow run finds
its workspace again, so DVC skips the stages that had finished. Workspaces share one DVC cache per
worker, so a pull or a stage output already seen by that worker is not fetched or stored twice."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from edgeops.errors import EdgeopsError

WORKSPACES_ENV = "EDGEOPS_WORKSPACES"
DVC_REMOTE_ENV = "EDGEOPS_DVC_REMOTE"  # e.g. s3://edgeops/dvc, set by `make up`'s env file
REMOTE_NAME = "team"
DEMO_STAGE = "demo"  # dvc.yaml's stage that writes paths.DEMO_DATASETS
Log = Callable[[str], None]


def workspaces_root() -> Path:
    return Path(os.environ.get(WORKSPACES_ENV) or Path.home() / ".cache" / "edgeops" / "workspaces")


def _run(
    args: list[str], cwd: Path | None, what: str, timeout: float = 600, env: dict[str, str] | None = None
) -> str:
    """A git/dvc command; its failure as one line naming what was being done."""
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise EdgeopsError(f"{what}: `{' '.join(args[:3])}` did not finish within {timeout:.0f}s") from None
    except FileNotFoundError:
        raise EdgeopsError(f"{what}: {args[0]} is not installed on this worker") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise EdgeopsError(f"{what}: {lines[-1] if lines else f'exit code {done.returncode}'}")
    return done.stdout


def _dvc(workspace: Path, *args: str, what: str, timeout: float = 900) -> str:
    import sys

    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    return _run([dvc, *args], workspace, what, timeout)


def checkout(repo: str, commit: str, run_id: str, log: Log = print) -> Path:
    """The flow run's workspace: cloned at `commit` the first time, found again on a retry."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        raise EdgeopsError(f"commit {commit!r} is not a git commit id: deploy again with `edgeops deploy`")
    workspace = workspaces_root() / run_id
    if (workspace / ".git").is_dir():
        head = _run(["git", "rev-parse", "HEAD"], workspace, "reading the workspace's commit").strip()
        if head.startswith(commit) or commit.startswith(head):
            log(f"workspace {workspace}: reused (a retry: DVC skips the stages that finished)")
            return workspace
        shutil.rmtree(workspace)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    partial = workspace.with_name(workspace.name + ".cloning")
    shutil.rmtree(partial, ignore_errors=True)
    _run(["git", "clone", "--quiet", "--no-checkout", repo, str(partial)], None, f"cloning {repo}")
    _run(
        ["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", commit],
        partial,
        f"checking out {commit[:12]} of {repo} (is it pushed there?)",
    )
    partial.rename(workspace)
    log(f"workspace {workspace}: {repo} at {commit[:12]}")
    return workspace


def configure_dvc(workspace: Path) -> str | None:
    """The worker's DVC remote (EDGEOPS_DVC_REMOTE) as the workspace's default, and one shared cache."""
    cache = workspaces_root() / "dvc-cache"
    _dvc(workspace, "cache", "dir", "--local", str(cache), what="setting the shared DVC cache")
    remote = os.environ.get(DVC_REMOTE_ENV)
    if remote:
        _dvc(
            workspace,
            "remote",
            "add",
            "--local",
            "--force",
            "-d",
            REMOTE_NAME,
            remote,
            what="adding the remote",
        )
    return remote


def pull_data(workspace: Path, data: str, log: Log = print) -> None:
    """Make `data` present in the workspace: pulled when DVC tracks it, else it must already be there
    (a demo dataset the pipeline makes, or an absolute path on shared storage)."""
    pointer = workspace / f"{data.rstrip('/')}.dvc"
    if pointer.is_file():
        log(f"dvc pull {pointer.relative_to(workspace)}")
        _dvc(
            workspace,
            "pull",
            "--quiet",
            str(pointer.relative_to(workspace)),
            what=f"pulling {data} from the DVC remote (check {DVC_REMOTE_ENV} and the S3 credentials)",
        )
        return
    from edgeops.paths import DEMO_DATASETS

    if Path(data) in DEMO_DATASETS or (Path(data).is_absolute() and Path(data).exists()):
        return
    if not (workspace / data).exists():
        raise EdgeopsError(
            f"{data} is not in the repository at this commit and not tracked by DVC: "
            f"`dvc add {data} && dvc push && git add {data}.dvc && git commit`, then deploy again"
        )


def push_results(workspace: Path, data: str, log: Log = print) -> bool:
    """`dvc push` of the pipeline's outputs; False (and a log line) when no remote is configured.

    The demo datasets are pushed only when the run trained on one of them."""
    if not os.environ.get(DVC_REMOTE_ENV):
        log(f"no {DVC_REMOTE_ENV}: the DVC outputs stay in the workspace {workspace} (MLflow has the rest)")
        return False
    from edgeops.orchestration.dvcgraph import stage_order
    from edgeops.paths import DEMO_DATASETS

    stages = [s for s in stage_order(workspace) if s != DEMO_STAGE or Path(data) in DEMO_DATASETS]
    _dvc(workspace, "push", "--quiet", *stages, what="pushing the results to the DVC remote")
    log(f"dvc push: the outputs of {len(stages)} stages")
    return True


def push_stages(workspace: Path, stages: list[str], log: Log = print) -> None:
    """The outputs of `stages`, and DVC's run cache with the files its entries name, to the DVC remote:
    another workspace then pulls those outputs (`dvc pull`), or restores a stage run with the same inputs
    instead of running it (`dvc repro --pull`). In a process of its own, in the workspace: DVC's run
    cache works from the current folder."""
    import json
    import sys

    code = "import sys; from edgeops.orchestration.workspace import push_here; print(push_here(sys.argv[1:]))"
    python_path = os.pathsep.join([str(workspace / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": python_path.rstrip(os.pathsep)}
    what = f"pushing to the DVC remote (check {DVC_REMOTE_ENV} and the S3 credentials)"
    done = _run([sys.executable, "-c", code, *stages], workspace, what, timeout=1800, env=env)
    log(
        f"dvc push: the outputs of {len(stages)} stages, {json.loads(done.strip().splitlines()[-1])} stage runs"
    )


def push_here(stages: list[str]) -> int:
    """push_stages in the current folder; returns the number of run-cache entries.

    `dvc push --run-cache` (DVC 3.67) uploads the entries but not the files of their `cache: false`
    outputs (metrics, plots), and a restore then fails; DVC's own API pushes what the entries use."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        repo.push(targets=stages)
        entries = repo.stage_cache.push(None)
        for objects in repo.stage_cache.get_used_objs(entries).values():
            repo.cloud.push(objects)
    return len(entries)


def remove(workspace: Path) -> None:
    """After a successful run everything is in MLflow and the DVC remote; a failed run keeps its
    workspace for the retry."""
    shutil.rmtree(workspace, ignore_errors=True)


def current_commit(repo_dir: Path, timeout: float = 600) -> tuple[str, bool]:
    """(HEAD, whether tracked files have uncommitted changes: what a deployment or a run record would miss)."""
    head = _run(["git", "rev-parse", "HEAD"], repo_dir, "reading the git commit", timeout).strip()
    status = ["git", "status", "--porcelain", "--untracked-files=no"]
    return head, bool(_run(status, repo_dir, "git status", timeout).strip())


def apply_choices(
    workspace: Path,
    data: str | None = None,
    task: str | None = None,
    model: str | None = None,
    variants: list[str] | None = None,
    overrides: dict[str, object] | None = None,
) -> list[str]:
    """Write a flow run's parameters into the workspace's params.yaml (validated), so its DVC stages
    see them as `dvc repro` would; returns what changed, as `key=value` lines.

    `overrides` are dotted keys (`compress.variants.prune_int8.ratio: 0.7`), what a sweep point sets."""
    from ruamel.yaml import YAML
    from yaml import safe_load

    from edgeops.config import load_params, parse_params
    from edgeops.pipeline import plan

    params_file = workspace / "params.yaml"
    current = load_params(params_file)
    chosen_task = task or current.task
    updates: dict[str, object] = dict(overrides or {})
    if data:
        updates["data.path"] = data
    if task:
        updates["task"] = task
    if model:
        updates[f"by_task.{chosen_task}.model"] = model
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(params_file.read_text())
    for dotted, value in updates.items():
        *parents, leaf = dotted.split(".")
        node = doc
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise EdgeopsError(f"parameter {dotted}: params.yaml has no section {key!r} there")
            node = node[key]
        node[leaf] = value
    if variants is not None:
        known = doc["compress"]["variants"]
        unknown = sorted(set(variants) - set(known))
        if unknown:
            raise EdgeopsError(
                f"variants {', '.join(unknown)} are not in params.yaml (known: {', '.join(known)})"
            )
        for name in [v for v in known if v not in variants]:
            del known[name]
        updates["compress.variants"] = ",".join(variants)
    text = io.StringIO()
    yaml.dump(doc, text)
    # a bad override fails here, in params.yaml's words, and leaves the file as it was
    chosen = parse_params(safe_load(text.getvalue()), str(params_file))
    params_file.write_text(text.getvalue())
    plan.write(chosen, workspace)  # the model candidates follow params.yaml
    return [f"{key}={value}" for key, value in updates.items()]
