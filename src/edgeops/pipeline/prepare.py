"""The prepare stage's logic: scan and validate the dataset with its task, split it, decode it once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeops.config import Params
from edgeops.errors import EdgeopsError
from edgeops.files import replaced_dir
from edgeops.images import unreadable_error
from edgeops.vision import Dataset, Split, VisionTask, get_task

MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")


def fingerprint(dataset: Dataset) -> str:
    """sha256 over class names, relative paths and file contents: changes iff the dataset changes."""
    digest = hashlib.sha256()
    digest.update("\n".join(dataset.classes).encode())
    for path in dataset.files:
        digest.update(f"\n{path.as_posix()}:".encode())
        with open(dataset.root / path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def scan_dataset(params: Params, path: str | Path | None = None) -> tuple[VisionTask, Dataset]:
    task = get_task(params.task)
    return task, task.scan(Path(path or params.data.path), params.data.min_images_per_class)


def model_input_size(params: Params, task: VisionTask, dataset: Dataset) -> int:
    """by_task.<task>.image_size (the first of a list), or the task's pick for this dataset when it is `auto`."""
    size = params.settings.image_size
    if isinstance(size, list):  # candidates at several sizes: the data is prepared at the first (and each)
        return size[0]
    return task.input_size(dataset) if size == "auto" else size


def prepare_dataset(params: Params, out_dir: str | Path, log: Callable[[str], None] = print) -> dict:
    """Write manifest.json and one .npz per split to out_dir, atomically (all or nothing)."""
    task, dataset = scan_dataset(params)
    size = model_input_size(params, task, dataset)
    log(
        f"prepare: {params.task}, {dataset.layout}: {len(dataset.items)} images, "
        f"{len(dataset.classes)} classes under {dataset.root}; model input {size}x{size} px"
        + (" (image_size: auto)" if params.settings.image_size == "auto" else "")
    )
    for note in dataset.notes:
        log(f"prepare: {note}")
    if dataset.ignored:
        log(f"prepare: ignored {'; '.join(dataset.ignored)}")
    splits = task.split(
        dataset, params.data.split.model_dump(), params.seed, params.data.min_images_per_class
    )
    with replaced_dir(out_dir) as tmp:
        manifest: dict = {
            "task": params.task,
            "layout": dataset.layout,
            "source": str(dataset.root),
            "classes": dataset.classes,
            "image_size": size,
            "seed": params.seed,
            "fingerprint": fingerprint(dataset),
            "counts": {},
            "splits": {},
        }
        extra_sizes = params.candidate_sizes(size)
        if extra_sizes:
            manifest["extra_sizes"] = extra_sizes
            log(f"prepare: also at {', '.join(f'{s} px' for s in extra_sizes)} for the model candidates")
        bad: list[str] = []  # unreadable files of all splits, reported together at the end
        for name in SPLITS:

            def progress(done: int, total: int, split: str = name) -> None:
                log(f"prepare: {split} {done}/{total} decoded")

            split, unreadable = task.decode(dataset, splits[name], size, name == "test", progress)
            bad += unreadable
            if bad:
                continue  # keep decoding to name every bad file; nothing more gets written
            save_split(tmp / split_file(name, size, size), split)
            for extra in extra_sizes:  # the files decoded fine at the first size: they do at any
                save_split(
                    tmp / split_file(name, extra, size),
                    task.decode(dataset, splits[name], extra, name == "test", None)[0],
                )
            manifest["counts"][name] = len(split)
            manifest["splits"][name] = task.describe_split(dataset, splits[name])
        if bad:
            raise unreadable_error(bad)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    log(f"prepare: split {manifest['counts']} fingerprint {manifest['fingerprint'][:12]}")
    return manifest


def save_split(path: Path, split: Split) -> None:
    arrays = {f"original_{i}": t for i, t in enumerate(split.originals or [])}
    arrays |= {
        "images": split.images,
        "targets": split.targets,
        "has_originals": np.array(split.originals is not None),
    }
    np.savez(path, **arrays)  # type: ignore[arg-type]


def read_manifest(prepared_dir: str | Path) -> dict:
    path = Path(prepared_dir) / MANIFEST
    if not path.exists():
        raise EdgeopsError(f"{path} not found: run the prepare stage first (dvc repro prepare)")
    return json.loads(path.read_text())


def split_file(name: str, size: int, image_size: int) -> str:
    """A split's file: `train.npz` at the run's image_size, `train@64.npz` at a candidate's other size."""
    return f"{name}.npz" if size == image_size else f"{name}@{size}.npz"


def load_split(prepared_dir: str | Path, name: str, size: int | None = None) -> Split:
    """A split as prepare decoded it: at the run's image_size, or at a model candidate's other `size`."""
    file = (
        f"{name}.npz" if size is None else split_file(name, size, read_manifest(prepared_dir)["image_size"])
    )
    path = Path(prepared_dir) / file
    if not path.exists():
        if size is not None and (Path(prepared_dir) / f"{name}.npz").exists():
            raise EdgeopsError(
                f"{path} not found: {prepared_dir} holds no {size} px copy of the data; "
                "rerun the prepare stage (dvc repro prepare)"
            )
        raise EdgeopsError(f"{path} not found: run the prepare stage first (dvc repro prepare)")
    with np.load(path) as z:
        originals = None
        if bool(z["has_originals"]):
            originals = [z[f"original_{i}"] for i in range(len(z["images"]))]
        return Split(images=z["images"], targets=z["targets"], originals=originals)
