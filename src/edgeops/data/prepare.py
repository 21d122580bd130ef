"""The prepare stage's logic: validate an ImageFolder, split it, decode it once into arrays."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeops.config import DataConfig
from edgeops.data.imagefolder import decode_samples, fingerprint, scan_image_folder, unreadable_error
from edgeops.data.split import SPLITS, stratified_split
from edgeops.errors import EdgeopsError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # u8 NHWC RGB at the model's input size
    labels: np.ndarray  # int64 class indices


def prepare_dataset(
    data: DataConfig, seed: int, out_dir: str | Path, log: Callable[[str], None] = print
) -> dict:
    """Write manifest.json and one .npz per split to out_dir, atomically (all or nothing)."""
    folder = scan_image_folder(data.path)
    log(f"prepare: {len(folder.samples)} images in {len(folder.classes)} classes under {folder.root}")
    if folder.ignored:
        log(f"prepare: ignored {'; '.join(folder.ignored)}")
    splits = stratified_split(folder, data.split, seed, data.min_images_per_class)
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        manifest: dict = {
            "task": "classification",
            "source": str(folder.root),
            "classes": folder.classes,
            "image_size": data.image_size,
            "seed": seed,
            "fingerprint": fingerprint(folder),
            "counts": {},
            "splits": {},
        }
        bad: list[str] = []  # unreadable files of all splits, reported together at the end
        for name in SPLITS:
            samples = [folder.samples[i] for i in splits[name]]

            def progress(done: int, total: int, split: str = name) -> None:
                log(f"prepare: {split} {done}/{total} decoded")

            images, unreadable = decode_samples(folder, samples, data.image_size, progress)
            bad += unreadable
            if bad:
                continue  # keep decoding to name every bad file; nothing more gets written
            labels = np.array([s.label for s in samples], dtype=np.int64)
            np.savez(tmp / f"{name}.npz", images=images, labels=labels)
            manifest["counts"][name] = len(samples)
            manifest["splits"][name] = [[s.path.as_posix(), s.label] for s in samples]
            del images
        if bad:
            raise unreadable_error(bad)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log(f"prepare: split {manifest['counts']} fingerprint {manifest['fingerprint'][:12]}")
    return manifest


def read_manifest(prepared_dir: str | Path) -> dict:
    path = Path(prepared_dir) / MANIFEST
    if not path.exists():
        raise EdgeopsError(f"{path} not found: run the prepare stage first (dvc repro prepare)")
    return json.loads(path.read_text())


def load_split(prepared_dir: str | Path, name: str) -> Split:
    path = Path(prepared_dir) / f"{name}.npz"
    if not path.exists():
        raise EdgeopsError(f"{path} not found: run the prepare stage first (dvc repro prepare)")
    with np.load(path) as z:
        return Split(images=z["images"], labels=z["labels"])
