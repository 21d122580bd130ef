"""Raw detector outputs -> boxes + labels with static shapes, convertible to OpenVINO on its own.

Peak-based decoding (CenterNet): a cell is a detection when its heatmap score is the maximum of its 3x3
neighbourhood; the top K over all classes and cells are kept. No box NMS: one peak per object is what the
heatmap loss trains for, and a 3x3 max-pool + top-k keeps every shape static, so the decoder converts with
`ov.convert_model` and runs after the quantized network (or on a raw tensor fed directly)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeops.vision.detection.loss import MAX_LOG_DISTANCE
from edgeops.vision.detection.models import STRIDE


class DetectionDecoder(nn.Module):
    """forward(raw (N, C + 4, H, W)) -> boxes (N, K, 5) float32 [x0, y0, x1, y1, score] in input pixels
    (clipped to 0..H*stride / W*stride) and labels (N, K) int64, sorted by score, descending. K is
    `max_detections` (fewer only if C*H*W is smaller); rows that are not peaks have score 0 and a zero box.
    """

    def __init__(self, stride: int = STRIDE, max_detections: int = 100) -> None:
        super().__init__()
        self.stride = stride
        self.max_detections = max_detections

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, channels, height, width = raw.shape
        num_classes = channels - 4
        cells = height * width
        scores = torch.sigmoid(raw[:, :num_classes].float())
        peaks = F.max_pool2d(scores, kernel_size=3, stride=1, padding=1)
        scores = scores * (scores == peaks).float()
        k = min(self.max_detections, num_classes * cells)
        top, index = torch.topk(scores.reshape(n, num_classes * cells), k, dim=1)
        labels = torch.div(index, cells, rounding_mode="floor")
        cell = index - labels * cells
        row = torch.div(cell, width, rounding_mode="floor")
        col = cell - row * width
        distances = torch.exp(raw[:, num_classes:].float().clamp(max=MAX_LOG_DISTANCE)) * self.stride
        distances = torch.gather(distances.reshape(n, 4, cells), 2, cell[:, None, :].expand(n, 4, k))
        cx = (col.float() + 0.5) * self.stride
        cy = (row.float() + 0.5) * self.stride
        size_x, size_y = float(width * self.stride), float(height * self.stride)
        boxes = torch.stack(
            [
                (cx - distances[:, 0]).clamp(0, size_x),
                (cy - distances[:, 1]).clamp(0, size_y),
                (cx + distances[:, 2]).clamp(0, size_x),
                (cy + distances[:, 3]).clamp(0, size_y),
                top,
            ],
            dim=-1,
        )
        boxes = boxes * (top > 0).float()[..., None]
        return boxes, labels.long()


def decoder_for(model: nn.Module, max_detections: int = 100) -> DetectionDecoder:
    """The decoder matching a zoo model (its `stride` attribute; every zoo model has stride 4)."""
    return DetectionDecoder(stride=int(getattr(model, "stride", STRIDE)), max_detections=max_detections)
