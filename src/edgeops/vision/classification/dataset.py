"""Reading and validating an ImageFolder: one sub-folder per class, images inside."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgeops.errors import EdgeopsError
from edgeops.images import IMAGE_SUFFIXES, printable


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
