"""Property-based: whatever the random view, a box and its pixels stay together (flips, transposes,
zoom, shift), boxes are clipped to the image, and a box that is dropped has (almost) left the view."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeops.vision.detection.augment import MIN_VISIBLE, augment_boxes
from edgeops.vision.preprocess import MEAN, STD, normalize

SIZE = 64


def bright_box_image(x0: int, y0: int, w: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = np.zeros((1, SIZE, SIZE, 3), np.uint8)
    pixels[0, y0 : y0 + h, x0 : x0 + w] = 255
    target = torch.tensor([[[x0, y0, x0 + w, y0 + h, 0, 0], [0, 0, 0, 0, -1, 0]]], dtype=torch.float32)
    return normalize(torch.from_numpy(pixels)), target


def bright_region(x: torch.Tensor) -> np.ndarray:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return ((x * std + mean)[0].mean(0) > 0.5).numpy()


@settings(max_examples=60, deadline=None)
@given(
    x0=st.integers(0, SIZE - 8),
    y0=st.integers(0, SIZE - 8),
    w=st.integers(6, 32),
    h=st.integers(6, 32),
    seed=st.integers(0, 2**31 - 1),
)
def test_a_box_and_its_pixels_stay_together(x0: int, y0: int, w: int, h: int, seed: int) -> None:
    w, h = min(w, SIZE - x0), min(h, SIZE - y0)
    x, y = bright_box_image(x0, y0, w, h)
    moved_x, moved_y = augment_boxes(x, y, torch.Generator().manual_seed(seed))
    assert moved_x.shape == x.shape and moved_y.shape == y.shape
    assert moved_y[0, 1, 4] == -1  # padding stays padding
    region = bright_region(moved_x)
    if moved_y[0, 0, 4] < 0:  # dropped: at most a sliver of the object is still in view
        assert region.sum() <= MIN_VISIBLE * w * h * 1.42**2 + 2 * (w + h) * 1.42
        return
    bx0, by0, bx1, by1 = moved_y[0, 0, :4].tolist()
    assert 0 <= bx0 < bx1 <= SIZE and 0 <= by0 < by1 <= SIZE  # clipped to the image
    rows, cols = np.nonzero(region)
    assert len(rows), "a kept box shows its object"
    # bilinear resampling blurs edges by up to a pixel of the zoomed view
    assert abs(cols.min() - bx0) <= 1.6 and abs(cols.max() + 1 - bx1) <= 1.6
    assert abs(rows.min() - by0) <= 1.6 and abs(rows.max() + 1 - by1) <= 1.6


def test_the_same_seed_gives_the_same_view() -> None:
    x, y = bright_box_image(10, 12, 20, 14)
    a = augment_boxes(x, y, torch.Generator().manual_seed(5))
    b = augment_boxes(x, y, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    views = {
        tuple(augment_boxes(x, y, torch.Generator().manual_seed(s))[1][0, 0, :4].round().tolist())
        for s in range(8)
    }
    assert len(views) > 4  # and different seeds move the box differently
