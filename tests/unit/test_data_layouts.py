"""Dataset layouts seen in the wild: hidden and stray files, nesting, splits, symlinks, odd names."""

import os

import pytest

from edgeops.errors import EdgeopsError
from edgeops.images import printable
from edgeops.vision.classification.dataset import scan_image_folder
from tests.helpers import decode_images, write_image_folder


def test_macos_metadata_and_hidden_folders_are_not_images(image_folder):
    (image_folder / "cat" / "._000.png").write_bytes(b"\x00\x05\x16\x07\x00\x02Mac OS X")  # AppleDouble
    (image_folder / "dog" / ".ipynb_checkpoints").mkdir()
    write_image_folder(image_folder / "dog" / ".ipynb_checkpoints", {"x": 2})
    write_image_folder(image_folder, {".trash": 4})
    folder = scan_image_folder(image_folder)
    assert folder.classes == ["cat", "dog", "eel"]
    assert len(folder.samples) == 30
    assert not any(part.startswith(".") for s in folder.samples for part in s.path.parts)
    assert len(decode_images(image_folder, 8)) == 30  # nothing unreadable left in
    assert any(".trash" in note for note in folder.ignored)
    assert any("3 hidden file(s)" in note for note in folder.ignored)


def test_ignored_files_are_summarised_by_extension(image_folder):
    (image_folder / "cat" / "notes.txt").write_text("x")
    (image_folder / "dog" / "labels.csv").write_text("x")
    (image_folder / "dog" / "more.txt").write_text("x")
    (image_folder / "eel" / "photo.webp").write_bytes(b"RIFF")
    (image_folder / "empty").mkdir()
    folder = scan_image_folder(image_folder)
    assert "4 non-image file(s): .csv (1), .txt (2), .webp (1)" in folder.ignored
    assert "folder(s) without images empty" in folder.ignored


def test_clean_folder_has_nothing_ignored(image_folder):
    assert scan_image_folder(image_folder).ignored == ()


def test_nested_images_belong_to_the_top_level_class(tmp_path):
    write_image_folder(tmp_path, {"a": 3, "b": 5})
    write_image_folder(tmp_path / "a" / "deeper" / "deepest", {"x": 2})
    folder = scan_image_folder(tmp_path)
    assert folder.classes == ["a", "b"]
    labels = {s.path.as_posix(): s.label for s in folder.samples}
    assert labels["a/deeper/deepest/x/000.png"] == 0 and len(labels) == 10


def test_symlinks_to_images_and_folders_are_followed_without_looping(tmp_path):
    write_image_folder(tmp_path, {"a": 5, "b": 5})
    os.symlink(tmp_path / "a" / "000.png", tmp_path / "b" / "link.png")
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")  # a folder loop must not recurse forever
    folder = scan_image_folder(tmp_path)
    paths = sorted(s.path.as_posix() for s in folder.samples)
    assert "b/link.png" in paths and len(paths) == 11


@pytest.mark.parametrize("where", ["b/dangling.png", ".cache/dangling", "notes.txt"])
def test_a_broken_symlink_anywhere_is_refused_by_path(tmp_path, where):
    write_image_folder(tmp_path, {"a": 5, "b": 5})
    (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(tmp_path / "nowhere.png", tmp_path / where)
    with pytest.raises(EdgeopsError, match="1 broken symlink") as e:
        scan_image_folder(tmp_path)
    assert str(tmp_path / where) in str(e.value)


def test_images_without_class_folders_say_so(tmp_path):
    write_image_folder(tmp_path, {"x": 4})
    for p in (tmp_path / "x").iterdir():
        p.rename(tmp_path / p.name)
    (tmp_path / "x").rmdir()
    with pytest.raises(EdgeopsError, match="holds 4 image.s. but no class sub-folders"):
        scan_image_folder(tmp_path)


@pytest.mark.parametrize("splits", [("train", "val", "test"), ("Training", "Validation")])
def test_a_dataset_already_split_is_refused(tmp_path, splits):
    for split in splits:
        write_image_folder(tmp_path / split, {"cat": 3, "dog": 3})
    with pytest.raises(EdgeopsError, match="looks already split") as e:
        scan_image_folder(tmp_path)
    assert str(tmp_path / splits[0]) in str(e.value)


def test_a_real_class_named_like_a_split_is_fine(tmp_path):
    write_image_folder(tmp_path, {"train": 3, "bus": 3})
    assert scan_image_folder(tmp_path).classes == ["bus", "train"]


def test_unicode_and_spaces_in_class_names(tmp_path):
    names = ["class one", "ünïcødé 猫", "with,comma 'q'"]
    write_image_folder(tmp_path, dict.fromkeys(names, 3))
    assert scan_image_folder(tmp_path).classes == sorted(names)


def test_names_that_are_not_utf8_are_refused_printably(tmp_path):
    write_image_folder(tmp_path, {"a": 3, "b": 3})
    raw = os.path.join(os.fsencode(tmp_path / "a"), b"caf\xe9.png").decode("utf-8", "surrogateescape")
    os.rename(tmp_path / "a" / "000.png", raw)
    with pytest.raises(EdgeopsError, match="not valid UTF-8") as e:
        scan_image_folder(tmp_path)
    message = str(e.value)
    assert "caf\\xe9.png" in message
    message.encode("utf-8")  # printable: no lone surrogates left
    assert printable(raw).endswith("a/caf\\xe9.png")
