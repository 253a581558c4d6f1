"""The held-out test split as one small file that travels with the artifacts (numpy only).

``edgecv convert`` writes ``export/testset.npz`` (uint8 images at the model's input size, their
labels, the class names and the sample ids), so ``edgecv bench`` can measure accuracy on a device
that has neither TensorFlow nor scikit-learn nor the original data. The images are the run's
test split exactly (``split.json``); they enter every model through the same preprocessing
as camera and predict frames.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecv.errors import DataError
from edgecv.io import atomic_path


@dataclass
class TestSet:
    """uint8 images (N, H, W, C) in RGB/gray model order, int64 labels, class names, ids."""

    __test__ = False  # not a pytest test class

    x: np.ndarray
    y: np.ndarray
    labels: list[str]
    ids: list[str]

    def __len__(self) -> int:
        return int(len(self.y))


def save_testset(path: str | Path, x: np.ndarray, y: np.ndarray, labels: list[str],
                 ids: list) -> Path:
    """Write a test set atomically (uncompressed npz; loading needs no pickle)."""
    if x.dtype != np.uint8 or x.ndim != 4 or len(x) != len(y):
        raise DataError(f"a test set needs uint8 images (N, H, W, C) and N labels, received "
                        f"{x.dtype} {tuple(x.shape)} and {len(y)} labels.")
    path = Path(path)
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, x=x, y=np.asarray(y, np.int64), labels=np.asarray(labels, str),
                     ids=np.asarray([str(i) for i in ids], str))
    return path


def load_testset(path: str | Path) -> TestSet:
    """Read a test set written by :func:`save_testset` (or any npz with uint8 ``x`` and ``y``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"test set '{path}' does not exist.")
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y = data["x"], data["y"].astype(np.int64)
            labels = [str(v) for v in data["labels"]] if "labels" in data else []
            ids = [str(v) for v in data["ids"]] if "ids" in data else [str(i) for i in range(len(y))]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"'{path}' is not a readable test set (npz with uint8 'x' and 'y'): "
                        f"{type(exc).__name__}: {exc}"[:300]) from exc
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or len(x) != len(y):
        raise DataError(f"'{path}': 'x' must be uint8 images (N, H, W[, C]) with one label each, "
                        f"received {x.dtype} {tuple(x.shape)} and {len(y)} labels.")
    if x.ndim == 3:
        x = x[..., None]
    return TestSet(x, y, labels, ids)
