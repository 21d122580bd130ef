"""Stratified, seeded train/val/test split."""

from __future__ import annotations

import numpy as np

from edgeops.errors import EdgeopsError

SPLITS = ("train", "val", "test")


def stratified_split(
    labels: list[int], classes: list[str], fractions: dict[str, float], seed: int, min_per_class: int
) -> dict[str, list[int]]:
    """Indices per split; every class appears in every split."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    too_small = [f"{classes[c]} ({len(ix)})" for c, ix in sorted(by_class.items()) if len(ix) < min_per_class]
    if too_small:
        raise EdgeopsError(
            f"class(es) with too few images for a train/val/test split: {', '.join(too_small)}; "
            f"each class needs at least {min_per_class} (data.min_images_per_class): add images or drop the class"
        )
    result: dict[str, list[int]] = {name: [] for name in SPLITS}
    for _, indices in sorted(by_class.items()):
        shuffled = [indices[j] for j in rng.permutation(len(indices))]
        n = len(shuffled)
        n_val = max(1, round(n * fractions["val"]))
        n_test = max(1, round(n * fractions["test"]))
        n_train = n - n_val - n_test
        if n_train < 1:
            n_train, n_val, n_test = 1, max(1, (n - 1) // 2), n - 1 - max(1, (n - 1) // 2)
        result["train"] += shuffled[:n_train]
        result["val"] += shuffled[n_train : n_train + n_val]
        result["test"] += shuffled[n_train + n_val :]
    return {name: sorted(ix) for name, ix in result.items()}
