"""Reading and validating an ImageFolder: one sub-folder per class, images inside."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeops.errors import EdgeopsError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
# Larger images are refused rather than decoded: a 100-megapixel file is a mistake or an attack.
MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class Sample:
    path: Path  # relative to the dataset root
    label: int


@dataclass(frozen=True)
class ImageFolder:
    root: Path
    classes: list[str]
    samples: list[Sample]


def scan_image_folder(root: str | Path) -> ImageFolder:
    """List classes (sorted sub-folder names) and their images; ignores stray non-image files."""
    root = Path(root)
    if not root.exists():
        raise EdgeopsError(f"dataset folder {root} does not exist: set data.path in params.yaml or --data")
    if not root.is_dir():
        raise EdgeopsError(f"dataset path {root} is not a folder: it must hold one sub-folder per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise EdgeopsError(
            f"dataset folder {root} has no class sub-folders: put each class's images in a sub-folder"
        )
    classes: list[str] = []
    samples: list[Sample] = []
    for class_dir in class_dirs:
        images = sorted(p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            continue  # an empty sub-folder is not a class
        label = len(classes)
        classes.append(class_dir.name)
        samples.extend(Sample(p.relative_to(root), label) for p in images)
    if not samples:
        raise EdgeopsError(
            f"dataset folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its sub-folders"
        )
    if len(classes) < 2:
        raise EdgeopsError(
            f"dataset folder {root} has {len(classes)} class with images ({classes[0]}): "
            "classification needs at least two class sub-folders"
        )
    return ImageFolder(root=root, classes=classes, samples=samples)


def load_rgb(path: Path, size: int | tuple[int, int]) -> np.ndarray:
    """Decode to RGB u8 HxWx3, resized (bilinear) to size (an int: square; or (width, height)).

    The same steps as an edge app: PIL convert("RGB") then resize with BILINEAR."""
    width, height = (size, size) if isinstance(size, int) else size
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ValueError(f"{img.width}x{img.height} is larger than {MAX_PIXELS} pixels")
            rgb = img.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)


def load_images(
    folder: ImageFolder,
    samples: list[Sample],
    size: int,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Decode all samples; reports every unreadable file by path in one error."""
    out = np.empty((len(samples), size, size, 3), dtype=np.uint8)
    bad: list[str] = []
    for i, sample in enumerate(samples):
        try:
            out[i] = load_rgb(folder.root / sample.path, size)
        except (
            OSError,
            UnidentifiedImageError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombWarning,
        ) as e:
            bad.append(f"{folder.root / sample.path} ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
        if progress and (i + 1) % 500 == 0:
            progress(i + 1, len(samples))
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise EdgeopsError(f"{len(bad)} unreadable image(s): {shown}. Fix or delete them and rerun")
    return out


def fingerprint(folder: ImageFolder) -> str:
    """sha256 over class names, relative paths and file contents: changes iff the dataset changes."""
    digest = hashlib.sha256()
    digest.update("\n".join(folder.classes).encode())
    for sample in folder.samples:
        digest.update(f"\n{sample.label}:{sample.path.as_posix()}:".encode())
        with open(folder.root / sample.path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
