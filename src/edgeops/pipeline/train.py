"""Training, seeded, keeping the checkpoint with the best validation score of the task's metric."""

from __future__ import annotations

import copy
import csv
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeops.config import Params
from edgeops.errors import EdgeopsError
from edgeops.vision import Split, VisionTask, get_task
from edgeops.vision.preprocess import normalize


def seed_everything(seed: int, num_threads: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if num_threads:
        torch.set_num_threads(num_threads)


def batches(
    split: Split, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalized NCHW float batches and their targets; shuffled when a generator is given."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    images = torch.from_numpy(split.images)
    targets = torch.from_numpy(split.targets)
    for start in range(0, n, batch_size):
        ix = order[start : start + batch_size]
        y = targets[ix]
        yield normalize(images[ix]), (y if y.is_floating_point() else y.long())  # class indices: int64


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, split: Split, batch_size: int = 64, max_images: int = 512) -> bool:
    """Recompute every BatchNorm's running mean/var as a plain average over train batches.

    The running statistics are an exponential average taken while the weights were still moving;
    after short training on small data they describe an older network, and eval mode can collapse
    to one class (MobileNetV3 from scratch: loss near 0, eval accuracy at chance). Returns False when
    the model has no BatchNorm.

    The batches are unaugmented, of a fixed random sample of at most `max_images` images (a split may be
    in class order); batches of one image are skipped (BatchNorm cannot compute statistics on them). It
    runs every epoch: a full pass over 1,400 images took a fifth of small_cnn's epoch."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(split) < 2:
        return False
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    try:
        seen = 0
        for x, _ in batches(split, max(2, batch_size), torch.Generator().manual_seed(0)):
            if len(x) < 2:
                continue
            model(x)
            seen += len(x)
            if seen >= max_images:
                break
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    return True


def freeze_batchnorm(model: nn.Module) -> int:
    """BatchNorm layers to eval mode: they normalize with their running statistics and stop updating them,
    while their affine weights and the rest of the model still train. `model.train()` undoes it, so fit
    calls this again at the start of every frozen epoch. Returns the number of BatchNorm layers."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.eval()
    return len(norms)


@torch.no_grad()
def predict(model: nn.Module, task: VisionTask, split: Split, batch_size: int = 32) -> np.ndarray:
    """The task's predictions of a torch model on a split (eval mode): the network, then the task's
    postprocessor as the IR runs it, then the same decode_output as for the IR's outputs."""
    model.eval()
    postprocessor = task.postprocessor(model, split.images.shape[1]) if len(split) else None
    rows = []
    for x, _ in batches(split, batch_size):
        outputs = model(x)
        if postprocessor is not None:
            outputs = postprocessor(outputs)
        raw = tuple(o.numpy() for o in outputs) if isinstance(outputs, tuple) else outputs.numpy()
        rows.append(task.decode_output(raw))
    return np.concatenate(rows) if rows else np.zeros((0,), np.int64)


def validation_score(model: nn.Module, task: VisionTask, split: Split, labels: list[str]) -> float:
    """The task's primary metric of a torch model on a split (the same metric as on the IR)."""
    return float(task.score(predict(model, task, split), split, labels)[task.metric])


def fit(
    model: nn.Module,
    task: VisionTask,
    labels: list[str],
    train: Split,
    val: Split,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    weight_decay: float = 0.0,
    augment: bool = True,
    log: Callable[[str], None] = print,
    tag: str = "train",
    after_epoch: Callable[[int], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    budget_seconds: float | None = None,
    patience: int | None = None,
    freeze_bn_after: int | None = None,
    on_plan: Callable[[int], None] | None = None,
    eligible: Callable[[int], bool] | None = None,
    start_score: float | None = None,
) -> tuple[nn.Module, list[dict]]:
    """Train with AdamW + one-cycle schedule; returns the best-by-val model and the per-epoch history.

    `epochs` is a maximum: with budget_seconds, the schedule is re-planned after the first epoch to the
    epochs that fit the budget at the measured pace (on_plan gets that number), and training stops before
    an epoch that would overrun it; with patience, it stops after that many epochs without a better
    validation score. The last history row says why training stopped (`stopped`: max_epochs, budget or
    patience). on_epoch gets each row as soon as its epoch is validated (e.g. to log live training curves).

    freeze_bn_after: from the epoch after this one on, BatchNorm statistics are frozen (eval-mode BN, no
    re-estimation); the QAT recipe. eligible(epoch): whether that epoch's model may be kept as the best and
    counts for patience (pruning: only epochs at the target sparsity); when no epoch is, the last one is kept.
    start_score: the validation score of the model as given (QAT: right after quantization); an epoch is
    kept only if it beats it, otherwise the model comes back as given (history rows all `kept: False`)."""
    if len(train) < 1:
        raise EdgeopsError("the train split is empty: add images to the dataset")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, -(-len(train) // batch_size))
    planned, steps_done = epochs, 0
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=planned * steps_per_epoch, pct_start=0.15
    )
    best_score, best_epoch = -1.0, 0
    best_state: dict | None = None
    if start_score is not None:  # fine-tuning must earn its place against the model it starts from
        best_score, best_state = start_score, copy.deepcopy(model.state_dict())
    history: list[dict] = []
    frozen_from = None if freeze_bn_after is None else freeze_bn_after + 1
    training_start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        bn_frozen = frozen_from is not None and epoch >= frozen_from
        if bn_frozen:  # after model.train(), which puts BatchNorm back into training mode
            frozen = freeze_batchnorm(model)
            if epoch == frozen_from and frozen:
                log(f"{tag}: BatchNorm statistics frozen from epoch {epoch} on ({frozen} layers)")
        start, total_loss, seen = time.perf_counter(), 0.0, 0
        epoch_lr = optimizer.param_groups[0]["lr"]
        for x, y in batches(train, batch_size, generator):
            if augment:
                x, y = task.augment(x, y, generator)
            if len(y) == 1 and any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
                continue  # BatchNorm cannot train on a batch of one
            loss = task.loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps_done += 1
            total_loss += float(loss.detach()) * len(y)
            seen += len(y)
        if seen == 0:
            raise EdgeopsError(
                f"{tag}: no batch could be trained: batch size {batch_size} gives batches of one image, "
                "which BatchNorm cannot train on; set train.batch_size to 2 or more"
            )
        if after_epoch:  # e.g. raise the pruning ratio; validation below sees its effect
            after_epoch(epoch)
        if not bn_frozen:  # frozen statistics stay what the weights were fine-tuned against
            reestimate_batchnorm(model, train)
        val_score = validation_score(model, task, val, labels)
        row = {
            "epoch": epoch,
            "train_loss": total_loss / max(1, seen),
            "val_score": val_score,  # the task's primary metric (train.json names it)
            "lr": epoch_lr,  # at the epoch's start (one-cycle changes it every step)
            "seconds": time.perf_counter() - start,
            "stopped": None,
        }
        history.append(row)
        counts = eligible is None or eligible(epoch)
        best = counts and val_score > best_score
        if best:
            best_score, best_state, best_epoch = val_score, copy.deepcopy(model.state_dict()), epoch
        elapsed = time.perf_counter() - training_start
        if epoch == 1 and budget_seconds is not None:
            planned = planned_epochs(epochs, budget_seconds, row["seconds"])
            if 1 < planned < epochs:  # the same one-cycle shape over the epochs that fit, from where it is
                scheduler = torch.optim.lr_scheduler.OneCycleLR(
                    optimizer,
                    max_lr=lr,
                    total_steps=planned * steps_per_epoch,
                    pct_start=0.15,
                    last_epoch=steps_done - 1,
                )
            if on_plan and planned < epochs:
                on_plan(planned)
        row["stopped"] = stop_reason(
            epoch,
            epochs,
            planned,
            elapsed,
            row["seconds"],
            budget_seconds,
            best_epoch if best_state is not None else epoch,  # patience counts from the first eligible epoch
            patience,
        )
        left = (
            f", budget {max(0.0, budget_seconds - elapsed):.0f}s left" if budget_seconds is not None else ""
        )
        log(
            f"{tag}: epoch {epoch}/{planned} loss {row['train_loss']:.4f} val {task.metric} {val_score:.4f} "
            f"({row['seconds']:.1f}s{left}){' *best' if best else ''}"
            + (f"; stopping: {row['stopped']}" if row["stopped"] and row["stopped"] != "max_epochs" else "")
        )
        if on_epoch:
            on_epoch(row)
        if row["stopped"]:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    for row in history:
        row["kept"] = row["epoch"] == best_epoch if best_state is not None else row is history[-1]
    if start_score is not None and best_epoch == 0:
        log(
            f"{tag}: no epoch beat the starting val {task.metric} {start_score:.4f}: the starting model is kept"
        )
    return model, history


CONVERGENCE_WARNING = (
    "FP32 may not have converged (still improving at its last epochs): QAT recovery is measured from it"
)


def convergence_warning(history: list[dict], min_delta: float = 0.005) -> str | None:
    """The warning when the train stage ran out of epochs while still improving: it stopped at max_epochs
    and the best validation score of its last quarter of epochs (at least the last one) beats every epoch
    before by more than min_delta (a single epoch has nothing before it, so it counts as still improving).
    None otherwise, also for a stop by budget or patience (the budget is the user's choice; patience means
    it had stopped improving)."""
    if not history or history[-1].get("stopped") != "max_epochs":
        return None
    scores = [float(row["val_score"]) for row in history]
    recent = max(1, len(scores) // 4)
    before = max(scores[:-recent], default=float("-inf"))
    return CONVERGENCE_WARNING if max(scores[-recent:]) > before + min_delta else None


def undertrained_note(task: str, model: str, history: list[dict]) -> str | None:
    """What the train stage tells the user when its model was still improving when it ran out of epochs
    (convergence_warning's test): more epochs would likely give a better model. None otherwise."""
    if convergence_warning(history) is None:
        return None
    return (
        f"{model} was still improving when its {len(history)} epochs ran out: more epochs "
        f"(by_task.{task}.epochs) would likely give a better model"
    )


def read_history(path: str | Path) -> list[dict] | None:
    """The train stage's per-epoch rows from its CSV (plots/train_history.csv), typed; None if it is absent
    or not readable as one (the convergence note is advice: it never fails a variant)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return [
            {
                **row,
                "epoch": int(row["epoch"]),
                "val_score": float(row["val_score"]),
                "stopped": row.get("stopped") or None,
            }
            for row in rows
        ]
    except (OSError, KeyError, TypeError, ValueError, csv.Error):
        return None


def planned_epochs(max_epochs: int, budget_seconds: float, epoch_seconds: float) -> int:
    """The epochs that fit a training budget at the measured pace: at least 1, at most max_epochs."""
    return max(1, min(max_epochs, int(budget_seconds // max(epoch_seconds, 1e-9))))


def stop_reason(
    epoch: int,
    max_epochs: int,
    planned: int,
    elapsed: float,
    last_epoch_seconds: float,
    budget_seconds: float | None,
    best_epoch: int,
    patience: int | None,
) -> str | None:
    """Why training stops after this epoch (None: go on). The budget stops it before an epoch as long as
    the last one would overrun it, so only a first epoch longer than the whole budget overruns it."""
    if epoch >= max_epochs:
        return "max_epochs"
    if budget_seconds is not None and (epoch >= planned or elapsed + last_epoch_seconds > budget_seconds):
        return "budget"
    if patience is not None and epoch - best_epoch >= patience:
        return "patience"
    return None


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": model.state_dict(), "meta": meta}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    path = Path(path)
    if not path.exists():
        raise EdgeopsError(f"{path} not found: run the train stage first (dvc repro train)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    meta = checkpoint["meta"]
    model = get_task(meta["task"]).build_model(meta["model"], len(meta["classes"]), pretrained=False)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return model, meta


@dataclass
class Candidate:
    """One model the train stage trained: its best validation score and how its training went."""

    name: str  # the `model` entry: the zoo model, with @size when trained at another input size
    model: str
    image_size: int
    best_val: float
    parameters: int
    epochs: int
    seconds: float
    stopped: str
    max_epochs: int  # what `epochs: auto` / `lr: auto` became for this model
    lr: float


def train_candidate(
    params: Params,
    entry: dict[str, Any],
    train: Split,
    val: Split,
    labels: list[str],
    log: Callable[[str], None] = print,
    on_epoch: Callable[[dict], None] | None = None,
    tag: str = "train",
) -> tuple[nn.Module, list[dict], Candidate]:
    """Train one model candidate (its entry in candidates.yaml: edgeops.pipeline.plan) and keep its best
    validation epoch. The entry's epochs are a maximum; its budget_seconds (its share of
    train.budget_seconds) and train.patience may stop it sooner. train and val are at its input size."""
    task, model_name, size = get_task(params.task), entry["model"], train.images.shape[1]
    sizes = params.settings.image_size
    configured = sizes if isinstance(sizes, list) else [sizes]
    if params.settings.model == "auto" and entry["image_size"] not in (None, *configured):
        log(  # auto moved it to its recipe's minimum size
            f"{tag}: auto trains {model_name} at {size}px, the least its recipe allows; "
            f"list {model_name} in `model` to train it at image_size"
        )
    seed_everything(params.seed, params.train.num_threads)
    model = task.build_model(model_name, len(labels), params.train.pretrained)
    epochs, lr, budget = entry["epochs"], entry["lr"], entry["budget_seconds"]
    start = "ImageNet weights" if params.train.pretrained else "scratch"
    log(
        f"{tag}: {params.task} {model_name} from {start} at {size}px, "
        f"{len(labels)} classes, {len(train)} train images, {epochs} epochs at most, lr {lr:g}"
        + (f" within {budget:.0f}s" if budget else "")
    )
    began = time.perf_counter()
    model, history = fit(
        model,
        task,
        labels,
        train,
        val,
        epochs=epochs,
        lr=lr,
        batch_size=entry["batch_size"],
        seed=params.seed,
        weight_decay=params.train.weight_decay,
        augment=params.train.augment,
        log=log,
        tag=tag,
        on_epoch=on_epoch,
        budget_seconds=budget,
        patience=params.train.patience,
    )
    candidate = Candidate(
        name=entry["name"],
        model=model_name,
        image_size=size,
        best_val=max(row["val_score"] for row in history),
        parameters=sum(p.numel() for p in model.parameters()),
        epochs=len(history),
        seconds=time.perf_counter() - began,
        stopped=history[-1]["stopped"],
        max_epochs=epochs,
        lr=lr,
    )
    return model, history, candidate
