"""Detection pictures for reports, DVC plots and MLflow: true vs predicted boxes, and the PR curve."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from edgeops.vision.base import Split
from edgeops.vision.detection.metrics import CLASS
from edgeops.vision.detection.render import draw_boxes

MAX_IMAGES = 6
TRUE_COLOUR, PREDICTED_COLOUR = "#00c000", "#ff2020"


def boxes_grid(
    result: dict[str, Any],
    predictions: np.ndarray,
    split: Split,
    labels: list[str],
    threshold: float,
    path: Path,
) -> None:
    """A few test images: true boxes green, predicted boxes (score >= threshold) red, enlarged so that
    small images stay readable."""
    count = min(MAX_IMAGES, len(predictions))
    size = split.images.shape[1]
    cell = max(size, 256)
    scale = cell / size
    header = 18
    columns = min(3, max(1, count))
    rows = -(-count // columns)
    canvas = Image.new("RGB", (columns * cell, rows * cell + header), "white")
    ImageDraw.Draw(canvas).text(
        (4, 3),
        f"{result['variant']}: true boxes green, predicted red (score >= {threshold:.2f}); "
        f"test mAP {result['score']:.3f}",
        fill="black",
    )
    for i in range(count):
        image = Image.fromarray(split.images[i]).resize((cell, cell), Image.Resampling.BILINEAR)
        truth = split.targets[i]
        truth = truth[truth[:, CLASS] >= 0]
        named = len(labels) > 1  # one class: the boxes say enough, label text would only clutter
        shown = draw_boxes(
            image,
            [(list(r[:4] * scale), labels[int(r[CLASS])] if named else None, None) for r in truth],
            labels,
            TRUE_COLOUR,
        )
        predicted = predictions[i]
        predicted = predicted[(predicted[:, 4] > 0) & (predicted[:, 4] >= threshold)]
        shown = draw_boxes(
            shown,
            [
                (list(r[:4] * scale), labels[int(r[5])] if named else None, float(r[4]))
                for r in predicted
                if 0 <= int(r[5]) < len(labels)
            ],
            labels,
            PREDICTED_COLOUR,
            width=1,
        )
        canvas.paste(shown, ((i % columns) * cell, header + (i // columns) * cell))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def precision_recall(result: dict[str, Any], curve: dict[str, list[float]], png: Path, table: Path) -> None:
    """The precision-recall curve at IoU 0.5 (COCO's 101 recall points, mean over classes) as a PNG and as
    a CSV that `dvc plots` draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recall", "precision"])
        writer.writerows(zip(curve["recall"], curve["precision"], strict=True))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(curve["recall"], curve["precision"], color="#4363d8")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(
        f"{result['variant']}: precision-recall at IoU 0.5 (mAP@.5 {result['metrics']['mAP50']:.3f})",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
