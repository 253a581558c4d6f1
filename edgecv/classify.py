"""Image in, labels out: the deployed classification path shared by ``predict`` and ``camera``.

A :class:`Classifier` wraps one runtime backend (:func:`edgecv.runtime.open_backend`) with the
model card's preprocessing (fit, colour and resize, then one lookup in the pixel table of
:meth:`~edgecv.preprocessing.Preprocessing.pixel_table`: the values of
:func:`edgecv.preprocessing.prepare_image`, quantized for a model with integer input), its
inference call (:attr:`Classifier.infer`) and top-k decoding. Bench, predict and camera all go
through it; :func:`predict_images` is ``edgecv predict``'s loop (one :class:`Prediction` per
image file or array; an image that cannot be read is a Prediction with ``error``, the others go
on).
numpy + OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from edgecv.errors import DataError, ModelFileError, UsageError
from edgecv.images import read_image
from edgecv.preprocessing import FIT_MODES, Preprocessing, apply_pixel_table, prepare_pixels
from edgecv.runtime.base import Backend, quantize


@dataclass(frozen=True)
class ClassScore:
    """One class of a prediction's top-k and its score."""

    label: str
    score: float

    def to_dict(self) -> dict:
        return {"label": self.label, "score": self.score}


@dataclass
class Prediction:
    """The top-k classes of one image, best first, and the inference time in ms; for an image
    given by path, the path, and ``error`` (the rest None) if it could not be classified."""

    label: str | None
    score: float | None
    top_k: list[ClassScore] = field(default_factory=list)
    ms: float | None = None
    path: str | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        """The ``edgecv predict --json`` line: ``{"path", "label", "score", "top_k", "ms"}``
        (``path`` only for an image given by path), or ``{"path", "error"}``."""
        where = {} if self.path is None else {"path": self.path}
        if self.error is not None:
            return {**where, "error": self.error}
        return {**where, "label": self.label, "score": self.score,
                "top_k": [choice.to_dict() for choice in self.top_k], "ms": self.ms}


def top_k(scores: np.ndarray, labels: list[str], k: int = 3, threshold: float = 0.0) -> list[dict]:
    """The ``k`` best ``{"label", "score"}`` of one score vector with score >= ``threshold``,
    best first (ties keep class order). Defaults: k=3, threshold 0."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(labels) != len(scores):
        raise UsageError(f"the model has {len(scores)} outputs but {len(labels)} labels were given.")
    order = np.argsort(-scores, kind="stable")[:max(k, 0)]
    return [{"label": labels[i], "score": round(float(scores[i]), 6)} for i in order
            if scores[i] >= threshold]


class Classifier:
    """Classify decoded OpenCV images with ``backend``.

    Args:
        backend: an open runtime backend.
        labels: class names; default the model card's.
        preprocessing: default the model card's.
        fit: how a frame of another aspect is fitted (crop, letterbox, stretch; default crop).
        k: how many classes to report (default 3); threshold: minimum score (default 0).
    """

    def __init__(self, backend: Backend, *, labels: list[str] | None = None,
                 preprocessing: Preprocessing | None = None, fit: str = "crop", k: int = 3,
                 threshold: float = 0.0):
        card = backend.card
        if labels is None and card is not None:
            labels = card.labels
        if preprocessing is None and card is not None:
            preprocessing = card.preprocessing
        if labels is None or preprocessing is None:
            raise UsageError(f"'{backend.path}' carries no edgecv model card: give `labels` and "
                             "convert it with edgecv so its preprocessing travels with it.")
        if k < 1:
            raise UsageError(f"`top_k` must be at least 1, received {k}.")
        if fit not in FIT_MODES:
            raise UsageError(f"`fit` must be one of {', '.join(FIT_MODES)}, received '{fit}'.")
        if not 0.0 <= threshold <= 1.0:
            raise UsageError(f"`threshold` must be between 0 and 1, received {threshold}.")
        self.backend = backend
        self.labels = list(labels)
        self.preprocessing = preprocessing
        self.fit = fit
        self.k = k
        self.threshold = threshold
        # Normalising a uint8 pixel (and quantizing it, for a model that takes integers) is a
        # map of 256 values: the batch is one table lookup, already in the model's own type,
        # and finite by construction, so the backend skips the NaN scan and the quantization.
        quantization = backend.input_quantization
        self._table = preprocessing.pixel_table(
            None if quantization is None else lambda x: quantize(x, *quantization))
        if self._table.dtype.kind == "f" and not np.isfinite(self._table).all():
            raise UsageError(f"the preprocessing of '{backend.path.name}' turns some pixel "
                             "values into NaN or inf; check its mean/std.")
        self.infer = backend.run_prepared

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One decoded image -> a (1, H, W, C) batch of what :attr:`infer` takes: float32, or
        the model's integers for a model with integer input (the same values as
        :func:`~edgecv.preprocessing.prepare_image`, then the backend's quantization)."""
        return apply_pixel_table(prepare_pixels(image, self.preprocessing, self.fit),
                                 self._table)[None]

    def decode(self, scores: np.ndarray, ms: float | None = None) -> Prediction:
        """One score vector -> a Prediction (label/score None if nothing passes the threshold)."""
        best = [ClassScore(**choice) for choice in top_k(scores, self.labels, self.k,
                                                          self.threshold)]
        return Prediction(best[0].label if best else None, best[0].score if best else None,
                          best, None if ms is None else round(ms, 4))

    def classify(self, image: np.ndarray) -> Prediction:
        """Prepare, run (timed) and decode one image."""
        from edgecv.timing import timed

        scores, ms = timed(self.infer, self.prepare(image))
        return self.decode(scores[0], ms)


def _failed(path: str | None, error: str) -> Prediction:
    return Prediction(None, None, path=path, error=error)


def predict_images(classifier: Classifier,
                   images: Iterable[Path | str | np.ndarray]) -> Iterator[Prediction]:
    """One :class:`~edgecv.classify.Prediction` per image file or decoded image (a numpy array,
    as ``cv2.imread`` gives it), in order. A file that cannot be read, or an image whose pixels
    the model cannot take (e.g. a gray+alpha image, which no conversion rule covers), is a
    Prediction with ``error`` set; the others go on."""
    for item in images:
        path = None if isinstance(item, np.ndarray) else str(item)
        if path is None:
            image = item
        else:
            try:
                image = read_image(item)
            except DataError as exc:
                yield _failed(path, str(exc))
                continue
        try:
            prediction = classifier.classify(image)
        except (DataError, ModelFileError) as exc:  # preprocessing, or the runtime on this input
            yield _failed(path, str(exc) if path is None else f"{path}: {exc}")
            continue
        yield dataclasses.replace(prediction, path=path)

