"""Training from scratch, seeded, keeping the checkpoint with the best validation accuracy."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeops.config import TrainConfig
from edgeops.data.prepare import Split
from edgeops.errors import EdgeopsError
from edgeops.models import build_model, normalize


def seed_everything(seed: int, num_threads: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if num_threads:
        torch.set_num_threads(num_threads)


def random_shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pad by 1/8 of the size (edge replicate) and crop back at a random offset, per batch."""
    size = x.shape[-1]
    pad = max(1, size // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    return padded[..., dy : dy + size, dx : dx + size]


def batches(
    split: Split, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalized NCHW float batches; shuffled when a generator is given."""
    n = len(split.labels)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    images = torch.from_numpy(split.images)
    labels = torch.from_numpy(split.labels)
    for start in range(0, n, batch_size):
        ix = order[start : start + batch_size]
        yield normalize(images[ix]), labels[ix]


@torch.no_grad()
def reestimate_batchnorm(
    model: nn.Module, split: Split, batch_size: int = 64, max_images: int = 2048
) -> bool:
    """Recompute every BatchNorm's running mean/var as a plain average over train batches.

    The running statistics are an exponential average taken while the weights were still moving;
    after short training on small data they describe an older network, and eval mode can collapse
    to one class (MobileNetV3 from scratch: loss near 0, eval accuracy at chance). Batches are
    unaugmented, in order, at most `max_images` images; batches of one image are skipped (BatchNorm
    cannot compute statistics on them). Returns False when the model has no BatchNorm."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(split.labels) < 2:
        return False
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    try:
        seen = 0
        for x, _ in batches(split, max(2, batch_size)):
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


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    for x, y in batches(split, batch_size):
        correct += int((model(x).argmax(1) == y).sum())
    return correct / max(1, len(split.labels))


def fit(
    model: nn.Module,
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
) -> tuple[nn.Module, list[dict]]:
    """Train with AdamW + cosine schedule; returns the best-by-val model and the per-epoch history."""
    if len(train.labels) < 1:
        raise EdgeopsError("the train split is empty: add images to the dataset")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, -(-len(train.labels) // batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15
    )
    best_acc, best_state = -1.0, copy.deepcopy(model.state_dict())
    history: list[dict] = []
    for epoch in range(1, epochs + 1):
        model.train()
        start, total_loss, seen = time.perf_counter(), 0.0, 0
        for x, y in batches(train, batch_size, generator):
            if augment:
                x = random_shift(x, generator)
            if len(y) == 1 and any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
                continue  # BatchNorm cannot train on a batch of one
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += float(loss.detach()) * len(y)
            seen += len(y)
        if seen == 0:
            raise EdgeopsError(
                f"{tag}: no batch could be trained: batch size {batch_size} gives batches of one image, "
                "which BatchNorm cannot train on; set train.batch_size to 2 or more"
            )
        if after_epoch:  # e.g. raise the pruning ratio; validation below sees its effect
            after_epoch(epoch)
        reestimate_batchnorm(model, train)
        val_acc = accuracy(model, val)
        row = {
            "epoch": epoch,
            "train_loss": total_loss / max(1, seen),
            "val_accuracy": val_acc,
            "seconds": time.perf_counter() - start,
        }
        history.append(row)
        best = val_acc > best_acc
        if best:
            best_acc, best_state = val_acc, copy.deepcopy(model.state_dict())
        log(
            f"{tag}: epoch {epoch}/{epochs} loss {row['train_loss']:.4f} "
            f"val_acc {val_acc:.4f} ({row['seconds']:.1f}s){' *best' if best else ''}"
        )
    model.load_state_dict(best_state)
    return model, history


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
    model = build_model(meta["model"], len(meta["classes"]))
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return model, meta


def train_model(
    config: TrainConfig,
    train: Split,
    val: Split,
    num_classes: int,
    seed: int,
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, list[dict]]:
    seed_everything(seed, config.num_threads)
    model = build_model(config.model, num_classes)
    log(f"train: {config.model} from scratch, {num_classes} classes, {len(train.labels)} train images")
    return fit(
        model,
        train,
        val,
        epochs=config.epochs,
        lr=config.lr,
        batch_size=config.batch_size,
        seed=seed,
        weight_decay=config.weight_decay,
        augment=config.augment,
        log=log,
    )
