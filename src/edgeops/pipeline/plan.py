"""The model candidates as DVC stages: candidates.yaml lists them, resolved from params.yaml, and dvc.yaml
expands `train@<candidate>` and `compress@<candidate>-<variant>` from it.

DVC cannot expand `auto` or `by_task.<task>.model` itself (no nested interpolation, treeverse/dvc#5167), so
edgeops writes the list: `edgeops run` and the flow before they start DVC, `edgeops plan` on demand. A plain
`dvc repro` after an edit of params.yaml finds the file out of date in its first stage that reads it, which
rewrites the file and stops with a line saying to run `dvc repro` again.

Each candidate's entry holds everything its stages take that is not shared by all candidates, so DVC reruns
only the stages of a candidate whose entry changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edgeops.config import Params, split_candidate
from edgeops.errors import EdgeopsError
from edgeops.files import write_atomic
from edgeops.paths import CANDIDATES

HEADER = (
    "# Written by edgeops from params.yaml (by_task.<task>: model, image_size, epochs, lr, batch_size;\n"
    "# train.budget_seconds, split evenly). Do not edit: change params.yaml. dvc.yaml expands one train stage\n"
    "# per candidate and one compress/evaluate stage per candidate and variant from it.\n"
)


def candidate_key(name: str) -> str:
    """A candidate's name in stage names, paths and MLflow keys: `mobilenet_v3_small@64` ->
    `mobilenet_v3_small_64` (DVC's matrix joins keys with `-`, MLflow refuses `@`)."""
    return name.replace("@", "_")


def resolve(params: Params) -> dict[str, dict[str, Any]]:
    """The candidates of params.yaml's task, in training order: key -> its settings."""
    size = params.settings.image_size
    first = size[0] if isinstance(size, list) else None if size == "auto" else size
    names = params.candidates(first)
    budget = params.train.budget_seconds
    plan = {}
    for name in names:
        model, at = split_candidate(name)
        epochs, lr = params.epochs_and_lr(model)
        plan[candidate_key(name)] = {
            "name": name,
            "model": model,
            "image_size": at,  # null: the run's image_size (prepare's manifest)
            "epochs": epochs,
            "lr": lr,
            "batch_size": params.settings.batch_size,
            "budget_seconds": None if budget is None else round(budget / len(names), 3),
        }
    return plan


def render(plan: dict[str, dict[str, Any]]) -> str:
    return HEADER + yaml.safe_dump({"candidates": plan}, sort_keys=False)


def read(root: Path = Path(".")) -> dict[str, dict[str, Any]]:
    path = root / CANDIDATES
    if not path.is_file():
        return {}
    try:
        return dict((yaml.safe_load(path.read_text()) or {}).get("candidates") or {})
    except (yaml.YAMLError, AttributeError, TypeError, ValueError):
        return {}


def write(params: Params, root: Path = Path(".")) -> bool:
    """Bring candidates.yaml up to date with params.yaml; True if it changed."""
    plan = resolve(params)
    if read(root) == plan:
        return False
    write_atomic(root / CANDIDATES, render(plan).encode())
    return True


def current(params: Params, root: Path = Path(".")) -> dict[str, dict[str, Any]]:
    """The candidates, when candidates.yaml (what DVC expanded) still says what params.yaml says.
    Otherwise the file is rewritten and the stage stops: DVC must expand dvc.yaml again."""
    if not (root / CANDIDATES).is_file():  # DVC expanded nothing from it: a stage run by hand writes it
        write(params, root)
    before = read(root)
    if write(params, root):
        after = resolve(params)
        what = (
            f"{', '.join(before) or 'none'} -> {', '.join(after)}"
            if list(before) != list(after)
            else "their settings"
        )
        raise EdgeopsError(
            f"the model candidates in params.yaml changed ({what}); {CANDIDATES} is updated now: "
            "run `dvc repro` again (`edgeops run` updates it before DVC starts)"
        )
    return read(root)


def entry(params: Params, key: str, root: Path = Path(".")) -> dict[str, Any]:
    """One candidate's settings, from an up-to-date candidates.yaml."""
    plan = current(params, root)
    if key not in plan:
        raise EdgeopsError(f"{key!r} is not a model candidate of params.yaml (candidates: {', '.join(plan)})")
    return plan[key]
