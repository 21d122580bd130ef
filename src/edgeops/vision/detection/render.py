"""Drawing boxes on an image and turning the IR's boxes into the serving answer. numpy + Pillow only (the
edge agent uses it)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# distinct, readable box colours; class i takes COLOURS[i % len(COLOURS)]
COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#9a6324")


def boxes_in_original_pixels(
    prediction: np.ndarray,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    labels: list[str],
    score_threshold: float,
    max_boxes: int | None,
) -> list[dict[str, Any]]:
    """One image's prediction rows (x0, y0, x1, y1, score, label in input pixels, best first) as answer
    boxes {label, score, box: [x0, y0, x1, y1]} in the original image's pixels (the input was a plain
    resize of it, so each axis scales on its own)."""
    sx, sy = original_size[0] / input_size[0], original_size[1] / input_size[1]
    boxes = []
    for x0, y0, x1, y1, score, label in prediction[np.argsort(-prediction[:, 4], kind="stable")]:
        if score <= 0 or score < score_threshold or not 0 <= int(label) < len(labels):
            continue
        box = [
            round(float(np.clip(x0 * sx, 0, original_size[0])), 1),
            round(float(np.clip(y0 * sy, 0, original_size[1])), 1),
            round(float(np.clip(x1 * sx, 0, original_size[0])), 1),
            round(float(np.clip(y1 * sy, 0, original_size[1])), 1),
        ]
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append({"label": labels[int(label)], "score": round(float(score), 4), "box": box})
        if max_boxes is not None and len(boxes) >= max_boxes:
            break
    return boxes


def draw_boxes(
    image: Image.Image,
    boxes: list[tuple[list[float], str | None, float | None]],
    labels: list[str],
    colour: str | None = None,
    width: int = 2,
) -> Image.Image:
    """A copy of `image` with (box, label or None, score or None) drawn, with the label and score that are
    given as text; colour per class unless given."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    for box, label, score in boxes:
        index = labels.index(label) if label in labels else 0
        fill = colour or COLOURS[index % len(COLOURS)]
        draw.rectangle([float(v) for v in box], outline=fill, width=width)
        text = " ".join(part for part in (label, None if score is None else f"{score:.2f}") if part)
        if text:
            draw.text((float(box[0]) + 2, max(0.0, float(box[1]) - 11)), text, fill=fill)
    return out
