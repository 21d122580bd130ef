from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeops.config import SplitConfig
from edgeops.errors import EdgeopsError
from edgeops.images import load_rgb
from edgeops.pipeline.prepare import fingerprint, load_split, prepare_dataset, read_manifest
from edgeops.vision import get_task
from edgeops.vision.classification.dataset import scan_image_folder
from edgeops.vision.classification.split import stratified_split
from tests.helpers import classification_params, decode_images, write_image_folder

TASK = get_task("classification")
FRACTIONS = SplitConfig().model_dump()


def test_missing_folder(tmp_path):
    with pytest.raises(EdgeopsError, match="does not exist"):
        scan_image_folder(tmp_path / "nope")


def test_path_is_a_file(tmp_path):
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(EdgeopsError, match="not a folder"):
        scan_image_folder(tmp_path / "f.png")


def test_empty_folder(tmp_path):
    with pytest.raises(EdgeopsError, match="no class sub-folders"):
        scan_image_folder(tmp_path)


def test_class_folders_without_images(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("hi")
    with pytest.raises(EdgeopsError, match="no images"):
        scan_image_folder(tmp_path)


def test_single_class(tmp_path):
    write_image_folder(tmp_path, {"only": 5})
    with pytest.raises(EdgeopsError, match="at least two class"):
        scan_image_folder(tmp_path)


def test_stray_files_and_empty_class_dirs_are_ignored(image_folder):
    (image_folder / "cat" / "README.txt").write_text("not an image")
    (image_folder / ".DS_Store").write_text("x")
    (image_folder / "empty_class").mkdir()
    folder = scan_image_folder(image_folder)
    assert folder.classes == ["cat", "dog", "eel"]
    assert len(folder.samples) == 30


def test_corrupt_images_are_named_by_path(image_folder):
    (image_folder / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (image_folder / "eel" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    with pytest.raises(EdgeopsError) as e:
        decode_images(image_folder, 8)
    assert "2 unreadable file(s)" in str(e.value)
    assert "broken.png" in str(e.value) and "truncated.jpg" in str(e.value)


def test_gray_rgb_mixed_sizes_and_formats_become_rgb_at_size(tmp_path):
    write_image_folder(tmp_path, {"a": 3}, size=40, mode="L", fmt="jpg")
    write_image_folder(tmp_path, {"b": 3}, size=13, mode="RGB", fmt="png")
    Image.new("RGBA", (20, 30), (10, 20, 30, 128)).save(tmp_path / "b" / "alpha.png")
    Image.new("P", (9, 9)).save(tmp_path / "a" / "palette.bmp")
    images = decode_images(tmp_path, 24)
    assert images.shape == (8, 24, 24, 3) and images.dtype == np.uint8
    gray = load_rgb(tmp_path / "a" / "000.jpg", 24)
    assert np.array_equal(gray[..., 0], gray[..., 1])  # gray replicated into R, G and B


def test_load_rgb_matches_pil_bilinear(tmp_path):
    write_image_folder(tmp_path, {"a": 1}, size=50)
    path = tmp_path / "a" / "000.png"
    expected = np.asarray(Image.open(path).convert("RGB").resize((20, 10), Image.BILINEAR))
    assert np.array_equal(load_rgb(path, (20, 10)), expected)


def test_split_is_stratified_seeded_and_disjoint(tmp_path):
    write_image_folder(tmp_path, {"a": 20, "b": 7, "c": 40})
    folder = scan_image_folder(tmp_path)
    labels = [s.label for s in folder.samples]
    split = stratified_split(labels, folder.classes, FRACTIONS, seed=1, min_per_class=5)
    again = stratified_split(labels, folder.classes, FRACTIONS, seed=1, min_per_class=5)
    other = stratified_split(labels, folder.classes, FRACTIONS, seed=2, min_per_class=5)
    # the task's split (what prepare calls) is this split
    assert TASK.split(TASK.scan(tmp_path, 5), FRACTIONS, seed=1, min_per_class=5) == split
    assert split == again and split != other
    all_ix = split["train"] + split["val"] + split["test"]
    assert sorted(all_ix) == list(range(len(folder.samples)))
    for name in ("train", "val", "test"):
        labels = {folder.samples[i].label for i in split[name]}
        assert labels == {0, 1, 2}, f"{name} misses a class"
    c_train = sum(1 for i in split["train"] if folder.samples[i].label == 2)
    assert c_train == 28  # 70% of 40


def test_class_with_too_few_images(tmp_path):
    write_image_folder(tmp_path, {"big": 10, "tiny": 2})
    folder = scan_image_folder(tmp_path)
    labels = [s.label for s in folder.samples]
    with pytest.raises(EdgeopsError, match=r"tiny \(2\)"):
        stratified_split(labels, folder.classes, FRACTIONS, seed=0, min_per_class=5)


def test_fingerprint_changes_with_content(image_folder):
    before = fingerprint(TASK.scan(image_folder, 5))
    assert before == fingerprint(TASK.scan(image_folder, 5))
    Image.new("RGB", (16, 16), (1, 2, 3)).save(image_folder / "cat" / "000.png")
    assert fingerprint(TASK.scan(image_folder, 5)) != before


def test_prepare_writes_manifest_and_arrays(image_folder, tmp_path):
    out = tmp_path / "prepared"
    params = classification_params(image_folder, image_size=16, min_images_per_class=5)
    manifest = prepare_dataset(params, out_dir=out, log=lambda _: None)
    assert read_manifest(out) == manifest
    assert manifest["classes"] == ["cat", "dog", "eel"]
    assert sum(manifest["counts"].values()) == 30
    test = load_split(out, "test")
    assert test.images.shape[1:] == (16, 16, 3) and len(test.targets) == manifest["counts"]["test"]
    assert test.targets.tolist() == [label for _, label in manifest["splits"]["test"]]


def test_prepare_failure_leaves_previous_output_untouched(image_folder, tmp_path):
    out = tmp_path / "prepared"
    params = classification_params(image_folder, image_size=16)
    prepare_dataset(params, out_dir=out, log=lambda _: None)
    before = (out / "manifest.json").read_text()
    (image_folder / "cat" / "zzz.png").write_bytes(b"garbage")
    with pytest.raises(EdgeopsError, match="zzz.png"):
        prepare_dataset(params, out_dir=out, log=lambda _: None)
    assert (out / "manifest.json").read_text() == before
    assert not Path(str(out) + ".tmp").exists()
