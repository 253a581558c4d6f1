"""Verification: an artifact run in its real runtime against the reference model, with the
figures ``conversion.json`` records and ``--max-drop`` judges.

- :func:`verify_artifact`: accuracy, top-1 agreement, output difference and per-class rows on
  the test split (:func:`per_class_rows`: an average drop of 0.3 pp can hide a class that lost 5),
  into the artifact's :class:`~edgecv.results.ConversionRow`;
- :func:`score_drops` / :func:`budget_drop`: the drops in percentage points, and the one
  ``--max-drop`` applies to; :class:`Budget`: ``--max-drop`` and ``--min-agreement`` together,
  judging a row or the :class:`SliceFigures` of a candidate;
- :func:`check_data`: the held-out slice (never the test split) that choices between
  quantization settings and ``--recover`` are made on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from edgecv.converters.calibration import stratified_indices
from edgecv.converters.rundata import RunData
from edgecv.errors import UsageError
from edgecv.results import ConversionRow
from edgecv.runtime.base import agreement, agreement_counting_ties  # noqa: F401 (also from here)


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


# A reference decision is "clear" when its top score beats the runner-up by this much (scores as
# probabilities): a disagreement on such an image is a decision int8 broke, not a near-tie tipped.
CLEAR_MARGIN = 0.1


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """``scores`` as they are when they already are probabilities (rows of non-negative scores
    summing to 1), else their softmax (a model that ends in logits)."""
    scores = np.asarray(scores, np.float64)
    if scores.min() >= -1e-6 and np.allclose(scores.sum(1), 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def disagreements(scores: np.ndarray, reference: np.ndarray, y: np.ndarray | None = None) -> dict:
    """Where an artifact's top-1 differs from the reference model's, and what kind of images
    those are: ``count``; ``exact_ties`` (the artifact's two best scores are equal, as int8's
    steps make them, and argmax took the lower class index); ``largest_margin``, the widest
    reference decision (top minus runner-up, as probabilities) among them; ``clear_images``,
    the images the reference decides by at least :data:`CLEAR_MARGIN`, ``clear_flips`` the
    disagreements among them and ``clear_agreement`` the agreement on them; with labels, how
    many of the disagreements each model gets right (``reference_right``, ``artifact_right``):
    near-ties tipped either way cost no accuracy, broken clear decisions do."""
    if reference.shape[1] < 2:  # one score: nothing to disagree on
        return {"count": 0, "exact_ties": 0, "largest_margin": None,
                "clear_images": len(reference), "clear_flips": 0, "clear_agreement": 1.0}
    ranked = np.sort(_probabilities(reference), 1)
    margin = ranked[:, -1] - ranked[:, -2]
    predicted, expected = scores.argmax(1), reference.argmax(1)
    flips = predicted != expected
    top = np.sort(scores, 1)
    clear = margin >= CLEAR_MARGIN
    row = {"count": int(flips.sum()),
           "exact_ties": int((flips & (top[:, -1] == top[:, -2])).sum()),
           "largest_margin": round(float(margin[flips].max()), 4) if flips.any() else None,
           "clear_images": int(clear.sum()), "clear_flips": int((flips & clear).sum()),
           "clear_agreement": float((~flips[clear]).mean()) if clear.any() else None}
    if y is not None:
        row.update(reference_right=int((expected[flips] == y[flips]).sum()),
                   artifact_right=int((predicted[flips] == y[flips]).sum()))
    return row


def disagreements_text(flips: dict | None) -> str:
    """``"89 flips: 0 on clear decisions, 40 exact ties, widest margin 0.17, right: reference
    36, artifact 38"``: a verified row's ``disagreements`` (:func:`disagreements`) in words
    ('' without any)."""
    if not flips or not flips["count"]:
        return ""
    right = (f", right: reference {flips['reference_right']}, artifact {flips['artifact_right']}"
             if "reference_right" in flips else "")
    return (f"{flips['count']} flips: {flips['clear_flips']} on clear decisions, "
            f"{flips['exact_ties']} exact ties, widest margin {flips['largest_margin']:.2f}{right}")


def check_data(run: RunData, limit: int = 1000) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The images (and labels, None without) that choose between quantization settings and
    decide ``--recover``: a class-stratified sample of the validation split (up to ``limit``),
    else the calibration images; never the test split, which must stay unseen until the chosen
    artifact is verified on it.

    Stratified, not the first ``limit``: a folder's split is ordered by class, so the first 1,000
    of CIFAR-10's 7,500 validation images are 750 airplanes and 250 automobiles.
    """
    if run.val_x is not None and len(run.val_x):
        index = stratified_indices(run.val_y, limit, seed=0, total=len(run.val_x))
        kind = "stratified sample" if run.val_y is not None else "random sample"
        y = None if run.val_y is None else run.val_y[index]
        return run.val_x[index], y, f"validation split ({kind} of {len(index)} images)"
    count = min(limit, len(run.calibration))
    return (run.calibration[:limit], None,
            f"calibration images ({count}; the source has no validation split)")


def check_data_scores(run: RunData, limit: int = 1000):
    """:func:`check_data` and the reference (Keras) model's scores on it: (x, y or None, where,
    scores), what every choice made on the check slice compares against."""
    x, y, where = check_data(run, limit)
    return x, y, where, run.model.predict(x, batch_size=256, verbose=0)


def artifact_scores(path: Path, x: np.ndarray, workers: int | None = None,
                    target: str = "cpu", reference_kernels: bool = False) -> np.ndarray:
    """Scores of the artifact at ``path`` on ``x``, in its runtime on ``target`` (default cpu),
    64 images per call; ``reference_kernels`` (a .tflite on the cpu): LiteRT's reference
    kernels (``BUILTIN_REF``) instead of XNNPACK.

    ``x`` is cut into ``workers`` (default: every usable core) contiguous shards, each run by a
    session of its own with 1 thread, in a thread of its own: LiteRT and ONNX Runtime release
    the GIL while they compute, and kernels without a multi-threaded path (LiteRT's int16x8
    reference kernels, the slowest of all to verify) get every core that way. Each image's
    scores do not depend on the shard it ran in. TFLite Micro (``mcu``) holds the GIL while it
    computes, so it runs as one shard."""
    from edgecv.runtime import open_backend, usable_cores

    workers = 1 if target == "mcu" else max(1, min(workers or usable_cores(), len(x) // 64))

    def score(part: np.ndarray, threads: int | None) -> np.ndarray:
        # just written: conversion.json is older, so no checksum to check against
        if reference_kernels:
            from edgecv.runtime.litert import LiteRTBackend

            backend = LiteRTBackend(path, threads=threads, checksum="off", reference_kernels=True)
        else:
            backend = open_backend(path, target=target, checksum="off", threads=threads)
        with backend:
            return np.concatenate([backend.run(part[i:i + 64]) for i in range(0, len(part), 64)])

    if workers == 1:
        return score(x, None)
    with ThreadPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(score, np.array_split(x, workers),
                                            [1] * workers)))


def verify_artifact(row: ConversionRow, path: Path, run: RunData,
                    keras_scores: np.ndarray) -> ConversionRow:
    """Run ``path`` in its runtime on the test split; ``row`` gets accuracy (None when the data
    has no labels), top-1 agreement with the reference scores, and output difference
    (:func:`verify_scores`)."""
    return verify_scores(row, artifact_scores(path, run.test_x), run, keras_scores)


def verify_scores(row: ConversionRow, scores: np.ndarray, run: RunData,
                  keras_scores: np.ndarray) -> ConversionRow:
    """An artifact's ``scores`` on the test split against the reference model's, into its
    ``row``: accuracy (None when the data has no labels), top-1 agreement, output difference,
    what the disagreements are and, with labels, the per-class rows."""
    diff = np.abs(scores - keras_scores)
    predicted, expected = scores.argmax(1), keras_scores.argmax(1)
    row.accuracy = None if run.test_y is None else float((predicted == run.test_y).mean())
    row.agreement = float((predicted == expected).mean())
    row.max_abs_diff = float(diff.max())
    row.mean_abs_diff = float(diff.mean())
    row.disagreements = disagreements(scores, keras_scores, run.test_y)
    if run.test_y is not None:
        row.per_class = per_class_rows(predicted, expected, run.test_y, run.labels)
        row.worst_class = worst_class(row.per_class)
    return row


def _drops(accuracy: float | None, agreement: float,
           reference_accuracy: float | None) -> tuple[float | None, float]:
    """(accuracy drop, agreement drop) vs the reference in percentage points: the first None
    when the data has no labels, the second 100 - agreement %."""
    accuracy_drop = (None if reference_accuracy is None or accuracy is None
                     else round(100 * (reference_accuracy - accuracy), 3))
    return accuracy_drop, round(100 * (1 - agreement), 3)


def score_drops(row: ConversionRow, keras_accuracy: float | None) -> ConversionRow:
    """Add to a verified row its drops vs the reference, in percentage points: accuracy (None
    when the data has no labels) and agreement (100 - agreement %)."""
    row.accuracy_drop_pp, row.agreement_drop_pp = _drops(row.accuracy, row.agreement,
                                                         keras_accuracy)
    return row


@dataclass(frozen=True)
class SliceFigures:
    """Top-1 figures of some scores against a reference model's on the same images: accuracy
    (None without labels), agreement, and the drops in percentage points that :class:`Budget`
    judges. What the choices between quantization settings and ``--recover``'s steps are made
    on (:func:`slice_row`), and each part of an int8 rounding split
    (:func:`edgecv.converters.rounding.rounding_split`)."""

    accuracy: float | None
    agreement: float
    accuracy_drop_pp: float | None
    agreement_drop_pp: float

    @classmethod
    def from_record(cls, record: dict) -> SliceFigures:
        """The figures of a record that holds them among others (a rounding split's part)."""
        return cls(**{f.name: record[f.name] for f in fields(cls)})

    def to_dict(self) -> dict:
        """The figures as a record stores them (accuracy, agreement, then the drops)."""
        return asdict(self)


def slice_row(scores: np.ndarray, y: np.ndarray | None, reference: np.ndarray) -> SliceFigures:
    """Agreement (and accuracy with labels) of ``scores`` against the ``reference`` model's on
    a slice (:func:`check_data`), with the drops :class:`Budget` judges: what the choices
    between quantization settings and ``--recover``'s steps are made on."""
    predicted = scores.argmax(1)
    accuracy = None if y is None else float((predicted == y).mean())
    agreement = float((predicted == reference.argmax(1)).mean())
    reference_accuracy = None if y is None else float((reference.argmax(1) == y).mean())
    return SliceFigures(accuracy, agreement, *_drops(accuracy, agreement, reference_accuracy))


# what a budget judges: an artifact's row, or the figures of a candidate on a slice
Judged = ConversionRow | SliceFigures


def budget_drop(row: Judged) -> float | None:
    """The drop ``--max-drop`` judges: the accuracy drop when the data has labels, else the
    agreement drop; None for a row that was not verified."""
    if row.accuracy_drop_pp is not None:
        return row.accuracy_drop_pp
    return row.agreement_drop_pp


@dataclass(frozen=True)
class Budget:
    """What an artifact may lose against the reference model: ``max_drop`` (``--max-drop``,
    percentage points of accuracy; of agreement when the data has no labels) and, optionally,
    ``min_agreement`` (``--min-agreement``, the share of images, in percent, on which its top-1
    must match the reference's). The second exists because the first cannot see churn: an int8
    model can keep its accuracy while changing its answer on 2% of the images, fixing as many as
    it breaks, and a user who swaps a deployed model wants the answers it gave."""
    max_drop: float = 1.0
    min_agreement: float | None = None

    def __post_init__(self) -> None:
        if not self.max_drop >= 0:
            raise UsageError(f"`max_drop` must be 0 or more, received {self.max_drop}.")
        if self.min_agreement is not None and not 0 < self.min_agreement <= 100:
            raise UsageError(f"`min_agreement` is a percentage in (0, 100], received "
                             f"{self.min_agreement}.")

    def misses(self, row: Judged) -> str | None:
        """Why a verified row is over budget, as the end of a sentence (``"lost 0.80 pp of
        accuracy ..., more than --max-drop 0.5"``); None when it fits or was not verified."""
        drop = budget_drop(row)
        if drop is None:
            return None
        if drop > self.max_drop + 1e-9:
            what = "accuracy" if row.accuracy_drop_pp is not None else "agreement"
            return (f"lost {drop:.2f} pp of {what} vs the reference, more than `max_drop` "
                    f"{self.max_drop}")
        if self.min_agreement is not None and 100 * row.agreement < self.min_agreement - 1e-9:
            return (f"agrees with the reference on {100 * row.agreement:.2f}% of the images, "
                    f"under `min_agreement` {self.min_agreement}")
        return None

    def fits(self, row: Judged) -> bool:
        """A verified row within both limits."""
        return budget_drop(row) is not None and self.misses(row) is None

    def describe(self) -> str:
        """The budget in words, for log lines."""
        return f"{self.max_drop} pp" + (f" and {self.min_agreement}% agreement"
                                        if self.min_agreement is not None else "")


def figures(row: ConversionRow) -> str:
    """A verified row's figures on one log line: accuracy and its drop, agreement, max |diff|,
    the worst class, what the disagreements are."""
    accuracy = ("acc -" if row.accuracy is None else
                f"acc {row.accuracy:.4f} (drop {row.accuracy_drop_pp:+.2f} pp)")
    worst = row.worst_class
    worst = f"  worst class {worst['class']} {0.0 - worst['drop_pp']:+.1f} pp" if worst else ""
    flips = disagreements_text(row.disagreements)
    return (f"{accuracy}  agreement {row.agreement:.4f}  max|diff| "
            f"{row.max_abs_diff:.4f}{worst}" + (f"  ({flips})" if flips else ""))
