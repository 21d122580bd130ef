"""Classification pictures for reports and MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def confusion_matrix_plot(result: dict[str, Any], labels: list[str], path: Path) -> None:
    """The test-split confusion matrix of one variant (rows: actual, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(result["metrics"]["confusion"], cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"{result['variant']}: test accuracy {result['score']:.4f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
