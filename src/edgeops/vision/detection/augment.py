"""Augmentation that moves each image's boxes exactly with its pixels (torch, one sampling grid per image).

Geometry: any of the 8 flips/transposes, a zoom in or out of up to ~35% and a shift, as one affine map
applied to the pixels with `grid_sample` and to the box corners with the inverse map. Zooming out shows
area outside the image: it is filled with the image's mean colour (a reflection would mirror objects
that have no box). Photometry, on the image only: gain, gamma, offset and a small per-channel tint.

Boxes are clipped to the image; a box that keeps less than MIN_VISIBLE of its area or gets a side under
MIN_SIDE pixels becomes padding (class -1): a sliver of an object is not something to find."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeops.vision.preprocess import MEAN, STD

MAX_LOG_ZOOM = 0.35  # zoom factor in exp(+-0.35) = 0.70 .. 1.42
MIN_VISIBLE = 0.25
MIN_SIDE = 2.0


def _affine(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) maps from output to input normalised coordinates: a dihedral flip/transpose times a zoom,
    plus a shift that keeps the view mostly on the image."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    zoom = torch.exp(uniform(-MAX_LOG_ZOOM, MAX_LOG_ZOOM))  # < 1: zoom in (objects grow)
    shift_x = (1 - zoom).abs() * uniform(-1, 1) + uniform(-0.1, 0.1)
    shift_y = (1 - zoom).abs() * uniform(-1, 1) + uniform(-0.1, 0.1)
    flip_x = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
    flip_y = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
    transpose = uniform(0, 1) < 0.5
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(transpose, 0.0, zoom * flip_x)
    theta[:, 0, 1] = torch.where(transpose, zoom * flip_x, 0.0)
    theta[:, 1, 0] = torch.where(transpose, zoom * flip_y, 0.0)
    theta[:, 1, 1] = torch.where(transpose, 0.0, zoom * flip_y)
    theta[:, 0, 2], theta[:, 1, 2] = shift_x, shift_y
    return theta


def _move_boxes(y: torch.Tensor, theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Boxes through the inverse of `theta` (input -> output), clipped; too-cut boxes become padding."""
    y = y.clone()
    scale = torch.tensor([width / 2, height / 2])
    inverse = torch.linalg.inv(theta[:, :, :2])  # (N, 2, 2)
    x0, y0, x1, y1 = y[..., 0], y[..., 1], y[..., 2], y[..., 3]
    corners = torch.stack(
        [torch.stack(c, -1) for c in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))], dim=2
    )  # (N, M, 4, 2) in pixels
    normalised = corners / scale - 1 - theta[:, None, None, :, 2]  # align_corners=False: edges at +-1
    moved = (torch.einsum("nij,nmkj->nmki", inverse, normalised) + 1) * scale
    low, high = moved.amin(2), moved.amax(2)  # dihedral + zoom: axis-aligned boxes stay axis-aligned
    full = (high - low).prod(-1)
    low = torch.maximum(low, torch.zeros(2))
    high = torch.minimum(high, torch.tensor([float(width), float(height)]))
    sides = high - low
    kept = sides.clamp(min=0).prod(-1)
    keep = (y[..., 4] >= 0) & (sides.amin(-1) >= MIN_SIDE) & (kept >= MIN_VISIBLE * full)
    y[..., :2], y[..., 2:4] = low, high
    y[~keep] = torch.tensor([0.0, 0.0, 0.0, 0.0, -1.0, 0.0])
    return y


def augment_boxes(
    x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random view of each normalised image (N, 3, S, S) and its targets (N, M, 6), same shapes out."""
    n, _, height, width = x.shape
    theta = _affine(n, generator)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    grid = F.affine_grid(theta, [n, 3, height, width], align_corners=False)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    pixels = (x * std + mean).clamp(0, 1)  # back to [0, 1] for the fill and the photometric jitter
    fill = pixels.mean((2, 3), keepdim=True)
    pixels = (
        F.grid_sample(pixels - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    )
    gain = (uniform(0.7, 1.3) * 1).view(n, 1, 1, 1) * uniform(0.9, 1.1, 3).view(n, 3, 1, 1)
    gamma = torch.exp(uniform(-0.35, 0.35)).view(n, 1, 1, 1)
    offset = uniform(-0.06, 0.06).view(n, 1, 1, 1)
    pixels = (pixels.clamp(0, 1) ** gamma * gain + offset).clamp(0, 1)
    return (pixels - mean) / std, _move_boxes(y, theta, height, width)
