"""Reading and validating an ImageFolder: one sub-folder per class, images inside."""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeops.errors import EdgeopsError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})


@dataclass(frozen=True)
class Sample:
    path: Path  # relative to the dataset root
    label: int


@dataclass(frozen=True)
class ImageFolder:
    root: Path
    classes: list[str]
    samples: list[Sample]
    ignored: tuple[str, ...] = ()  # what the scan skipped, one note each (for the log)


# Folder names of a dataset that is already split: as classes they would train "train vs test".
SPLIT_FOLDER_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing"})


def is_hidden(relative: Path) -> bool:
    """A path with any part starting with '.' (.DS_Store, macOS ._IMG.jpg, .ipynb_checkpoints/)."""
    return any(part.startswith(".") for part in relative.parts)


def printable(path: Path | str) -> str:
    """The path as text that can be printed and stored as UTF-8 (undecodable bytes as \\xNN)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _class_images(class_dir: Path, skipped: Counter[str]) -> list[Path]:
    """Image files under class_dir (sub-folders too, symlinks to files followed); counts what it skips."""
    images = []
    for path in sorted(class_dir.rglob("*")):
        if is_hidden(path.relative_to(class_dir)):
            skipped["hidden"] += path.is_file()
        elif path.is_file():
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                images.append(path)
            else:
                skipped[suffix or "no extension"] += 1
    return images


def _ignored_notes(hidden_dirs: list[str], empty_dirs: list[str], skipped: Counter[str]) -> tuple[str, ...]:
    notes = []
    if hidden_dirs:
        notes.append(f"hidden folder(s) {', '.join(hidden_dirs)}")
    if empty_dirs:
        notes.append(f"folder(s) without images {', '.join(empty_dirs)}")
    if skipped["hidden"]:
        notes.append(f"{skipped['hidden']} hidden file(s)")
    others = sorted((k, n) for k, n in skipped.items() if n and k != "hidden")
    if others:
        listed = ", ".join(f"{k} ({n})" for k, n in others)
        notes.append(f"{sum(n for _, n in others)} non-image file(s): {listed}")
    return tuple(notes)


def _check_no_broken_symlinks(root: Path) -> None:
    """DVC hashes every file under data.path (hidden and non-image ones too) and stops on a dangling link."""
    broken = [printable(p) for p in root.rglob("*") if p.is_symlink() and not p.exists()]
    if broken:
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        raise EdgeopsError(
            f"{len(broken)} broken symlink(s) in the dataset: {', '.join(broken[:3])}{more}: "
            "fix or delete them (DVC cannot hash the folder)"
        )


def _check_utf8_names(root: Path, samples: list[Sample]) -> None:
    """Labels and manifest paths are stored as UTF-8 text: refuse names that are not (e.g. from old zips)."""
    bad = [printable(root / s.path) for s in samples if not _is_utf8(str(s.path))]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise EdgeopsError(
            f"{len(bad)} image path(s) are not valid UTF-8: {', '.join(bad[:3])}{more}: rename them"
        )


def _check_not_presplit(root: Path, classes: list[str]) -> None:
    """Refuse class folders that are all named like splits (train/val/test): a model of "train vs test"."""
    if all(name.lower() in SPLIT_FOLDER_NAMES for name in classes):
        train = next((c for c in classes if c.lower().startswith("train")), classes[0])
        raise EdgeopsError(
            f"dataset folder {root} looks already split into {', '.join(classes)}, not into classes: "
            f"point data.path at one split (e.g. {root / train}) or merge the splits into one folder per class"
        )


def scan_image_folder(root: str | Path) -> ImageFolder:
    """List classes (sorted sub-folder names) and their images.

    Ignores, and notes in `ignored`: hidden files and folders (names starting with '.'), non-image
    files, folders without images. Refuses broken symlinks anywhere under root."""
    root = Path(root)
    if not root.exists():
        raise EdgeopsError(f"dataset folder {root} does not exist: set data.path in params.yaml or --data")
    if not root.is_dir():
        raise EdgeopsError(f"dataset path {root} is not a folder: it must hold one sub-folder per class")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    class_dirs = [p for p in subdirs if not p.name.startswith(".")]
    if not class_dirs:
        loose = sum(1 for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        found = f"holds {loose} image(s) but " if loose else "has "
        raise EdgeopsError(
            f"dataset folder {root} {found}no class sub-folders: "
            "put each class's images in a sub-folder named after the class"
        )
    _check_no_broken_symlinks(root)
    classes: list[str] = []
    samples: list[Sample] = []
    skipped: Counter[str] = Counter()
    empty: list[str] = []
    for class_dir in class_dirs:
        images = _class_images(class_dir, skipped)
        if not images:
            empty.append(class_dir.name)  # an empty sub-folder is not a class
            continue
        label = len(classes)
        classes.append(class_dir.name)
        samples.extend(Sample(p.relative_to(root), label) for p in images)
    _check_utf8_names(root, samples)
    if not samples:
        raise EdgeopsError(
            f"dataset folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its sub-folders"
        )
    if len(classes) < 2:
        raise EdgeopsError(
            f"dataset folder {root} has {len(classes)} class with images ({classes[0]}): "
            "classification needs at least two class sub-folders"
        )
    _check_not_presplit(root, classes)
    hidden = [p.name for p in subdirs if p.name.startswith(".")]
    return ImageFolder(root, classes, samples, _ignored_notes(hidden, empty, skipped))


# JPEGs are decoded at a reduced DCT scale that keeps at least this many times the target size: a
# 6000x4000 photo decodes ~4x faster, and the result differs from a full decode by < 1 level on average.
JPEG_DRAFT_FACTOR = 4
_WIDE_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def to_rgb(img: Image.Image) -> Image.Image:
    """PIL's convert("RGB"), except for 16/32-bit grayscale whose values go above 255.

    convert() clips those at 255 (a 16-bit PNG turns almost all white), so they are scaled to
    8 bits first (x / 257: 65535 -> 255). 16-bit images with values <= 255 convert as PIL does."""
    if img.mode in _WIDE_GRAY_MODES:
        values = np.asarray(img)
        if values.size and int(values.max()) > 255:
            scaled = np.clip(np.rint(values.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
            return Image.fromarray(scaled, "L").convert("RGB")
    return img.convert("RGB")


def load_rgb(path: Path, size: int | tuple[int, int]) -> np.ndarray:
    """Decode to RGB u8 HxWx3, resized (bilinear) to size (an int: square; or (width, height)).

    The same steps as an edge app: PIL convert("RGB") then resize with BILINEAR (see to_rgb for
    16-bit grayscale; large JPEGs are decoded at a reduced scale, JPEG_DRAFT_FACTOR)."""
    width, height = (size, size) if isinstance(size, int) else size
    with warnings.catch_warnings():
        # large photos are fine (JPEGs decode at a reduced scale); Pillow still refuses > ~179 Mpx
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except Image.DecompressionBombError as e:
            raise ValueError(f"too large to decode safely ({str(e).split(', could be')[0]})") from None
        with img:
            if img.format == "JPEG":
                img.draft(None, (width * JPEG_DRAFT_FACTOR, height * JPEG_DRAFT_FACTOR))
            rgb = to_rgb(img).resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)


def unreadable_reason(path: Path, error: Exception) -> str:
    """A short reason for an image that cannot be decoded (without repeating its path)."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError as e:
        return f"cannot read it ({e.strerror})"
    if isinstance(error, UnidentifiedImageError):
        return "not a readable image: corrupt, or another format under an image extension"
    message = (str(error).strip().splitlines() or [""])[0].replace(str(path), "").replace("''", "").strip()
    if isinstance(error, ValueError) and message:  # raised by load_rgb with its own wording
        return message[:120]
    return f"{type(error).__name__}: {message[:100]}" if message else type(error).__name__


def decode_samples(
    folder: ImageFolder,
    samples: list[Sample],
    size: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Decode all samples: the images (unreadable ones left black) and a "path (reason)" per unreadable file."""
    out = np.zeros((len(samples), size, size, 3), dtype=np.uint8)
    bad: list[str] = []
    for i, sample in enumerate(samples):
        path = folder.root / sample.path
        try:
            out[i] = load_rgb(path, size)
        except Exception as e:  # any failure to decode a user's file is that file's problem: report it
            bad.append(f"{printable(path)} ({unreadable_reason(path, e)})")
        if progress and (i + 1) % 500 == 0:
            progress(i + 1, len(samples))
    return out, bad


def unreadable_error(bad: list[str]) -> EdgeopsError:
    """One line naming the unreadable files (the first five, and how many more)."""
    shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
    return EdgeopsError(f"{len(bad)} unreadable image(s): {shown}. Fix or delete them and rerun")


def load_images(
    folder: ImageFolder,
    samples: list[Sample],
    size: int,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Decode all samples; reports every unreadable file by path in one error."""
    images, bad = decode_samples(folder, samples, size, progress)
    if bad:
        raise unreadable_error(bad)
    return images


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
