"""Decoding the image files users have: odd modes, huge or tiny sizes, and broken files."""

import io

import numpy as np
import pytest
from PIL import Image

from edgeops.errors import EdgeopsError
from edgeops.images import JPEG_DRAFT_FACTOR, load_rgb, to_rgb
from tests.helpers import decode_images, write_image_folder


def _pil_reference(path, size):
    return np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1"])
def test_modes_convert_like_pil(tmp_path, mode):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8), "RGB")
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    rgb.convert(mode).save(path)
    out = load_rgb(path, 12)
    assert out.shape == (12, 12, 3) and out.dtype == np.uint8
    assert np.array_equal(out, _pil_reference(path, 12))


def test_16bit_gray_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    out = load_rgb(tmp_path / "deep.png", 64)
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.abs(out[..., 0].astype(int) - expected).max() <= 1  # bilinear at 1:1 keeps values
    assert np.array_equal(out[..., 0], out[..., 2])
    assert (out == 255).mean() < 0.05  # PIL's plain convert("RGB") makes ~99% of it 255


def test_16bit_gray_holding_8bit_values_converts_like_pil(tmp_path):
    gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    gray.convert("I;16").save(tmp_path / "low.png")
    assert np.array_equal(load_rgb(tmp_path / "low.png", 16), _pil_reference(tmp_path / "low.png", 16))


def test_to_rgb_leaves_8bit_images_to_pil():
    img = Image.new("L", (3, 3), 77)
    assert np.array_equal(np.asarray(to_rgb(img)), np.asarray(img.convert("RGB")))


@pytest.mark.parametrize("size", [(1, 1), (4, 4), (1, 37), (37, 1), (333, 17)])
def test_tiny_and_thin_images(tmp_path, size):
    Image.new("RGB", size, (200, 10, 10)).save(tmp_path / "t.png")
    out = load_rgb(tmp_path / "t.png", 16)
    assert out.shape == (16, 16, 3) and (out == [200, 10, 10]).all()


def test_large_jpeg_decodes_reduced_and_close_to_a_full_decode(tmp_path, monkeypatch):
    yy, xx = np.mgrid[0:1600, 0:2400]
    arr = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "big.jpg", quality=90)
    decoded_sizes = []
    real_convert = Image.Image.convert

    def spy(self, *args, **kwargs):
        decoded_sizes.append(self.size)
        return real_convert(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "convert", spy)
    out = load_rgb(tmp_path / "big.jpg", 32)
    assert decoded_sizes[0] == (300, 200)  # 1/8 scale: still >= JPEG_DRAFT_FACTOR x the target
    assert min(decoded_sizes[0]) >= 32 * JPEG_DRAFT_FACTOR
    full = _pil_reference(tmp_path / "big.jpg", 32)
    assert np.abs(out.astype(int) - full.astype(int)).mean() < 2.0


def test_small_jpeg_is_decoded_exactly_like_pil(tmp_path):
    write_image_folder(tmp_path, {"a": 1}, size=40, fmt="jpg")
    assert np.array_equal(
        load_rgb(tmp_path / "a" / "000.jpg", 24), _pil_reference(tmp_path / "a" / "000.jpg", 24)
    )


def _broken_folder(tmp_path):
    write_image_folder(tmp_path, {"a": 5, "b": 5})
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, "PNG")
    (tmp_path / "a" / "empty.png").write_bytes(b"")
    (tmp_path / "a" / "text.png").write_text("just text\n")
    (tmp_path / "b" / "cut.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    Image.new("1", (20000, 10000)).save(tmp_path / "b" / "bomb.png")  # 200 Mpx, a few KB on disk
    return tmp_path


def test_every_broken_file_is_named_with_its_reason(tmp_path):
    folder = _broken_folder(tmp_path)
    with pytest.raises(EdgeopsError) as e:
        decode_images(folder, 8)
    message = str(e.value)
    assert message.startswith("4 unreadable file(s): ") and "\n" not in message
    assert f"{tmp_path / 'a' / 'empty.png'} (empty file (0 bytes))" in message
    assert f"{tmp_path / 'a' / 'text.png'} (not a readable image" in message
    assert f"{tmp_path / 'b' / 'cut.png'} (" in message and "truncated" in message
    assert f"{tmp_path / 'b' / 'bomb.png'} (too large to decode safely" in message
    assert message.count(str(tmp_path / "a" / "text.png")) == 1  # the path is not repeated


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    Image.new("1", (20000, 10000)).save(tmp_path / "bomb.png")
    with pytest.raises(ValueError, match="too large"):
        load_rgb(tmp_path / "bomb.png", 8)
