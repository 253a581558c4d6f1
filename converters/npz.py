"""Reading an ``.npz`` of images (or of normalised model input) under a model's preprocessing
contract: the one reader behind ``--data FILE.npz`` (:func:`edgecv.converters.sources.load_npz`)
and ``--calib-data FILE.npz`` (:func:`edgecv.converters.calibration.load_calibration`)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecv.errors import DataError
from edgecv.preprocessing import Preprocessing


@dataclass
class NpzData:
    """An .npz as model input: ``x`` normalised, ``images`` the uint8 images at the contract's
    size (None when the file holds float input), ``stored_channels`` as the file has them."""

    x: np.ndarray  # float32, normalised (N, H, W, C)
    images: np.ndarray | None
    y: np.ndarray | None  # int64 class indices, None without labels
    labels: list[str] | None  # the file's class names, if it has them
    ids: list[str] | None  # as stored, if stored
    stored_channels: int


def _labels_from_array(y: np.ndarray, count: int, num_classes: int, source: str) -> np.ndarray:
    """``y`` (class indices or one-hot) as int64 indices in ``0..num_classes-1``, checked."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == num_classes:  # one-hot
        y = y.argmax(1)
    if y.ndim != 1 or len(y) != count:
        raise DataError(f"'{source}': y must hold one class index per image ({count}), received "
                        f"shape {tuple(y.shape)}.")
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        raise DataError(f"'{source}': y must be integer class indices, received {y.dtype} values.")
    if y.dtype.kind not in "iuf" or (len(y) and (y.min() < 0 or y.max() >= num_classes)):
        raise DataError(f"'{source}': y must be class indices in 0..{num_classes - 1} (the model "
                        f"outputs {num_classes} scores), received {y.dtype} "
                        f"{'' if not len(y) else f'in {y.min()}..{y.max()}'}.")
    return y.astype(np.int64)


def read_npz(path: str | Path, pre: Preprocessing, num_classes: int) -> NpzData:
    """An .npz with ``x`` (uint8 images N,H,W[,C], resized by the deployed rules if needed, or
    float32 normalised model input of exactly N,H,W,C) and optional ``y``, ``labels``, ``ids``."""
    from edgecv.data import resize_batch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file '{path}' does not exist.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "x" not in npz:
                raise DataError(f"'{path}' has no 'x' array (it has: {', '.join(npz.files)}); "
                                "expected x (images) and optionally y (class indices).")
            x = npz["x"]
            y = npz["y"] if "y" in npz else None
            names = [str(v) for v in npz["labels"]] if "labels" in npz else None
            ids = [str(v) for v in npz["ids"]] if "ids" in npz else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"'{path}' is not a readable .npz: {type(exc).__name__}: {exc}"[:300]) from exc
    if len(x) == 0:
        raise DataError(f"'{path}': x holds no samples.")
    if x.dtype == np.uint8:
        images = x[..., None] if x.ndim == 3 else x
        if images.ndim != 4:
            raise DataError(f"'{path}': uint8 x must be images (N, H, W[, C]), received shape "
                            f"{tuple(x.shape)}.")
        if images.shape[1:] != pre.input_shape:
            images = resize_batch(images, pre.height, pre.width, pre.channels)
        model_x = pre.normalize(images)
    elif x.dtype.kind == "f":
        images = None
        model_x = (x[..., None] if x.ndim == 3 else x).astype(np.float32)
        if model_x.shape[1:] != pre.input_shape:
            raise DataError(f"'{path}': float x is taken as normalised model input and must be "
                            f"(N, {pre.height}, {pre.width}, {pre.channels}), received "
                            f"{tuple(x.shape)}; store uint8 images to have them resized.")
        if not np.isfinite(model_x).all():
            raise DataError(f"'{path}': x contains NaN or inf.")
    else:
        raise DataError(f"'{path}': x must be uint8 images or float model input, received "
                        f"{x.dtype}.")
    labels = None if y is None else _labels_from_array(y, len(model_x), num_classes, str(path))
    return NpzData(model_x, images, labels, names, ids, 1 if x.ndim == 3 else int(x.shape[-1]))
