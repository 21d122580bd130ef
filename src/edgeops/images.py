"""The one image decoder: training, `edgeops predict`, evaluation and the edge agent turn a file into
model input with these functions, so a picture is seen the same way in training and in serving.

Needs only numpy and Pillow (the edge agent imports it without torch)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeops.errors import EdgeopsError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

# JPEGs are decoded at a reduced DCT scale that keeps at least this many times the target size: a
# 6000x4000 photo decodes ~4x faster, and the result differs from a full decode by < 1 level on average.
JPEG_DRAFT_FACTOR = 4
_WIDE_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def printable(path: Path | str) -> str:
    """The path as text that can be printed and stored as UTF-8 (undecodable bytes as \\xNN)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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


def open_image(source: Path | BinaryIO) -> Image.Image:
    """Image.open with large photos allowed up to Pillow's own bomb limit (~179 Mpx), which is a ValueError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(source)
        except Image.DecompressionBombError as e:
            raise ValueError(f"too large to decode safely ({str(e).split(', could be')[0]})") from None


def model_input(img: Image.Image, size: int | tuple[int, int]) -> np.ndarray:
    """RGB u8 HxWx3 resized (bilinear) to size (an int: square; or (width, height)).

    The steps an edge app does: convert to RGB (see to_rgb for 16-bit grayscale), resize BILINEAR.
    Large JPEGs are decoded at a reduced scale first (JPEG_DRAFT_FACTOR)."""
    width, height = (size, size) if isinstance(size, int) else size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if img.format == "JPEG":
            img.draft(None, (width * JPEG_DRAFT_FACTOR, height * JPEG_DRAFT_FACTOR))
        rgb = to_rgb(img).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def load_rgb(path: Path, size: int | tuple[int, int]) -> np.ndarray:
    """Decode an image file to model input (see model_input)."""
    with open_image(path) as img:
        return model_input(img, size)


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
    if isinstance(error, ValueError) and message:  # raised by our own checks with their own wording
        return message[:120]
    return f"{type(error).__name__}: {message[:100]}" if message else type(error).__name__


def unreadable_error(bad: list[str]) -> EdgeopsError:
    """One line naming the unreadable files (the first five, and how many more)."""
    shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
    return EdgeopsError(f"{len(bad)} unreadable file(s): {shown}. Fix or delete them and rerun")
