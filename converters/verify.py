"""Per-class verification figures: an average drop of 0.3 pp can hide a class that lost 5."""

from __future__ import annotations

import numpy as np


def per_class_rows(predicted: np.ndarray, reference: np.ndarray, y: np.ndarray,
                   labels: list[str]) -> list[dict]:
    """One row per class present in ``y``: its count, the reference model's and the artifact's
    accuracy on it, and the drop in percentage points (positive = the artifact is worse)."""
    rows = []
    for index in np.unique(y):
        mask = y == index
        artifact = float((predicted[mask] == index).mean())
        keras = float((reference[mask] == index).mean())
        rows.append({"class": labels[index] if index < len(labels) else str(index),
                     "count": int(mask.sum()), "reference_accuracy": round(keras, 5),
                     "accuracy": round(artifact, 5), "drop_pp": round(100 * (keras - artifact), 3)})
    return rows


def worst_class(rows: list[dict]) -> dict | None:
    """The class that lost most (largest ``drop_pp``; ties: the larger class), or None."""
    if not rows:
        return None
    worst = max(rows, key=lambda r: (r["drop_pp"], r["count"]))
    return {"class": worst["class"], "drop_pp": worst["drop_pp"], "count": worst["count"]}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Top-1 agreement of two score arrays (N, classes)."""
    return float((a.argmax(1) == b.argmax(1)).mean())
