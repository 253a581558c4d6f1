"""Training outputs: test metrics (scikit-learn), training curves and confusion matrix (matplotlib,
every text drawn as written: class names such as ``$^$`` are not math)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgecv.benchmarks.report.plots import literal_text
from edgecv.io import atomic_path


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, labels: list[str]) -> dict:
    """Top-1 accuracy, per-class precision/recall/f1/support and the confusion matrix."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

    y_pred = scores.argmax(axis=1)
    indices = list(range(len(labels)))
    report = classification_report(y_true, y_pred, labels=indices, target_names=labels,
                                   output_dict=True, zero_division=0)
    per_class = {
        name: {key: round(float(report[name][key]), 4)
               for key in ("precision", "recall", "f1-score", "support")}
        for name in labels
    }
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=indices).tolist(),
    }


def read_history(path: Path) -> dict[str, list[float]]:
    """Columns of a Keras CSVLogger file as float lists (empty dict if the file is missing)."""
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            columns.setdefault(key, []).append(float(value))
    return columns


@literal_text()
def plot_training_curves(history: dict[str, list[float]], path: Path) -> None:
    """Accuracy and loss, train vs validation, side by side (one PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(e) + 1 for e in history.get("epoch", [])]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                ax.plot(epochs, history[key], marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"model {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


@literal_text()
def plot_confusion_matrix(matrix: list[list[int]], labels: list[str], path: Path) -> None:
    """The test-split confusion matrix with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=labels).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45 if len(labels) > 10 else "horizontal"
    )
    ax.set_title("confusion matrix (test split)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
