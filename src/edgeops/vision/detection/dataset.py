"""Reading and validating an object detection dataset.

Three layouts, each read to the same `BoxSample`s (boxes x0, y0, x1, y1 in the image's own pixels):
- COCO: images/ + annotations.json (`file_name` relative to images/, sub-folders allowed; bbox is
  [x, y, w, h]; category ids may be sparse: classes are the categories sorted by id; iscrowd kept);
- YOLO (Ultralytics): images/ + labels/, one `class cx cy w h` txt (normalised 0..1) per image at the
  same relative path (images/train/a.jpg <-> labels/train/a.txt); names from data.yaml (`names:` list or
  {id: name}), else classes.txt (one per line, in the root or in labels/), else "0", "1", ...;
  segment-format lines (`class x1 y1 x2 y2 ...`, a polygon) are read as the polygon's enclosing box,
  as Ultralytics does for detection;
- Pascal VOC: Annotations/*.xml + JPEGImages/; classes are the <name>s sorted; `difficult` -> crowd
  (ignored in evaluation); VOC's 1-based inclusive pixel coordinates become x0 = xmin - 1, x1 = xmax.

Images without objects are negatives and kept. A box that sticks out of its image is clipped (and
counted in the notes); a box entirely outside, or with no area, is an error naming the file. The image
size is read from the header only (cheap): the decode stage names files whose pixels are broken."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edgeops.errors import EdgeopsError
from edgeops.images import IMAGE_SUFFIXES, open_image, printable, unreadable_error, unreadable_reason
from edgeops.vision.base import Dataset

COCO = "COCO (images/ + annotations.json)"
YOLO = "YOLO (images/ + labels/)"
VOC = "Pascal VOC (Annotations/ + JPEGImages/)"
SPLITS = ("train", "val", "test")
MAX_NAMED = 3  # how many offending files an error names
CLIP_NOTE_PX = 1.0  # a box sticking out by more than this is counted as clipped (less is rounding)
NORMALISED_SLACK = 0.01  # YOLO values up to 1.01 are rounding; larger ones are pixels, not fractions
SPLIT_FOLDER_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing"})


@dataclass(frozen=True)
class BoxSample:
    path: Path  # image, relative to the dataset root
    size: tuple[int, int]  # (width, height) of the image as stored (read from the header)
    boxes: np.ndarray  # float32 (M, 4) x0, y0, x1, y1 in original pixels, clipped to the image
    classes: np.ndarray  # int64 (M,) index into Dataset.classes
    crowd: np.ndarray  # bool (M,) COCO iscrowd / VOC difficult: ignored in evaluation


def detect_layout(root: Path) -> str | None:
    """COCO, YOLO or Pascal VOC detection if `root` has that layout's folders/files, else None."""
    root = Path(root)
    if (root / "images").is_dir() and (root / "annotations.json").is_file():
        return COCO
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return YOLO
    if (root / "Annotations").is_dir() and (root / "JPEGImages").is_dir():
        return VOC
    return None


# ----------------------------------------------------------------------------------------- helpers
class _Boxes:
    """The boxes of one image as they are read, checked and clipped one by one."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.boxes: list[tuple[float, float, float, float]] = []
        self.classes: list[int] = []
        self.crowd: list[bool] = []
        self.clipped = 0

    def add(self, x0: float, y0: float, x1: float, y1: float, label: int, crowd: bool, where: str) -> None:
        """Check and clip one box; `where` names the file (and annotation/line) for the error."""
        width, height = self.size
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise EdgeopsError(f"{where}: the box has a coordinate that is not a number: fix or delete it")
        if x1 <= x0 or y1 <= y0:
            raise EdgeopsError(
                f"{where}: the box has zero or negative width or height "
                f"({x1 - x0:g} x {y1 - y0:g} px): fix or delete it"
            )
        cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
        if cx1 <= cx0 or cy1 <= cy0:
            raise EdgeopsError(
                f"{where}: the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies entirely outside the "
                f"{width}x{height} image: fix or delete it"
            )
        overhang = max(cx0 - x0, cy0 - y0, x1 - cx1, y1 - cy1)
        self.clipped += overhang > CLIP_NOTE_PX
        self.boxes.append((cx0, cy0, cx1, cy1))
        self.classes.append(label)
        self.crowd.append(crowd)

    def sample(self, path: Path) -> BoxSample:
        return BoxSample(
            path=path,
            size=self.size,
            boxes=np.asarray(self.boxes, np.float32).reshape(-1, 4),
            classes=np.asarray(self.classes, np.int64),
            crowd=np.asarray(self.crowd, bool),
        )


def _listed(names: Sequence[str]) -> str:
    more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    return ", ".join(names[:MAX_NAMED]) + more


def _walk(folder: Path, suffixes: frozenset[str], skipped: Counter[str]) -> list[Path]:
    """Files under folder with one of the suffixes, relative to folder, sorted; hidden files skipped."""
    out = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):  # .DS_Store, macOS ._IMG.jpg, .cache/
            skipped["hidden"] += path.is_file()
        elif path.is_file():
            if path.suffix.lower() in suffixes:
                out.append(relative)
            else:
                skipped[path.suffix.lower() or "no extension"] += 1
    return out


def _by_stem(folder: Path, files: list[Path]) -> dict[str, Path]:
    """Relative path without suffix -> file; two files of one name (a.jpg, a.png) are an error."""
    out: dict[str, Path] = {}
    for relative in files:
        key = relative.with_suffix("").as_posix()
        if key in out:
            raise EdgeopsError(
                f"{printable(folder / out[key])} and {printable(folder / relative)} have the same name: "
                "keep one file per name"
            )
        out[key] = relative
    return out


def _image_sizes(root: Path, paths: list[Path]) -> dict[Path, tuple[int, int]]:
    """(width, height) of each image from its header; one error naming every unreadable one."""
    sizes: dict[Path, tuple[int, int]] = {}
    bad: list[str] = []
    for relative in paths:
        path = root / relative
        try:
            with open_image(path) as img:
                sizes[relative] = img.size
        except Exception as e:  # the file's own problem: name it
            bad.append(f"{printable(path)} ({unreadable_reason(path, e)})")
    if bad:
        raise unreadable_error(bad)
    return sizes


def _check_declared_size(declared: tuple[Any, Any], actual: tuple[int, int], where: str) -> None:
    """An annotation's own width/height (when given) must be the stored image's: boxes are in its pixels."""
    width, height = declared
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        return  # absent or 0 (some tools write 0): nothing to compare
    if (round(width), round(height)) != actual:
        rotated = (
            " (EXIF rotation? save the image upright)" if (round(height), round(width)) == actual else ""
        )
        raise EdgeopsError(
            f"{where}: the annotation says the image is {width:g}x{height:g} but it is stored "
            f"{actual[0]}x{actual[1]}{rotated}: the boxes would not match it; fix the annotation or the image"
        )


def _number(value: Any) -> float:
    """A JSON number as float (NaN for anything else, which _Boxes.add reports)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _read_names_txt(path: Path) -> list[str]:
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeopsError(
            f"{printable(path)} is not readable UTF-8 text ({e}): one class name per line"
        ) from None
    while names and not names[-1]:
        names.pop()
    if not names or any(not n for n in names):
        raise EdgeopsError(
            f"{printable(path)}: empty line(s): write one class name per line (line i names class i)"
        )
    return names


def _unique_names(names: list[str], source: str) -> list[str]:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EdgeopsError(f"{source}: class name(s) {', '.join(dupes)} appear twice: names must be unique")
    return names


def _ignored_notes(skipped: Counter[str], extra: list[str]) -> tuple[str, ...]:
    notes = []
    if skipped["hidden"]:
        notes.append(f"{skipped['hidden']} hidden file(s)")
    others = sorted((k, n) for k, n in skipped.items() if n and k != "hidden")
    if others:
        notes.append(
            f"{sum(n for _, n in others)} other file(s): " + ", ".join(f"{k} ({n})" for k, n in others)
        )
    return tuple(notes + extra)


def _dataset(
    root: Path,
    layout: str,
    classes: list[str],
    origin: str,
    items: list[BoxSample],
    files: list[Path],
    ignored: tuple[str, ...],
    clipped: int,
    extra_notes: list[str],
) -> Dataset:
    if len(items) < 3:
        raise EdgeopsError(f"{root} holds {len(items)} image(s): a train/val/test split needs at least 3")
    total = sum(len(item.boxes) for item in items)
    if total == 0:
        raise EdgeopsError(
            f"{root} has images but no boxes: {len(items)} image(s) and not one object in its {layout} "
            "annotations: annotate the objects (or check that the annotations are where the layout expects)"
        )
    shown = ", ".join(classes[:8]) + (f", … ({len(classes)} in all)" if len(classes) > 8 else "")
    notes = [f"classes ({origin}): {shown}", f"{total} box(es) in {len(items)} image(s)"]
    per_class = Counter(int(c) for item in items for c in item.classes)
    unused = [classes[c] for c in range(len(classes)) if not per_class[c]]
    if unused:
        notes.append(f"{len(unused)} class(es) without any box: {_listed(unused)}")
    negatives = sum(1 for item in items if not len(item.boxes))
    if negatives:
        notes.append(f"{negatives} image(s) without objects kept as negatives")
    if clipped:
        notes.append(f"clipped {clipped} box(es) that stuck out of their image")
    crowd = sum(int(item.crowd.sum()) for item in items)
    if crowd:
        what = "difficult" if layout == VOC else "crowd (iscrowd)"
        notes.append(f"{crowd} {what} box(es) kept, ignored in evaluation")
    return Dataset(root, layout, classes, list(items), files, ignored, tuple(notes + extra_notes))


# -------------------------------------------------------------------------------------------- COCO
def scan_coco(root: Path) -> Dataset:
    json_path = root / "annotations.json"
    where = printable(json_path)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise EdgeopsError(f"{where} is not valid JSON ({e}): fix or re-export it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeopsError(f"{where} cannot be read as UTF-8 text ({e}): fix or re-export it") from None
    if not isinstance(data, dict):
        raise EdgeopsError(f"{where}: expected a COCO object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            state = "lacks" if key not in data else "has no list under"
            raise EdgeopsError(
                f"{where} {state} the '{key}' key: a COCO detection file has 'images', 'annotations' and "
                "'categories' lists"
            )

    # categories: sparse ids -> 0..C-1 in id order
    by_id: dict[int, str] = {}
    for n, cat in enumerate(data["categories"]):
        cid, name = (cat.get("id"), cat.get("name")) if isinstance(cat, dict) else (None, None)
        if not isinstance(cid, int) or isinstance(cid, bool) or not isinstance(name, str) or not name.strip():
            raise EdgeopsError(f"{where}: category #{n} needs an integer 'id' and a 'name': fix it")
        if cid in by_id:
            raise EdgeopsError(f"{where}: category id {cid} appears twice: category ids must be unique")
        by_id[cid] = name.strip()
    if not by_id:
        raise EdgeopsError(f"{where}: 'categories' is empty: list the classes as {{'id': 1, 'name': ...}}")
    class_of = {cid: i for i, cid in enumerate(sorted(by_id))}
    classes = _unique_names([by_id[cid] for cid in sorted(by_id)], where)

    # images: listed entries <-> files under images/
    skipped: Counter[str] = Counter()
    on_disk = {p.as_posix(): p for p in _walk(root / "images", IMAGE_SUFFIXES, skipped)}
    entries: dict[Any, str] = {}  # image id -> file_name key under images/
    used: set[str] = set()
    missing: list[str] = []
    declared: dict[Any, tuple[Any, Any]] = {}
    for n, image in enumerate(data["images"]):
        iid, name = (image.get("id"), image.get("file_name")) if isinstance(image, dict) else (None, None)
        if iid is None or isinstance(iid, (dict, list)) or not isinstance(name, str) or not name:
            raise EdgeopsError(f"{where}: image #{n} needs an 'id' and a 'file_name': fix it")
        if iid in entries:
            raise EdgeopsError(f"{where}: image id {iid} appears twice: image ids must be unique")
        key = name.replace("\\", "/").removeprefix("./")
        if key not in on_disk and key.startswith("images/") and key[len("images/") :] in on_disk:
            key = key[len("images/") :]  # file_name written relative to the dataset root
        if key in used:
            raise EdgeopsError(f"{where}: file_name {name} is listed twice: list each image once")
        if key not in on_disk:
            missing.append(name)
        entries[iid] = key
        used.add(key)
        declared[iid] = (image.get("width"), image.get("height"))
    if missing:
        raise EdgeopsError(
            f"{len(missing)} image(s) listed in {where} are missing from {printable(root / 'images')}: "
            f"{_listed(missing)}: add them or remove their entries"
        )
    listed = sorted(entries.values())
    sizes = _image_sizes(root, [Path("images") / on_disk[k] for k in listed])
    size_of = {k: sizes[Path("images") / on_disk[k]] for k in listed}
    for iid, key in entries.items():
        _check_declared_size(declared[iid], size_of[key], f"{where}: image {key}")

    boxes = {key: _Boxes(size_of[key]) for key in listed}
    for n, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise EdgeopsError(f"{where}: annotation #{n} is not an object: fix it")
        name = f"annotation id {ann['id']}" if "id" in ann else f"annotation #{n}"
        iid, cid, bbox = ann.get("image_id"), ann.get("category_id"), ann.get("bbox")
        if isinstance(iid, (dict, list)) or iid not in entries:
            raise EdgeopsError(
                f"{where}: {name} refers to image_id {iid}, which is not in 'images': "
                "add the image or delete the annotation"
            )
        if isinstance(cid, bool) or cid not in class_of:
            raise EdgeopsError(
                f"{where}: {name} has category_id {cid}, which is not in 'categories' "
                f"(ids {_listed([str(c) for c in sorted(by_id)])}): fix the id or add the category"
            )
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise EdgeopsError(f"{where}: {name} needs a 'bbox' [x, y, width, height]: fix or delete it")
        x, y, w, h = (_number(v) for v in bbox)
        boxes[entries[iid]].add(
            x,
            y,
            x + w,
            y + h,
            class_of[cid],
            bool(ann.get("iscrowd", 0)),
            f"{where}: {name} ({entries[iid]})",
        )

    items = [boxes[key].sample(Path("images") / on_disk[key]) for key in listed]
    unlisted = len(on_disk) - len(listed)
    extra = [f"{unlisted} image(s) in images/ not listed in annotations.json"] if unlisted else []
    files = [Path("annotations.json")] + [item.path for item in items]
    clipped = sum(b.clipped for b in boxes.values())
    origin = "from annotations.json categories, in id order"
    return _dataset(root, COCO, classes, origin, items, files, _ignored_notes(skipped, extra), clipped, [])


# -------------------------------------------------------------------------------------------- YOLO
def _yaml_names(path: Path) -> list[str] | None:
    """Class names from an Ultralytics data.yaml (`names:` list or {id: name}); None without `names`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise EdgeopsError(f"{printable(path)} is not valid YAML{line}: fix it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeopsError(f"{printable(path)} cannot be read as UTF-8 text ({e})") from None
    if not isinstance(data, dict):
        return None
    if "kpt_shape" in data:
        raise EdgeopsError(
            f"{printable(path)} describes keypoint (pose) labels: only box labels are supported for detection"
        )
    names = data.get("names")
    if names is None:
        return None
    if isinstance(names, dict):
        try:
            by_index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise EdgeopsError(
                f"{printable(path)}: names must map class indices to names, e.g. {{0: cat, 1: dog}}"
            ) from None
        gaps = [str(i) for i in range(len(by_index)) if i not in by_index]
        if gaps:
            raise EdgeopsError(
                f"{printable(path)}: names has no name for class(es) {_listed(gaps)}: "
                f"name every class 0-{len(by_index) - 1}"
            )
        result = [by_index[i] for i in range(len(by_index))]
    elif isinstance(names, list):
        result = [str(n) for n in names]
    else:
        raise EdgeopsError(f"{printable(path)}: names must be a list or {{index: name}}, not {names!r}")
    if not result or any(not n.strip() for n in result):
        raise EdgeopsError(f"{printable(path)}: names has empty entries: name every class")
    nc = data.get("nc")
    if isinstance(nc, int) and nc != len(result):
        raise EdgeopsError(f"{printable(path)}: nc is {nc} but names lists {len(result)}: make them agree")
    return _unique_names([n.strip() for n in result], printable(path))


def _yolo_names(root: Path, image_keys: set[str]) -> tuple[list[str] | None, str, Path | None]:
    for name in ("data.yaml", "data.yml"):
        path = root / name
        if path.is_file():
            names = _yaml_names(path)
            if names is not None:
                return names, f"from {name}", path.relative_to(root)
    for path in (root / "classes.txt", root / "labels" / "classes.txt"):
        if path.is_file() and not (path.parent.name == "labels" and "classes" in image_keys):
            names = _unique_names(_read_names_txt(path), printable(path))
            return names, f"from {path.relative_to(root).as_posix()}", path.relative_to(root)
    return None, "named by index: no data.yaml names or classes.txt", None


def _yolo_line(line: str, where: str) -> tuple[int, float, float, float, float, bool]:
    """class, cx, cy, w, h (normalised) of one txt line; polygon lines give their enclosing box."""
    fields = line.split()
    if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
        raise EdgeopsError(
            f"{where}: {len(fields)} fields: a YOLO box line is `class cx cy w h` (5 numbers; a polygon "
            "is `class x1 y1 x2 y2 x3 y3 ...`): fix the line"
        )
    try:
        label_value = float(fields[0])
        values = [float(v) for v in fields[1:]]
    except ValueError:
        raise EdgeopsError(f"{where}: not a number in `{line.strip()[:60]}`: fix the line") from None
    if not all(math.isfinite(v) for v in [label_value, *values]):
        raise EdgeopsError(f"{where}: NaN or infinite value in `{line.strip()[:60]}`: fix the line")
    if label_value < 0 or label_value != int(label_value):
        raise EdgeopsError(f"{where}: class {fields[0]} is not a class index (0, 1, ...): fix the line")
    if max(values) > 1 + NORMALISED_SLACK:
        raise EdgeopsError(
            f"{where}: value {max(values):g} > 1: YOLO coordinates are normalised to 0..1 (these look like "
            "pixels): divide x and width by the image width, y and height by its height"
        )
    if len(values) == 4:
        cx, cy, w, h = values
        return int(label_value), cx, cy, w, h, False
    xs, ys = values[0::2], values[1::2]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return int(label_value), (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, True


def scan_yolo(root: Path) -> Dataset:
    skipped: Counter[str] = Counter()
    images = _by_stem(root / "images", _walk(root / "images", IMAGE_SUFFIXES, skipped))
    labels = _by_stem(root / "labels", _walk(root / "labels", frozenset({".txt"}), skipped))
    names, origin, names_file = _yolo_names(root, set(images))
    if names_file is not None and names_file.parts[0] == "labels":
        labels.pop(
            names_file.relative_to("labels").with_suffix("").as_posix(), None
        )  # LabelImg's classes.txt
    lonely = sorted(printable(root / "labels" / labels[k]) for k in labels if k not in images)
    if lonely:
        raise EdgeopsError(
            f"{len(lonely)} label file(s) without an image in {printable(root / 'images')}: {_listed(lonely)}: "
            "add the images (same relative path and name) or remove the label files"
        )
    keys = sorted(images)
    sizes = _image_sizes(root, [Path("images") / images[k] for k in keys])
    parsed: dict[str, list[tuple[int, float, float, float, float, bool, str]]] = {}
    polygons = 0
    largest = -1
    for key in keys:
        rows = parsed.setdefault(key, [])
        if key not in labels:
            continue
        path = root / "labels" / labels[key]
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise EdgeopsError(f"{printable(path)} cannot be read as UTF-8 text ({e}): fix it") from None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{printable(path)} line {number}"
            label, cx, cy, w, h, polygon = _yolo_line(line, where)
            polygons += polygon
            largest = max(largest, label)
            if names is not None and label >= len(names):
                raise EdgeopsError(
                    f"{where}: class {label} is not in {origin.removeprefix('from ')} ({len(names)} classes, "
                    f"0-{len(names) - 1}): fix the index or add the name"
                )
            rows.append((label, cx, cy, w, h, polygon, where))
    classes = names if names is not None else [str(i) for i in range(max(largest + 1, 1))]

    items = []
    clipped = 0
    for key in keys:
        relative = Path("images") / images[key]
        width, height = sizes[relative]
        boxes = _Boxes((width, height))
        for label, cx, cy, w, h, _, where in parsed[key]:
            boxes.add(
                (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height,
                label, False, where,
            )  # fmt: skip
        clipped += boxes.clipped
        items.append(boxes.sample(relative))
    files = [item.path for item in items] + [Path("labels") / labels[k] for k in sorted(labels)]
    if names_file is not None:
        files.append(names_file)
    extra = []
    if polygons:
        extra.append(
            f"{polygons} polygon label(s) (Ultralytics segment format) read as their enclosing boxes"
        )
    pooled = sorted({p.parts[0] for p in images.values() if len(p.parts) > 1} & SPLIT_FOLDER_NAMES)
    if pooled:
        extra.append(f"the dataset's own {', '.join(pooled)} folders are pooled and split again by seed")
    return _dataset(
        root, YOLO, classes, origin, items, sorted(files), _ignored_notes(skipped, []), clipped, extra
    )


# --------------------------------------------------------------------------------------------- VOC
def _text(element: ET.Element, tag: str) -> str | None:
    found = element.find(tag)
    return found.text.strip() if found is not None and found.text is not None else None


def _voc_number(element: ET.Element, tag: str, where: str) -> float:
    value = _text(element, tag)
    try:
        return float(value) if value is not None else math.nan
    except ValueError:
        raise EdgeopsError(f"{where}: <{tag}> is {value!r}, not a number: fix it") from None


def scan_voc(root: Path) -> Dataset:
    skipped: Counter[str] = Counter()
    images = _by_stem(root / "JPEGImages", _walk(root / "JPEGImages", IMAGE_SUFFIXES, skipped))
    by_name = {p.as_posix(): p for p in images.values()}
    xmls = _walk(root / "Annotations", frozenset({".xml"}), skipped)
    parsed = []
    for relative in xmls:
        path = root / "Annotations" / relative
        try:
            tree = ET.parse(path).getroot()
        except ET.ParseError as e:
            raise EdgeopsError(f"{printable(path)} is not valid XML ({e}): fix or delete it") from None
        key = relative.with_suffix("").as_posix()
        filename = _text(tree, "filename")
        image = images.get(key) or (by_name.get(filename) if filename else None)
        if image is None:
            said = f" (<filename> says {filename})" if filename else ""
            raise EdgeopsError(
                f"{printable(path)}: no image {key}.* in {printable(root / 'JPEGImages')}{said}: "
                "add the image or delete the annotation"
            )
        parsed.append((relative, image, tree))
    annotated = {image for _, image, _ in parsed}
    sizes = _image_sizes(root, [Path("JPEGImages") / image for _, image, _ in parsed])

    names: set[str] = set()
    for relative, _, tree in parsed:
        for n, obj in enumerate(tree.iter("object"), 1):
            name = _text(obj, "name")
            if not name:
                raise EdgeopsError(
                    f"{printable(root / 'Annotations' / relative)}: object {n} has no <name>: name its class"
                )
            names.add(name)
    classes = sorted(names)
    index = {name: i for i, name in enumerate(classes)}
    items = []
    clipped = 0
    for relative, image, tree in parsed:
        xml_name = printable(root / "Annotations" / relative)
        size = sizes[Path("JPEGImages") / image]
        size_tag = tree.find("size")
        if size_tag is not None:
            declared = (_voc_number(size_tag, "width", xml_name), _voc_number(size_tag, "height", xml_name))
            _check_declared_size(declared, size, xml_name)
        boxes = _Boxes(size)
        for n, obj in enumerate(tree.iter("object"), 1):
            where = f"{xml_name} object {n}"
            box = obj.find("bndbox")
            if box is None:
                raise EdgeopsError(f"{where}: no <bndbox>: add xmin, ymin, xmax, ymax or delete the object")
            xmin, ymin, xmax, ymax = (_voc_number(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
            difficult = _text(obj, "difficult") in ("1", "true", "True")
            # VOC pixels are 1-based and inclusive: xmin=1, xmax=W covers the image, i.e. 0..W
            boxes.add(xmin - 1, ymin - 1, xmax, ymax, index[_text(obj, "name") or ""], difficult, where)
        clipped += boxes.clipped
        items.append(boxes.sample(Path("JPEGImages") / image))
    unannotated = sum(1 for image in images.values() if image not in annotated)
    extra = [f"{unannotated} image(s) in JPEGImages/ without an xml in Annotations/"] if unannotated else []
    files = sorted([item.path for item in items] + [Path("Annotations") / r for r, _, _ in parsed])
    origin = "the <name>s in Annotations/, sorted"
    return _dataset(
        root, VOC, classes or ["object"], origin, items, files, _ignored_notes(skipped, extra), clipped, []
    )


# -------------------------------------------------------------------------------------------- scan
def scan_detection(root: Path) -> Dataset:
    """List, read and validate a detection dataset; one EdgeopsError line naming the file if broken."""
    root = Path(root)
    if not root.is_dir():
        raise EdgeopsError(f"dataset folder {root} does not exist: set data.path in params.yaml or --data")
    broken = [printable(p) for p in root.rglob("*") if p.is_symlink() and not p.exists()]
    if broken:
        raise EdgeopsError(
            f"{len(broken)} broken symlink(s) in the dataset: {_listed(broken)}: fix or delete them"
        )
    layout = detect_layout(root)
    if layout == COCO:
        return scan_coco(root)
    if layout == YOLO:
        return scan_yolo(root)
    if layout == VOC:
        return scan_voc(root)
    raise EdgeopsError(
        f"{root} is not a detection dataset: expected COCO images/ + annotations.json, YOLO images/ + "
        "labels/ (one txt per image), or Pascal VOC Annotations/ + JPEGImages/"
    )


# ------------------------------------------------------------------------------------------- split
def _targets(n: int, fractions: dict[str, float]) -> dict[str, int]:
    n_val = max(1, round(n * fractions.get("val", 0.0)))
    n_test = max(1, round(n * fractions.get("test", 0.0)))
    while n - n_val - n_test < 1:  # fractions that leave nothing to train on: shrink the larger
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def split_detection(dataset: Dataset, fractions: dict[str, float], seed: int) -> dict[str, list[int]]:
    """Seeded train/val/test indices into dataset.items; every image in exactly one split.

    Sizes follow the fractions (val and test get at least one image each). Classes are placed rarest
    first: each class gets an image in train, then val, then test, as far as its images allow (a class in
    one image is only in train; in two, train and val). The rest are spread over the splits in proportion,
    stratum by stratum (an image's stratum is its rarest class; negatives are their own), so each split
    gets its share of every stratum and of the negatives."""
    items: list[BoxSample] = dataset.items
    n = len(items)
    if n < 3:
        raise EdgeopsError(f"{dataset.root} holds {n} image(s): a train/val/test split needs at least 3")
    rng = np.random.default_rng(seed)
    present = [sorted({int(c) for c in item.classes}) for item in items]
    images_of: dict[int, list[int]] = {}
    for i, cs in enumerate(present):
        for c in cs:
            images_of.setdefault(c, []).append(i)
    rarity = {c: (len(ix), c) for c, ix in images_of.items()}  # rarest first, ties by class index

    targets = _targets(n, fractions)
    where: dict[int, str] = {}
    members: dict[str, list[int]] = {s: [] for s in SPLITS}
    covered: dict[str, set[int]] = {s: set() for s in SPLITS}

    def place(i: int, split: str) -> None:
        where[i] = split
        members[split].append(i)
        covered[split].update(present[i])

    for c in sorted(images_of, key=rarity.__getitem__):
        candidates = [images_of[c][j] for j in rng.permutation(len(images_of[c]))]
        for split in SPLITS:
            if c in covered[split]:
                continue
            free = [i for i in candidates if i not in where]
            if not free:
                break
            place(free[0], split)

    # the rest, stratum by stratum, each split taking the next image while furthest below its target
    strata: dict[tuple[int, int], list[int]] = {}
    for i in range(n):
        if i not in where:
            key = min((rarity[c] for c in present[i]), default=(-1, -1))  # negatives: their own stratum
            strata.setdefault(key, []).append(i)
    capacity = {s: max(0, targets[s] - len(members[s])) for s in SPLITS}
    room = dict(capacity)
    for key in sorted(strata):
        group = [strata[key][j] for j in rng.permutation(len(strata[key]))]
        for i in group:
            split = max((s for s in SPLITS if room[s] > 0), key=lambda s: room[s] / capacity[s])
            room[split] -= 1
            place(i, split)

    for split in ("val", "test"):  # class placement overfilled the others: keep val and test non-empty
        if not members[split]:
            donor = max(SPLITS, key=lambda s: len(members[s]))
            counts = Counter(c for i in members[donor] for c in present[i])
            spare = [i for i in members[donor] if all(counts[c] > 1 for c in present[i])]
            moved = spare[-1] if spare else members[donor][-1]  # one whose classes stay in the donor
            members[donor].remove(moved)
            members[split].append(moved)
    return {s: sorted(members[s]) for s in SPLITS}
