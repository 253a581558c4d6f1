"""What calibrates an int8 model: a class-stratified sample of training images, normalised by the
model's own contract, and a record of it for ``conversion.json``.

Post-training quantization fixes every activation range from the calibration images, so they
must look like deployment input: the same preprocessing (refused otherwise, see
:func:`check_contract`), every class represented (:func:`stratified_indices`) and never the
images that verify the result (a run's test split; ``--calib-data`` takes the TRAIN split of a
dataset source, so passing the same source as ``--data`` cannot leak test images).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecv.converters.npz import read_npz
from edgecv.errors import DataError, UsageError
from edgecv.preprocessing import Preprocessing


@dataclass
class Calibration:
    """Normalised calibration samples and where they came from (``record()`` -> conversion.json)."""

    x: np.ndarray  # float32, normalised model input
    source: str
    split: str  # which part of the source: "train", "all samples", ...
    per_class: dict = field(default_factory=dict)  # class name -> count ({} without labels)

    def record(self) -> dict:
        return {"source": self.source, "split": self.split, "count": int(len(self.x)),
                "per_class": dict(self.per_class), "stratified": bool(self.per_class)}


def stratified_indices(y: np.ndarray | None, count: int, seed: int = 0,
                       total: int | None = None) -> np.ndarray:
    """Up to ``count`` indices, as equal a share per class as the classes allow (a class with
    fewer samples gives all it has, the rest is shared out), seeded, sorted. Without labels: a
    seeded random sample of ``range(total)``. Why: a random 300 of an unbalanced set can leave a class out, and its
    activation ranges are then never seen by the calibrator."""
    if count < 1:
        raise UsageError(f"`calib_samples` must be at least 1, received {count}.")
    rng = np.random.default_rng(seed)
    if y is None:
        return np.sort(rng.permutation(total or 0)[:count])
    pools = {c: rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)}
    taken = {c: 0 for c in pools}
    remaining = min(count, len(y))
    while remaining > 0:  # round-robin over the classes that still have samples
        open_classes = [c for c in pools if taken[c] < len(pools[c])]
        share = max(1, remaining // len(open_classes))
        for c in open_classes:
            extra = min(share, len(pools[c]) - taken[c], remaining)
            taken[c] += extra
            remaining -= extra
            if remaining == 0:
                break
    return np.sort(np.concatenate([pools[c][:taken[c]] for c in pools]).astype(np.int64))


def per_class_counts(y: np.ndarray | None, labels: list[str]) -> dict:
    """{class name: count} for labelled samples, {} otherwise."""
    if y is None:
        return {}
    counts = np.bincount(np.asarray(y, np.int64), minlength=len(labels))
    return {labels[i] if i < len(labels) else str(i): int(n) for i, n in enumerate(counts)}


def contract_range(pre: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (low, high) of model input that 0..255 pixels give under ``pre``."""
    mean = np.broadcast_to(np.asarray(pre.mean, np.float64), (pre.channels,))
    std = np.broadcast_to(np.asarray(pre.std, np.float64), (pre.channels,))
    ends = (np.stack([np.zeros(pre.channels), np.full(pre.channels, 255.0)]) * pre.scale - mean) / std
    return ends.min(0), ends.max(0)


def check_contract(x: np.ndarray, pre: Preprocessing, source: str) -> None:
    """Refuse float calibration input that was not normalised by the model's contract: values
    outside what 0..255 pixels give, or a set of images that covers under half of that range
    (e.g. 0..1 data for a -1..1 model: every activation range would be calibrated too narrow)."""
    if x.shape[1:] != pre.input_shape:
        raise DataError(f"calibration data '{source}' has shape {tuple(x.shape[1:])} per sample, "
                        f"the model takes {pre.input_shape}; give images of that size and "
                        "channel count (uint8 images are resized by the deployed rules).")
    low, high = contract_range(pre)
    span = high - low
    seen_low, seen_high = x.min(axis=(0, 1, 2)), x.max(axis=(0, 1, 2))
    tolerance = 0.02 * span
    covered = (seen_high - seen_low) / span
    if np.any(seen_low < low - tolerance) or np.any(seen_high > high + tolerance) or (
            len(x) >= 20 and np.any(covered < 0.5)):
        raise DataError(
            f"calibration data '{source}' is not normalised like the model's input: its values "
            f"span {float(seen_low.min()):.3g}..{float(seen_high.max()):.3g}, the contract (scale "
            f"{pre.scale:.6g}, mean {list(pre.mean)}, std {list(pre.std)}) gives "
            f"{float(low.min()):.3g}..{float(high.max()):.3g}; store uint8 images instead, or "
            "normalise them with the model's own preprocessing.")


def load_calibration(spec: str, pre: Preprocessing, labels: list[str], count: int,
                     seed: int = 0) -> Calibration:
    """``--calib-data SPEC``: an .npz (uint8 images go through the contract; float input is
    checked against it) or a dataset source for :func:`edgecv.data.load_dataset` (digits, a
    folder, an archive; its TRAIN split). ``count`` samples, stratified when labelled.

    Class names are the model's ``labels`` when the data's classes are among them (by name),
    else the data's own names."""
    spec = str(spec)
    if spec.lower().endswith(".npz"):
        data = read_npz(spec, pre, len(labels))
        if data.images is not None:
            # read_npz converts grey <-> colour for verification; calibration must not: grey
            # copies in three channels have other activation ranges than colour photos
            if data.stored_channels != pre.channels:
                raise DataError(f"calibration data '{spec}' has {data.stored_channels}-channel "
                                f"images, the model takes {pre.channels}; calibrate on images "
                                "like the deployed ones.")
        else:
            check_contract(data.x, pre, spec)
        index = stratified_indices(data.y, count, seed, total=len(data.x))
        y = None if data.y is None else data.y[index]
        return Calibration(data.x[index], spec, "all samples",
                           per_class_counts(y, data.labels or labels))
    from edgecv.data import load_dataset

    dataset = load_dataset(spec, pre.height, pre.width, pre.channels, seed=seed)
    return train_split_calibration(dataset, pre, count, seed, spec)


def train_split_calibration(dataset, pre: Preprocessing, count: int, seed: int, spec: str,
                            labels: list[str] | None = None) -> Calibration:
    """``count`` class-stratified images of ``dataset``'s TRAIN split, normalised by ``pre``;
    per-class counts under ``labels`` (default: the dataset's class names)."""
    index = stratified_indices(dataset.train.y, count, seed)
    return Calibration(pre.normalize(dataset.train.images(index)), str(spec), "train",
                       per_class_counts(dataset.train.y[index], labels or list(dataset.labels)))
