"""Reading and validating a segmentation dataset.

Two layouts:
- images/ + masks/ (as MMSeg and Datumaro read it): the same relative path and stem in both, masks are
  single-channel index PNGs (pixel value = class index, 255 = ignore), optional labels.txt (line i
  names class i; without it, classes are named by index);
- Pascal VOC: JPEGImages/ + SegmentationClass/ palette PNGs, and ImageSets/Segmentation/*.txt when
  present (the ids listed there are the dataset; otherwise every mask with its image)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgeops.errors import EdgeopsError
from edgeops.images import IMAGE_SUFFIXES, open_image, printable, unreadable_reason
from edgeops.vision.base import Dataset

IGNORE = 255
MASK_SUFFIXES = frozenset(
    {".png", ".bmp", ".tif", ".tiff"}
)  # lossless only: a JPEG mask has invented class values
INDEX_MODES = frozenset({"L", "P", "1", "I;16", "I;16L", "I;16B", "I"})
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
MAX_NAMED = 3  # how many offending files an error names


@dataclass(frozen=True)
class Pair:
    path: Path  # the image, relative to the dataset root
    mask: Path  # its mask, relative to the dataset root


def detect_layout(root: Path) -> str | None:
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "images/ + masks/"
    if (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir():
        return "Pascal VOC"
    return None


def _listed(files: list[str], total: int) -> str:
    more = f" and {total - MAX_NAMED} more" if total > MAX_NAMED else ""
    return ", ".join(files[:MAX_NAMED]) + more


def _files_by_key(folder: Path, suffixes: frozenset[str], skipped: Counter[str]) -> dict[str, Path]:
    """Files under folder keyed by their relative path without suffix (hidden files skipped)."""
    out: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            skipped["hidden"] += path.is_file()
            continue
        if not path.is_file():
            continue
        if path.suffix.lower() not in suffixes:
            skipped[path.suffix.lower() or "no extension"] += 1
            continue
        key = relative.with_suffix("").as_posix()
        if key in out:
            raise EdgeopsError(
                f"{printable(out[key])} and {printable(path)} have the same name: keep one file per name"
            )
        out[key] = path
    return out


def _read_labels(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeopsError(f"{path} is not readable UTF-8 text ({e}): one class name per line") from None
    while names and not names[-1]:
        names.pop()
    if not names or any(not n for n in names):
        raise EdgeopsError(f"{path}: empty line(s): write one class name per line (line i names class i)")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise EdgeopsError(f"{path}: class name(s) {', '.join(dupes)} appear twice: names must be unique")
    if len(names) > IGNORE:
        raise EdgeopsError(f"{path}: {len(names)} classes; index masks allow at most 255 (255 = ignore)")
    return names


def read_mask(path: Path) -> np.ndarray:
    """A mask as a uint8 HxW array of class indices (255 = ignore); ValueError says what is wrong."""
    with open_image(path) as img:
        if img.mode not in INDEX_MODES:
            if img.mode in ("RGB", "RGBA"):
                raise ValueError(
                    f"an {img.mode} mask, not class indices: save masks as single-channel index PNGs "
                    "(pixel value = class index) or palette PNGs"
                )
            raise ValueError(f"mask mode {img.mode} is not single-channel class indices")
        values = np.asarray(img)
    if values.dtype == bool:
        values = values.astype(np.uint8)
    if values.size and int(values.max()) > IGNORE:
        raise ValueError(f"mask value {int(values.max())} > 255: class indices must fit 0-254, 255 = ignore")
    return values.astype(np.uint8)


def _image_size(path: Path) -> tuple[int, int]:
    with open_image(path) as img:
        if img.format == "PNG":
            img.verify()  # CRC check: a truncated PNG is named now, not after hours of training
        return img.size


def _check_pairs(root: Path, pairs: list[Pair]) -> int:
    """Every mask readable, the size of its image, with index values; returns the largest class index."""
    bad: list[str] = []
    largest = -1
    for pair in pairs:
        mask_path, image_path = root / pair.mask, root / pair.path
        try:
            mask = read_mask(mask_path)
        except Exception as e:  # the file's own problem: name it
            bad.append(f"{printable(mask_path)} ({unreadable_reason(mask_path, e)})")
            continue
        try:
            width, height = _image_size(image_path)
        except Exception as e:
            bad.append(f"{printable(image_path)} ({unreadable_reason(image_path, e)})")
            continue
        if mask.shape != (height, width):
            bad.append(
                f"{printable(mask_path)} (mask is {mask.shape[1]}x{mask.shape[0]}, its image {width}x{height}: "
                "a mask must have its image's size)"
            )
            continue
        present = np.unique(mask)
        present = present[present != IGNORE]
        if present.size:
            largest = max(largest, int(present.max()))
    if bad:
        raise EdgeopsError(
            f"{len(bad)} bad file(s): {'; '.join(bad[:5])}"
            + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            + ". Fix or delete them and rerun"
        )
    return largest


def _class_values(root: Path, pairs: list[Pair]) -> dict[int, str]:
    """class index -> the first mask that uses it (to name a file when a value has no label)."""
    seen: dict[int, str] = {}
    for pair in pairs:
        for value in np.unique(read_mask(root / pair.mask)):
            if int(value) != IGNORE and int(value) not in seen:
                seen[int(value)] = printable(root / pair.mask)
    return seen


def _classes(root: Path, pairs: list[Pair], labels_file: Path, voc: bool) -> tuple[list[str], str]:
    largest = _check_pairs(root, pairs)
    labels = _read_labels(labels_file)
    if labels is not None:
        if largest >= len(labels):
            values = _class_values(root, pairs)
            unknown = sorted(v for v in values if v >= len(labels))
            raise EdgeopsError(
                f"{values[unknown[0]]}: mask value(s) {', '.join(map(str, unknown[:5]))} have no label in "
                f"{labels_file} ({len(labels)} classes, 0-{len(labels) - 1}; 255 = ignore): add the names "
                "or fix the masks"
            )
        return labels, f"from {labels_file.name}"
    if voc and largest < len(VOC_CLASSES):
        return VOC_CLASSES[: max(largest + 1, 2)], "the Pascal VOC names, no labels.txt"
    if largest < 1:
        raise EdgeopsError(
            f"the masks under {root} hold only class 0 (and 255 = ignore): segmentation needs at least two "
            "classes; if your masks mark objects with 255, write them as 1 (255 means ignore)"
        )
    return [str(i) for i in range(largest + 1)], "named by index, no labels.txt"


def _ignored_notes(skipped: Counter[str], unpaired_images: int) -> tuple[str, ...]:
    notes = []
    if skipped["hidden"]:
        notes.append(f"{skipped['hidden']} hidden file(s)")
    others = sorted((k, n) for k, n in skipped.items() if n and k != "hidden")
    if others:
        notes.append(
            f"{sum(n for _, n in others)} other file(s): " + ", ".join(f"{k} ({n})" for k, n in others)
        )
    if unpaired_images:
        notes.append(f"{unpaired_images} image(s) without a mask (VOC: not part of the segmentation set)")
    return tuple(notes)


def scan_images_masks(root: Path) -> Dataset:
    skipped: Counter[str] = Counter()
    images = _files_by_key(root / "images", IMAGE_SUFFIXES, skipped)
    masks = _files_by_key(root / "masks", MASK_SUFFIXES | IMAGE_SUFFIXES, skipped)
    lonely_images = sorted(k for k in images if k not in masks)
    lonely_masks = sorted(k for k in masks if k not in images)
    if lonely_images:
        names = [printable(images[k]) for k in lonely_images]
        raise EdgeopsError(
            f"{len(names)} image(s) without a mask in {root / 'masks'}: {_listed(names, len(names))}: "
            "add the masks (same name, .png) or remove the images"
        )
    if lonely_masks:
        names = [printable(masks[k]) for k in lonely_masks]
        raise EdgeopsError(
            f"{len(names)} mask(s) without an image in {root / 'images'}: {_listed(names, len(names))}: "
            "add the images or remove the masks"
        )
    jpeg_masks = [printable(masks[k]) for k in masks if masks[k].suffix.lower() in (".jpg", ".jpeg")]
    if jpeg_masks:
        raise EdgeopsError(
            f"{len(jpeg_masks)} JPEG mask(s): {_listed(jpeg_masks, len(jpeg_masks))}: JPEG compression changes "
            "class values at edges; save masks as PNG"
        )
    pairs = [Pair(images[k].relative_to(root), masks[k].relative_to(root)) for k in sorted(images)]
    return _dataset(
        root, pairs, "images/ + masks/", root / "labels.txt", voc=False, ignored=_ignored_notes(skipped, 0)
    )


def scan_voc(root: Path) -> Dataset:
    skipped: Counter[str] = Counter()
    images = _files_by_key(root / "JPEGImages", IMAGE_SUFFIXES, skipped)
    masks = _files_by_key(root / "SegmentationClass", MASK_SUFFIXES, skipped)
    sets = root / "ImageSets" / "Segmentation"
    listed = sorted(p for p in sets.glob("*.txt") if not p.name.startswith(".")) if sets.is_dir() else []
    if listed:
        ids = sorted({line.strip() for f in listed for line in f.read_text().splitlines() if line.strip()})
        missing_masks = [i for i in ids if i not in masks]
        missing_images = [i for i in ids if i not in images]
        if missing_images:
            raise EdgeopsError(
                f"{len(missing_images)} id(s) listed in {sets} have no image in JPEGImages/: "
                f"{_listed(missing_images, len(missing_images))}"
            )
        if missing_masks:
            raise EdgeopsError(
                f"{len(missing_masks)} id(s) listed in {sets} have no mask in SegmentationClass/: "
                f"{_listed(missing_masks, len(missing_masks))}"
            )
        keys = ids
    else:
        lonely_masks = sorted(k for k in masks if k not in images)
        if lonely_masks:
            names = [printable(masks[k]) for k in lonely_masks]
            raise EdgeopsError(
                f"{len(names)} mask(s) without an image in JPEGImages/: {_listed(names, len(names))}"
            )
        keys = sorted(masks)
    unpaired = sum(1 for k in images if k not in set(keys))
    pairs = [Pair(images[k].relative_to(root), masks[k].relative_to(root)) for k in keys]
    return _dataset(
        root, pairs, "Pascal VOC", root / "labels.txt", voc=True, ignored=_ignored_notes(skipped, unpaired)
    )


def _dataset(
    root: Path, pairs: list[Pair], layout: str, labels_file: Path, voc: bool, ignored: tuple[str, ...]
) -> Dataset:
    if len(pairs) < 3:
        raise EdgeopsError(
            f"{root} holds {len(pairs)} image/mask pair(s): a train/val/test split needs at least 3"
        )
    classes, origin = _classes(root, pairs, labels_file, voc)
    files = [f for pair in pairs for f in (pair.path, pair.mask)]
    if labels_file.is_file():
        files.append(labels_file.relative_to(root))
    shown = ", ".join(classes[:8]) + (f", … ({len(classes)} in all)" if len(classes) > 8 else "")
    return Dataset(root, layout, classes, pairs, files, ignored, notes=(f"classes ({origin}): {shown}",))


def scan_segmentation(root: Path) -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise EdgeopsError(f"dataset folder {root} does not exist: set data.path in params.yaml or --data")
    broken = [printable(p) for p in root.rglob("*") if p.is_symlink() and not p.exists()]
    if broken:
        raise EdgeopsError(
            f"{len(broken)} broken symlink(s) in the dataset: {_listed(broken, len(broken))}: fix or delete them"
        )
    layout = detect_layout(root)
    if layout == "images/ + masks/":
        return scan_images_masks(root)
    if layout == "Pascal VOC":
        return scan_voc(root)
    raise EdgeopsError(
        f"{root} is not a segmentation dataset: expected images/ + masks/ (index PNGs, same names) "
        "or Pascal VOC JPEGImages/ + SegmentationClass/"
    )


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to (width, height): class values are never blended."""
    if (mask.shape[1], mask.shape[0]) == size:
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(size, Image.Resampling.NEAREST))
