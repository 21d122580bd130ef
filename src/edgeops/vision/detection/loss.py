"""The detection loss (TTFNet-style): focal loss on Gaussian heatmaps + Gaussian-weighted GIoU on boxes.

Dense targets are built on the fly, vectorised over (images, boxes, cells), from the padded targets
(N, M, 6) = [x0, y0, x1, y1, class, crowd] in input pixels; class -1 rows are padding. Crowd rows are
don't-care: no heatmap penalty inside them, no box regression from them.

Why this and not plain CenterNet (size regressed at the centre cell only): TTFNet regresses the box from
every cell of an elliptical Gaussian around the centre, weighted by it, with GIoU. Many more box samples
per object make it converge in a few hundred steps, which is what training from scratch in ~1-2 minutes
on a CPU needs, and the distances to the four edges (not a centre offset + size) make the peak cell's box
tight without a separate offset head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeops.vision.detection.models import STRIDE

# Gaussian radius as a fraction of the box (TTFNet's alpha = beta = 0.54): sigma = alpha * side / 6
ALPHA = 0.54
# weight of the box loss against the heatmap loss (TTFNet uses 5 with GIoU)
BOX_WEIGHT = 5.0
# log-distance clamp: exp(6) * stride covers boxes far larger than any input (no overflow in float16/32)
MAX_LOG_DISTANCE = 6.0


def cell_centres(height: int, width: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input-pixel coordinates of the cell centres, (H, W) each: cell j covers [j*stride, (j+1)*stride)."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * stride
    return ys[:, None].expand(height, width), xs[None, :].expand(height, width)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed (the caller normalises by the object count).

    Cells where the target is exactly 1 are positives; the others are negatives whose penalty shrinks
    near a centre by (1 - target)^4. `weight` = 0 makes a cell don't-care (crowd regions)."""
    pos = target.eq(1).float()
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    p = log_p.exp()
    pos_loss = -((1 - p) ** 2) * log_p * pos
    neg_loss = -(p**2) * log_not_p * (1 - target) ** 4 * (1 - pos)
    return ((pos_loss + neg_loss) * weight).sum()


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - generalised IoU of boxes [..., 4] = x0, y0, x1, y1 (elementwise, not summed)."""
    area_p = (pred[..., 2] - pred[..., 0]) * (pred[..., 3] - pred[..., 1])
    area_t = (target[..., 2] - target[..., 0]) * (target[..., 3] - target[..., 1])
    lt = torch.maximum(pred[..., :2], target[..., :2])
    rb = torch.minimum(pred[..., 2:], target[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_p + area_t - inter
    iou = inter / union.clamp(min=1e-6)
    hull = (
        torch.maximum(pred[..., 2:], target[..., 2:]) - torch.minimum(pred[..., :2], target[..., :2])
    ).prod(-1)
    return 1 - (iou - (hull - union) / hull.clamp(min=1e-6))


def detection_loss(raw: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Scalar loss of raw outputs (N, C + 4, H, W) against padded targets (N, M, 6); stride = S / H is
    implied by the model (see models.STRIDE), so the loss needs no parameters from the caller."""
    n, channels, height, width = raw.shape
    num_classes = channels - 4
    stride = STRIDE
    targets = targets.to(raw.dtype)
    boxes, cls, crowd = targets[..., :4], targets[..., 4], targets[..., 5]
    valid = cls >= 0
    positive = valid & (crowd < 0.5)  # (N, M)
    cy, cx = cell_centres(height, width, stride)  # (H, W)
    cy, cx = cy.to(raw.device), cx.to(raw.device)

    bw = (boxes[..., 2] - boxes[..., 0]).clamp(min=1)
    bh = (boxes[..., 3] - boxes[..., 1]).clamp(min=1)
    # the peak sits at the cell that contains the box centre, so the cell's own Gaussian value is exactly 1
    centre_x = ((boxes[..., 0] + boxes[..., 2]) / 2 / stride).floor().clamp(
        0, width - 1
    ) * stride + stride / 2
    centre_y = ((boxes[..., 1] + boxes[..., 3]) / 2 / stride).floor().clamp(
        0, height - 1
    ) * stride + stride / 2
    sigma_x = (ALPHA * bw / 6).clamp(min=stride / 4)
    sigma_y = (ALPHA * bh / 6).clamp(min=stride / 4)
    dx = cx[None, None] - centre_x[..., None, None]  # (N, M, H, W)
    dy = cy[None, None] - centre_y[..., None, None]
    gauss = torch.exp(
        -(dx**2) / (2 * sigma_x[..., None, None] ** 2) - dy**2 / (2 * sigma_y[..., None, None] ** 2)
    )
    gauss = gauss * positive[..., None, None]

    # heatmap target: per class, the max over that class's boxes
    one_hot = F.one_hot(cls.clamp(min=0).long(), num_classes).to(raw.dtype) * positive[..., None]  # (N, M, C)
    if targets.shape[1] == 0:  # no rows at all: every cell is background
        zeros = torch.zeros_like(raw[:, :num_classes])
        return focal_loss(raw[:, :num_classes], zeros, zeros + 1) + raw[:, num_classes:].sum() * 0
    heat = (gauss[:, :, None] * one_hot[..., None, None]).amax(1)
    # crowd regions are don't-care for the heatmap (unless a real object's peak is there)
    inside = (
        (cx[None, None] >= boxes[..., 0, None, None])
        & (cx[None, None] <= boxes[..., 2, None, None])
        & (cy[None, None] >= boxes[..., 1, None, None])
        & (cy[None, None] <= boxes[..., 3, None, None])
    )  # (N, M, H, W)
    crowd_region = (inside & (valid & (crowd >= 0.5))[..., None, None]).any(1, keepdim=True)
    weight = torch.where(crowd_region & heat.lt(1), 0.0, 1.0).to(raw.dtype)
    num_objects = positive.sum().clamp(min=1).to(raw.dtype)
    hm_loss = focal_loss(raw[:, :num_classes], heat, weight) / num_objects

    # box regression: every cell inside a box and its Gaussian, each cell for the smallest box covering it
    region = gauss * inside
    area = torch.where(region > 0, (bw * bh)[..., None, None], torch.inf)
    owner = area.argmin(1)  # (N, H, W)
    slots = torch.arange(region.shape[1], device=raw.device)[None, :, None, None]
    region = torch.where(slots == owner[:, None], region, 0.0)
    # each object's weights sum to log(area) (TTFNet): larger boxes count a bit more, none is ignored
    per_object = region.sum((2, 3), keepdim=True).clamp(min=1e-6)
    region = region / per_object * torch.log(bw * bh).clamp(min=1)[..., None, None]
    cell_weight = region.sum(1)  # (N, H, W)
    mask = cell_weight > 0
    if not bool(mask.any()):
        return hm_loss + raw[:, num_classes:].sum() * 0  # keeps the graph connected
    target_box = boxes.gather(1, owner.view(n, -1, 1).expand(-1, -1, 4)).view(n, height, width, 4)
    distances = torch.exp(raw[:, num_classes:].clamp(max=MAX_LOG_DISTANCE)) * stride  # (N, 4, H, W)
    pred_box = torch.stack(
        [cx - distances[:, 0], cy - distances[:, 1], cx + distances[:, 2], cy + distances[:, 3]], dim=-1
    )  # (N, H, W, 4)
    box_loss = giou_loss(pred_box[mask], target_box[mask])
    box_loss = (box_loss * cell_weight[mask]).sum() / cell_weight.sum()
    return hm_loss + BOX_WEIGHT * box_loss
