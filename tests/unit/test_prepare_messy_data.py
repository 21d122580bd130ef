"""The prepare stage on messy user data: every bad file named at once, ignored files logged."""

from pathlib import Path

import pytest

from edgeops.errors import EdgeopsError
from edgeops.pipeline.prepare import prepare_dataset
from tests.helpers import classification_params, write_image_folder


def test_bad_files_in_every_split_are_all_named_in_one_error(tmp_path):
    data = write_image_folder(tmp_path / "data", {"a": 20, "b": 20})
    broken = [data / c / f"{i:03d}.png" for c in ("a", "b") for i in range(0, 20, 2)]  # half of them
    for path in broken:
        path.write_bytes(b"not a png")
    out = tmp_path / "prepared"
    with pytest.raises(EdgeopsError) as e:
        prepare_dataset(classification_params(data, image_size=16), out, log=lambda _: None)
    assert str(e.value).startswith(f"{len(broken)} unreadable file(s): ")  # train, val and test alike
    assert not out.exists() and not Path(str(out) + ".tmp").exists()


def test_ignored_files_are_logged_and_training_data_is_clean(tmp_path):
    data = write_image_folder(tmp_path / "data", {"a": 8, "b": 8})
    (data / "a" / "._000.png").write_bytes(b"\x00\x05\x16\x07")
    (data / "b" / "notes.txt").write_text("x")
    lines: list[str] = []
    manifest = prepare_dataset(classification_params(data, image_size=16), tmp_path / "p", lines.append)
    ignored = [line for line in lines if line.startswith("prepare: ignored ")]
    assert ignored == ["prepare: ignored 1 hidden file(s); 1 non-image file(s): .txt (1)"]
    listed = [p for split in manifest["splits"].values() for p, _ in split]
    assert len(listed) == 16 and not any("._" in p or p.endswith(".txt") for p in listed)
