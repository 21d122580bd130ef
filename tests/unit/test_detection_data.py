"""Detection datasets: COCO, YOLO and Pascal VOC read to the same boxes, and bad input named in one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeops.errors import EdgeopsError
from edgeops.vision.detection.dataset import (
    COCO,
    VOC,
    YOLO,
    BoxSample,
    detect_layout,
    scan_detection,
    split_detection,
)

NAMES = ["cat", "dog", "eel"]
COCO_IDS = [3, 7, 12]  # sparse category ids: cat=3, dog=7, eel=12
# (stem, (width, height), [(x0, y0, x1, y1, class index)]) in pixels; img05 is a negative
TRUTH: list[tuple[str, tuple[int, int], list[tuple[int, int, int, int, int]]]] = [
    ("img00", (40, 30), [(2, 3, 20, 15, 0)]),
    ("img01", (40, 30), [(10, 5, 30, 25, 1), (0, 0, 8, 6, 0)]),
    ("img02", (32, 32), [(4, 4, 28, 28, 2)]),
    ("img03", (40, 30), [(20, 10, 40, 30, 0)]),
    ("img04", (40, 30), [(1, 1, 5, 5, 1), (6, 6, 12, 12, 2)]),
    ("img05", (40, 30), []),
    ("img06", (48, 24), [(8, 2, 24, 22, 0)]),
    ("img07", (40, 30), [(12, 6, 36, 24, 1)]),
    ("img08", (40, 30), [(0, 10, 16, 30, 2)]),
]
Truth = list[tuple[str, tuple[int, int], list[tuple[int, int, int, int, int]]]]


def _image(path: Path, size: tuple[int, int], index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(index).integers(0, 255, (size[1], size[0], 3)).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def _suffix(index: int) -> str:
    return ".jpg" if index % 2 else ".png"


def write_coco(root: Path, truth: Truth = TRUTH, crowd: tuple[int, ...] = ()) -> Path:
    images, annotations = [], []
    for i, (stem, size, boxes) in enumerate(truth):
        name = f"{'sub/' if i == 3 else ''}{stem}{_suffix(i)}"  # file_name may hold a sub-folder
        _image(root / "images" / name, size, i)
        images.append({"id": 100 + i, "file_name": name, "width": size[0], "height": size[1]})
        for x0, y0, x1, y1, c in boxes:
            ann_id = len(annotations) + 1
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": 100 + i,
                    "category_id": COCO_IDS[c],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": int(ann_id in crowd),
                }
            )
    categories = [{"id": COCO_IDS[c], "name": NAMES[c]} for c in (2, 0, 1)]  # listed out of id order
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def write_yolo(root: Path, truth: Truth = TRUTH, names: str | None = "yaml", sub: str = "") -> Path:
    for i, (stem, (w, h), boxes) in enumerate(truth):
        _image(root / "images" / sub / f"{stem}{_suffix(i)}", (w, h), i)
        lines = [
            f"{c} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"
            for x0, y0, x1, y1, c in boxes
        ]
        if lines or i % 2:  # img05 has no txt at all; an empty txt is a negative as well (tested below)
            (root / "labels" / sub).mkdir(parents=True, exist_ok=True)
            (root / "labels" / sub / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
    if names == "yaml":
        (root / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames: {json.dumps(NAMES)}\n")
    elif names == "yaml-dict":
        (root / "data.yaml").write_text("names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES)))
    elif names == "classes.txt":
        (root / "classes.txt").write_text("\n".join(NAMES) + "\n")
    elif names == "labels/classes.txt":  # where LabelImg writes it
        (root / "labels" / "classes.txt").write_text("\n".join(NAMES) + "\n")
    return root


def write_voc(root: Path, truth: Truth = TRUTH, difficult: tuple[str, ...] = ()) -> Path:
    (root / "Annotations").mkdir(parents=True)
    for i, (stem, (w, h), boxes) in enumerate(truth):
        _image(root / "JPEGImages" / f"{stem}.jpg", (w, h), i)
        objects = "".join(
            f"<object><name>{NAMES[c]}</name><difficult>{int(stem in difficult)}</difficult>"
            f"<bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>"
            "</object>"
            for x0, y0, x1, y1, c in boxes
        )
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><folder>VOC</folder><filename>{stem}.jpg</filename>"
            f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>"
        )
    return root


def by_stem(items: list[BoxSample]) -> dict[str, BoxSample]:
    return {item.path.stem: item for item in items}


def assert_truth(items: list[BoxSample], truth: Truth = TRUTH) -> None:
    found = by_stem(items)
    assert sorted(found) == sorted(stem for stem, _, _ in truth)
    for stem, size, boxes in truth:
        item = found[stem]
        assert item.size == size, stem
        assert item.boxes.dtype == np.float32 and item.boxes.shape == (len(boxes), 4)
        assert item.classes.dtype == np.int64 and item.crowd.dtype == bool
        expected = np.array([b[:4] for b in boxes], np.float32).reshape(-1, 4)
        np.testing.assert_allclose(item.boxes, expected, atol=2e-3, err_msg=stem)
        assert item.classes.tolist() == [b[4] for b in boxes], stem


WRITERS: dict[str, Callable[[Path], Path]] = {
    "coco": write_coco,
    "yolo-data.yaml": write_yolo,
    "yolo-data.yaml-dict": lambda r: write_yolo(r, names="yaml-dict"),
    "yolo-classes.txt": lambda r: write_yolo(r, names="classes.txt"),
    "yolo-labels/classes.txt": lambda r: write_yolo(r, names="labels/classes.txt"),
    "yolo-ultralytics-subfolders": lambda r: write_yolo(r, sub="train"),
    "voc": write_voc,
}


# ----------------------------------------------------------------------------------- reading
@pytest.mark.parametrize("kind", list(WRITERS))
def test_every_format_reads_the_same_boxes_and_classes(tmp_path: Path, kind: str) -> None:
    root = WRITERS[kind](tmp_path / "d")
    dataset = scan_detection(root)
    assert dataset.classes == NAMES
    assert dataset.layout == {"coco": COCO, "voc": VOC}.get(kind, YOLO)
    assert_truth(dataset.items)
    assert not any(item.crowd.any() for item in dataset.items)
    assert "10 box(es) in 9 image(s)" in dataset.notes
    assert "1 image(s) without objects kept as negatives" in dataset.notes
    assert not any(note.startswith("clipped") for note in dataset.notes)  # exact boxes are not "clipped"
    for item in dataset.items:  # every image and annotation file is part of the fingerprint
        assert item.path in dataset.files and (root / item.path).is_file()


def test_coco_sparse_category_ids_sub_folders_crowd_and_files(tmp_path: Path) -> None:
    dataset = scan_detection(write_coco(tmp_path / "d", crowd=(2,)))
    assert dataset.classes == ["cat", "dog", "eel"]  # ids 3, 7, 12 -> 0, 1, 2 though listed 12, 3, 7
    assert any("in id order" in note for note in dataset.notes)
    items = by_stem(dataset.items)
    assert items["img03"].path == Path("images/sub/img03.jpg")
    assert items["img01"].crowd.tolist() == [True, False]  # annotation id 2 is the crowd one
    assert "1 crowd (iscrowd) box(es) kept, ignored in evaluation" in dataset.notes
    assert Path("annotations.json") in dataset.files and len(dataset.files) == 10


def test_coco_images_not_in_the_json_and_hidden_files_are_ignored(tmp_path: Path) -> None:
    root = write_coco(tmp_path / "d")
    _image(root / "images" / "extra.png", (10, 10), 1)
    (root / "images" / "._img00.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (root / "images" / ".DS_Store").write_bytes(b"junk")
    (root / "images" / "readme.md").write_text("hi")
    dataset = scan_detection(root)
    assert len(dataset.items) == 9
    assert "1 image(s) in images/ not listed in annotations.json" in dataset.ignored
    assert "2 hidden file(s)" in dataset.ignored
    assert "1 other file(s): .md (1)" in dataset.ignored


def test_yolo_without_names_uses_indices_and_empty_txt_is_a_negative(tmp_path: Path) -> None:
    root = write_yolo(tmp_path / "d", names=None)
    assert (root / "labels" / "img05.txt").read_text() == ""  # an empty txt (odd index)
    (root / "labels" / "img05.txt").unlink()
    (root / "labels" / "img07.txt").write_text("\n\n")  # blank lines only: a negative too
    dataset = scan_detection(root)
    assert dataset.classes == ["0", "1", "2"]
    assert any("named by index" in note for note in dataset.notes)
    items = by_stem(dataset.items)
    assert len(items["img05"].boxes) == 0 and len(items["img07"].boxes) == 0
    assert "2 image(s) without objects kept as negatives" in dataset.notes
    assert Path("labels/img07.txt") in dataset.files


def test_yolo_ultralytics_folders_are_pooled_with_a_note(tmp_path: Path) -> None:
    dataset = scan_detection(write_yolo(tmp_path / "d", sub="train"))
    assert by_stem(dataset.items)["img00"].path == Path("images/train/img00.png")
    assert any("own train folders are pooled" in note for note in dataset.notes)
    assert Path("data.yaml") in dataset.files and Path("labels/train/img00.txt") in dataset.files


def test_yolo_polygon_lines_become_their_enclosing_box(tmp_path: Path) -> None:
    root = write_yolo(tmp_path / "d")
    (root / "labels" / "img00.txt").write_text("2 0.1 0.2 0.5 0.1 0.4 0.6\n")  # a triangle of class eel
    dataset = scan_detection(root)
    item = by_stem(dataset.items)["img00"]
    np.testing.assert_allclose(item.boxes, [[4, 3, 20, 18]], atol=1e-4)  # x 0.1..0.5 of 40, y 0.1..0.6 of 30
    assert item.classes.tolist() == [2]
    assert any("1 polygon label(s)" in note for note in dataset.notes)


def test_voc_difficult_is_crowd_and_segmentation_folder_does_not_matter(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", difficult=("img04",))
    (root / "SegmentationClass").mkdir()
    _image(root / "JPEGImages" / "unannotated.jpg", (20, 20), 3)
    assert detect_layout(root) == VOC
    dataset = scan_detection(root)
    assert by_stem(dataset.items)["img04"].crowd.tolist() == [True, True]
    assert "2 difficult box(es) kept, ignored in evaluation" in dataset.notes
    assert "1 image(s) in JPEGImages/ without an xml in Annotations/" in dataset.ignored
    assert Path("Annotations/img00.xml") in dataset.files


def test_detect_layout(tmp_path: Path) -> None:
    assert detect_layout(write_coco(tmp_path / "c")) == "COCO (images/ + annotations.json)"
    assert detect_layout(write_yolo(tmp_path / "y")) == "YOLO (images/ + labels/)"
    assert detect_layout(write_voc(tmp_path / "v")) == "Pascal VOC (Annotations/ + JPEGImages/)"
    (tmp_path / "e" / "images").mkdir(parents=True)
    assert detect_layout(tmp_path / "e") is None
    with pytest.raises(EdgeopsError, match="is not a detection dataset"):
        scan_detection(tmp_path / "e")


@pytest.mark.parametrize("kind", ["coco", "yolo", "voc"])
def test_boxes_sticking_out_are_clipped_and_counted(tmp_path: Path, kind: str) -> None:
    truth = list(TRUTH)
    # img00 40x30: one box sticks out left and bottom, one right; both are clipped to the image
    truth[0] = ("img00", (40, 30), [(-6, 20, 10, 36, 0), (30, 2, 50, 12, 1)])
    writer = {"coco": write_coco, "yolo": write_yolo, "voc": write_voc}[kind]
    dataset = scan_detection(writer(tmp_path / "d", truth))
    item = by_stem(dataset.items)["img00"]
    np.testing.assert_allclose(item.boxes, [[0, 20, 10, 30], [30, 2, 40, 12]], atol=2e-3)
    assert "clipped 2 box(es) that stuck out of their image" in dataset.notes


# ------------------------------------------------------------------------------- bad input
def _json_edit(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        data = json.loads((root / "annotations.json").read_text())
        edit(data)
        (root / "annotations.json").write_text(json.dumps(data))

    return apply


def _set_bbox(ann: int, bbox: list[float]) -> Callable[[Path], None]:
    return _json_edit(lambda d: d["annotations"][ann].__setitem__("bbox", bbox))


COCO_BREAKAGES = {
    "box-outside": (_set_bbox(0, [45, 3, 10, 10]), r"annotations\.json: annotation id 1 \(img00\.png\).*entirely outside the 40x30"),
    "zero-width": (_set_bbox(1, [10, 5, 0, 20]), r"annotations\.json: annotation id 2 .*zero or negative width"),
    "negative-height": (_set_bbox(1, [10, 5, 3, -2]), r"annotation id 2 .*zero or negative width or height"),
    "nan-bbox": (_set_bbox(0, [1, "x", 3, 4]), r"annotation id 1 .*not a number"),
    "no-bbox": (_json_edit(lambda d: d["annotations"][0].pop("bbox")), r"annotation id 1 needs a 'bbox'"),
    "unknown-category": (
        _json_edit(lambda d: d["annotations"][3].__setitem__("category_id", 5)),
        r"annotations\.json: annotation id 4 has category_id 5, which is not in 'categories' \(ids 3, 7, 12\)",
    ),
    "annotation-for-missing-image": (
        _json_edit(lambda d: d["annotations"][2].__setitem__("image_id", 999)),
        r"annotations\.json: annotation id 3 refers to image_id 999, which is not in 'images'",
    ),
    "listed-image-missing-on-disk": (
        lambda r: (r / "images" / "img02.png").unlink(),
        r"1 image\(s\) listed in .*annotations\.json are missing from .*images: img02\.png",
    ),
    "not-json": (
        lambda r: (r / "annotations.json").write_text('{"images": [,]}'),
        r"annotations\.json is not valid JSON \(.*line 1 column",
    ),
    "no-images-key": (_json_edit(lambda d: d.pop("images")), r"annotations\.json lacks the 'images' key"),
    "no-annotations-key": (_json_edit(lambda d: d.pop("annotations")), r"lacks the 'annotations' key"),
    "no-categories-key": (_json_edit(lambda d: d.pop("categories")), r"lacks the 'categories' key"),
    "corrupt-image": (
        lambda r: (r / "images" / "img04.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage"),
        r"1 unreadable file\(s\): .*images/img04\.png \(",
    ),
    "empty-image": (lambda r: (r / "images" / "img06.png").write_bytes(b""), r"img06\.png \(empty file"),
    "no-boxes": (
        _json_edit(lambda d: d.__setitem__("annotations", [])),
        r"has images but no boxes: 9 image\(s\)",
    ),
    "size-mismatch": (
        _json_edit(lambda d: d["images"][2].update(width=64, height=64)),
        r"annotations\.json: image img02\.png: the annotation says the image is 64x64 but it is stored 32x32",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(COCO_BREAKAGES))
def test_bad_coco_is_one_line_naming_the_file(tmp_path: Path, name: str) -> None:
    breakage, message = COCO_BREAKAGES[name]
    root = write_coco(tmp_path / "d")
    breakage(root)
    with pytest.raises(EdgeopsError, match=message) as error:
        scan_detection(root)
    assert "\n" not in str(error.value)


def _label(stem: str, text: str) -> Callable[[Path], None]:
    return lambda r: (r / "labels" / f"{stem}.txt").write_text(text)


YOLO_BREAKAGES = {
    "four-fields": (_label("img02", "0 0.5 0.5 0.2\n"), r"labels/img02\.txt line 1: 4 fields"),
    "six-fields": (_label("img02", "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2 0.9\n"), r"img02\.txt line 2: 6 fields"),
    "not-a-number": (_label("img03", "0 0.5 abc 0.2 0.2\n"), r"labels/img03\.txt line 1: not a number"),
    "nan": (_label("img03", "\n0 0.5 nan 0.2 0.2\n"), r"labels/img03\.txt line 2: NaN or infinite"),
    "class-not-an-index": (_label("img03", "1.5 0.5 0.5 0.2 0.2\n"), r"img03\.txt line 1: class 1\.5 is not"),
    "unknown-class": (
        _label("img04", "0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n"),
        r"labels/img04\.txt line 2: class 3 is not in data\.yaml \(3 classes, 0-2\)",
    ),
    "pixels-not-normalised": (_label("img06", "0 24 12 16 20\n"), r"img06\.txt line 1: value 24 > 1: .*normalised"),
    "zero-width": (_label("img06", "0 0.5 0.5 0 0.2\n"), r"img06\.txt line 1: the box has zero or negative width"),
    "box-outside": (_label("img06", "0 1.009 0.5 0.01 0.2\n"), r"img06\.txt line 1: .*entirely outside the 48x24"),
    "txt-without-image": (
        _label("ghost", "0 0.5 0.5 0.2 0.2\n"),
        r"1 label file\(s\) without an image in .*images: .*labels/ghost\.txt",
    ),
    "corrupt-image": (
        lambda r: (r / "images" / "img07.jpg").write_bytes(b"\xff\xd8 not really"),
        r"unreadable file\(s\): .*images/img07\.jpg \(",
    ),
    "two-images-one-name": (
        lambda r: _image(r / "images" / "img00.jpg", (8, 8), 0),
        r"images/img00\.jpg and .*images/img00\.png have the same name",
    ),
    "bad-yaml": (lambda r: (r / "data.yaml").write_text("names: [a, b\n"), r"data\.yaml is not valid YAML"),
    "yaml-dict-gap": (lambda r: (r / "data.yaml").write_text("names: {0: a, 2: c}\n"), r"data\.yaml: names has no name for class\(es\) 1"),
    "no-boxes": (
        lambda r: [p.write_text("") for p in (r / "labels").glob("*.txt")],
        r"has images but no boxes",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(YOLO_BREAKAGES))
def test_bad_yolo_is_one_line_naming_the_file(tmp_path: Path, name: str) -> None:
    breakage, message = YOLO_BREAKAGES[name]
    root = write_yolo(tmp_path / "d")
    breakage(root)
    with pytest.raises(EdgeopsError, match=message) as error:
        scan_detection(root)
    assert "\n" not in str(error.value)


def _xml(stem: str, edit: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "Annotations" / f"{stem}.xml"
        path.write_text(edit(path.read_text()))

    return apply


VOC_BREAKAGES = {
    "not-xml": (_xml("img01", lambda t: t.replace("</annotation>", "")), r"Annotations/img01\.xml is not valid XML"),
    "no-bndbox": (
        _xml("img01", lambda t: t.replace("<bndbox>", "<box>").replace("</bndbox>", "</box>")),
        r"Annotations/img01\.xml object 1: no <bndbox>",
    ),
    "box-outside": (
        _xml("img02", lambda t: t.replace("<xmin>5</xmin>", "<xmin>40</xmin>").replace("<xmax>28</xmax>", "<xmax>50</xmax>")),
        r"Annotations/img02\.xml object 1: the box \(39, 4, 50, 28\) lies entirely outside the 32x32 image",
    ),
    "not-a-number": (_xml("img02", lambda t: t.replace("<ymax>28</ymax>", "<ymax>big</ymax>")), r"img02\.xml object 1: <ymax> is 'big'"),
    "xml-without-image": (lambda r: (r / "JPEGImages" / "img03.jpg").unlink(), r"Annotations/img03\.xml: no image img03\.\*"),
    "no-name": (_xml("img04", lambda t: t.replace("<name>dog</name>", "")), r"img04\.xml: object 1 has no <name>"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(VOC_BREAKAGES))
def test_bad_voc_is_one_line_naming_the_file(tmp_path: Path, name: str) -> None:
    breakage, message = VOC_BREAKAGES[name]
    root = write_voc(tmp_path / "voc")
    breakage(root)
    with pytest.raises(EdgeopsError, match=message) as error:
        scan_detection(root)
    assert "\n" not in str(error.value)


def test_too_few_images(tmp_path: Path) -> None:
    with pytest.raises(EdgeopsError, match=r"holds 2 image\(s\): a train/val/test split needs at least 3"):
        scan_detection(write_coco(tmp_path / "d", TRUTH[:2]))


# ----------------------------------------------------------------------------------- split
def _many(count: int, rare: dict[int, int], seed: int = 0) -> Truth:
    """count images: class 0 in most, class c also in the first rare[c] images of its own, some negatives."""
    rng = np.random.default_rng(seed)
    truth: Truth = []
    owners = [c for c, n in rare.items() for _ in range(n)]
    for i in range(count):
        boxes = []
        if i % 5 != 4:  # every fifth image is a negative
            boxes.append((1, 1, 9, 9, 0))
        if i < len(owners):
            boxes.append((10, 10, 10 + int(rng.integers(2, 8)), 20, owners[i]))
        truth.append((f"i{i:03d}", (32, 32), boxes))
    return truth


def _classes_in(dataset: object, indices: list[int]) -> set[int]:
    return {int(c) for i in indices for c in dataset.items[i].classes}  # type: ignore[attr-defined]


FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def test_split_keeps_every_class_in_every_split_and_is_deterministic(tmp_path: Path) -> None:
    # class 1 in 3 images, class 2 in 4, class 3 in 6, class 4 in only 2, class 5 in 1; 60 images
    root = write_yolo(tmp_path / "d", _many(60, {1: 3, 2: 4, 3: 6, 4: 2, 5: 1}), names=None)
    dataset = scan_detection(root)
    assert dataset.classes == ["0", "1", "2", "3", "4", "5"]
    for seed in (0, 1, 2, 3):
        split = split_detection(dataset, FRACTIONS, seed)
        everything = split["train"] + split["val"] + split["test"]
        assert sorted(everything) == list(range(60))  # each image in exactly one split
        assert [len(split[s]) for s in ("train", "val", "test")] == [42, 9, 9]
        for name in ("train", "val", "test"):
            assert {0, 1, 2, 3} <= _classes_in(dataset, split[name]), (seed, name)
        assert {4, 5} <= _classes_in(dataset, split["train"])  # too few images for all three splits
        assert 4 in _classes_in(dataset, split["val"])  # two images: train and val
        negatives = [i for i in everything if not len(dataset.items[i].boxes)]
        assert all(any(i in split[s] for i in negatives) for s in ("train", "val", "test"))
        assert split_detection(dataset, FRACTIONS, seed) == split  # deterministic
    assert split_detection(dataset, FRACTIONS, 0) != split_detection(dataset, FRACTIONS, 1)


def test_split_of_three_images_gives_one_each(tmp_path: Path) -> None:
    dataset = scan_detection(write_coco(tmp_path / "d", TRUTH[:3]))
    split = split_detection(dataset, FRACTIONS, 7)
    assert sorted(len(ix) for ix in split.values()) == [1, 1, 1]
    assert sorted(split["train"] + split["val"] + split["test"]) == [0, 1, 2]
