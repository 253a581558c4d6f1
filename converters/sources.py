"""Models that edgecv did not train: a model file + flags + data -> the same RunData a run gives.

A run directory carries its preprocessing contract, labels and data (``config.json``,
``split.json``). A bare model does not, so :func:`load_model_source` assembles them:

- the model: ``.keras``, legacy ``.h5``, a JSON config + ``--weights``, or a SavedModel directory
  (:mod:`edgecv.modelfile`, always ``safe_mode``; Lambda layers refused), with
  ``--custom-objects FILE.py[:Name,...]`` for custom layers and models;
- the contract: height, width and channels from the model's input shape where it is fixed,
  otherwise ``--img-size`` / ``--channels``; the normalisation from ``--scale`` (``1/255`` is
  accepted) and/or ``--mean`` / ``--std``. Nothing is guessed: whatever is still unknown is one
  error that lists every missing flag;
- the data (``--data``): the training sources (digits, a Keras dataset, an image folder; their
  train split calibrates, their test split verifies) or an ``.npz`` with ``x`` and optional
  ``y`` (uint8 images go through the contract, float arrays are taken as normalised model
  input; every sample verifies and up to ``calib_samples`` of them calibrate);
- the labels: ``--labels FILE`` (one name per line, in output order), else the data's class
  names when their count matches the model's outputs, else ``class_0 .. class_{N-1}`` with a
  warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgecv.converters.calibration import (Calibration, per_class_counts, stratified_indices,
                                          train_split_calibration)
from edgecv.converters.npz import read_npz
from edgecv.converters.rundata import RunData
from edgecv.errors import DataError, UsageError
from edgecv.preprocessing import Preprocessing, normalisation_from_flags
from edgecv.modelfile.keras_file import load_custom_objects, load_keras_model
from edgecv.modelfile.kinds import SAVED_MODEL_FILE, model_export_dir, model_format
from edgecv.modelfile.reference import reference_of
from edgecv.modelfile.saved_model import load_saved_model

DATA_HINT = "digits, mnist, fashion_mnist, cifar10, an image folder, or an .npz with x (and y)"


@dataclass(frozen=True)
class ModelOptions:
    """How to read a model that has no run directory; None means "not given".

    ``scale``, ``mean`` and ``std`` accept numbers or the CLI's text (``"1/255"``,
    ``"0.5,0.5,0.5"``); ``labels`` and ``custom_objects`` are file paths (``custom_objects``
    may end in ``:ClassA,ClassB``). ``seed`` (default 0) fixes the data split and the
    calibration sample.
    """

    data: str | None = None
    weights: str | None = None
    custom_objects: str | None = None
    img_size: int | None = None
    channels: int | None = None
    scale: str | float | None = None
    mean: str | Sequence[float] | None = None
    std: str | Sequence[float] | None = None
    labels: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:  # refuse bad values before any model is loaded
        if self.scale is not None:
            parse_scale(self.scale)
        for flag, value in (("`mean`", self.mean), ("`std`", self.std)):
            if value is not None:
                parse_floats(value, flag)
        if self.channels is not None and self.channels not in (1, 3):
            raise UsageError(f"`channels` must be 1 or 3, received {self.channels}.")
        if self.img_size is not None and self.img_size < 8:
            raise UsageError(f"`img_size` must be at least 8, received {self.img_size}.")

    def given(self) -> list[str]:
        """The names of the options that were set (seed excluded)."""
        return [f.name for f in fields(self)
                if f.name != "seed" and getattr(self, f.name) is not None]


def parse_scale(value: str | float) -> float:
    """``--scale``: a positive number, or a fraction written ``1/255``."""
    text = str(value).strip()
    try:
        if "/" in text:
            numerator, denominator = text.split("/")
            scale = float(numerator) / float(denominator)
        else:
            scale = float(text)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"`scale` must be a number or a fraction like 1/255, received "
                         f"'{value}'.") from None
    if not math.isfinite(scale) or scale <= 0:
        raise UsageError(f"`scale` must be positive and finite, received '{value}'.")
    return scale


def parse_floats(value: str | Sequence[float], flag: str) -> tuple[float, ...]:
    """``--mean`` / ``--std``: one number or a comma-separated list (one per channel)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        numbers = tuple(float(str(v).strip()) for v in items)
    except ValueError:
        raise UsageError(f"{flag} must be a number or a comma-separated list like 0.5,0.5,0.5, "
                         f"received '{value}'.") from None
    if not numbers or not all(math.isfinite(n) for n in numbers):
        raise UsageError(f"{flag} must be finite numbers, received '{value}'.")
    return numbers


# --- the model ------------------------------------------------------------------------------------

def load_model(path: str | Path, options: ModelOptions):
    """The model at ``path`` (a Keras model or a
    :class:`~edgecv.modelfile.saved_model.SavedModelReference`) and its format name."""
    kind = model_format(path)
    if kind == "savedmodel":
        if options.custom_objects or options.weights:
            flag = "`custom_objects`" if options.custom_objects else "`weights`"
            raise UsageError(f"{flag} does not apply to a SavedModel ('{path}'): it carries its "
                             "weights and traced graphs, no Python classes.")
        return load_saved_model(path), kind
    custom = load_custom_objects(options.custom_objects) if options.custom_objects else None
    return load_keras_model(path, custom_objects=custom, weights=options.weights), kind


# --- the contract ---------------------------------------------------------------------------------

def resolve_contract(path: str | Path, image_shape, options: ModelOptions) -> Preprocessing:
    """The preprocessing contract from the model's input shape and the flags; one UsageError
    lists everything still missing (including ``--data``)."""
    height, width, channels = image_shape
    if options.img_size is not None:
        if any(d is not None and d != options.img_size for d in (height, width)):
            raise UsageError(f"`img_size` {options.img_size} contradicts the model's input "
                             f"{height}x{width}; leave it out (the model fixes it).")
        height = width = options.img_size
    if options.channels is not None:
        if channels is not None and channels != options.channels:
            raise UsageError(f"`channels` {options.channels} contradicts the model's input, "
                             f"which has {channels} channel(s); leave it out.")
        channels = options.channels
    normalisation = normalisation_from_flags(
        parse_scale(options.scale) if options.scale is not None else None,
        parse_floats(options.mean, "`mean`") if options.mean is not None else None,
        parse_floats(options.std, "`std`") if options.std is not None else None)
    scale, mean, std = normalisation or (None, None, None)
    missing = []
    if height is None or width is None:
        missing.append("`img_size` N (the model's input height/width are not fixed)")
    if channels is None:
        missing.append("`channels` 1|3 (the model's input channels are not fixed)")
    if scale is None:
        missing.append("`scale` (e.g. `scale=1/255`) and/or `mean` and `std` (the "
                       "normalisation the model was trained with)")
    if options.data is None:
        missing.append(f"`data` ({DATA_HINT}) for calibration and verification")
    if missing:
        known = "x".join("?" if d is None else str(d) for d in (height, width, channels))
        raise UsageError(f"'{path}' is not an edgecv run, so the preprocessing contract and the "
                         f"data come from flags (the model's input gives {known}); missing: "
                         f"{'; '.join(missing)}.")
    return Preprocessing(height, width, channels, scale=scale, mean=mean or (0.0,),
                         std=std or (1.0,))


# --- data -----------------------------------------------------------------------------------------

@dataclass
class ModelData:
    """Calibration and verification data for a model source."""

    calibration: np.ndarray  # float32, normalised
    test_x: np.ndarray  # float32, normalised
    test_y: np.ndarray | None
    test_images: np.ndarray | None  # uint8 when the data is images
    test_ids: list
    labels: list[str] | None  # the data's class names, if it has them
    description: str
    calibration_info: dict | None = None  # what calibrated (conversion.json)
    val_x: np.ndarray | None = None  # normalised; picks the ONNX calibration method
    train: object | None = None  # edgecv.data.Split: what quantization-aware training uses
    val_y: np.ndarray | None = None  # val_x's labels: the slice that chooses is stratified by them


def load_npz(path: str | Path, pre: Preprocessing, num_classes: int, calib_samples: int,
             seed: int = 0) -> ModelData:
    """An .npz (:func:`edgecv.converters.npz.read_npz`: uint8 images or float normalised model
    input, optional ``y``, ``labels``, ``ids``): every sample verifies, up to ``calib_samples``
    of them (stratified by class when labelled) calibrate."""
    path = Path(path)
    data = read_npz(path, pre, num_classes)
    count = len(data.x)
    order = stratified_indices(data.y, calib_samples, seed, total=count)
    calibration = Calibration(data.x[order], str(path), "all samples (they also verify)",
                              per_class_counts(None if data.y is None else data.y[order],
                                               data.labels or [str(i) for i in range(num_classes)]))
    ids = data.ids if data.ids and len(data.ids) == count else [str(i) for i in range(count)]
    return ModelData(data.x[order], data.x, data.y, data.images, ids, data.labels,
                     f"{path}: all {count} samples verify, {len(order)} of them calibrate"
                     f"{'' if data.y is not None else ' (no labels: agreement only)'}",
                     calibration.record())


def load_model_data(spec: str, pre: Preprocessing, num_classes: int, calib_samples: int,
                    seed: int = 0) -> ModelData:
    """``--data`` for a model source: an .npz (:func:`load_npz`) or a training source
    (:func:`edgecv.data.load_dataset` at the contract's size; train split -> calibration,
    test split -> verification)."""
    if str(spec).lower().endswith(".npz"):
        return load_npz(spec, pre, num_classes, calib_samples, seed)
    from edgecv.data import load_dataset

    dataset = load_dataset(str(spec), pre.height, pre.width, pre.channels, seed=seed)
    if len(dataset.test) == 0:
        raise DataError(f"dataset '{spec}' left no test images after the split.")
    calibration = train_split_calibration(dataset, pre, calib_samples, seed, spec)
    return ModelData(calibration.x, pre.normalize(dataset.test.x),
                     dataset.test.y, dataset.test.x, list(dataset.test.ids), list(dataset.labels),
                     f"{spec}: {len(calibration.x)} training-split images calibrate, the "
                     f"{len(dataset.test)} test-split images verify (seed {seed})",
                     calibration.record(),
                     pre.normalize(dataset.val.x) if len(dataset.val) else None,
                     dataset.train, dataset.val.y if len(dataset.val) else None)


def resolve_labels(labels_file: str | None, data: ModelData, num_classes: int,
                   log: Callable[[str], None]
                   ) -> tuple[list[str], Callable[[np.ndarray | None], np.ndarray | None], str]:
    """(labels in output order, what re-indexes the data's y (test, validation) to them,
    where they came from)."""
    def same(y: np.ndarray | None) -> np.ndarray | None:
        return y

    if labels_file is not None:
        from edgecv.io import read_labels

        path = Path(labels_file)
        labels = read_labels(path)
        if len(labels) != num_classes:
            raise UsageError(f"`labels` '{path}' has {len(labels)} names, but the model outputs "
                             f"{num_classes} scores; give one name per output, in output order.")
        if data.labels and data.labels != labels and data.test_y is not None:
            if set(data.labels) <= set(labels):  # the data's classes, matched by name
                index = np.asarray([labels.index(name) for name in data.labels], np.int64)

                def by_name(y: np.ndarray | None) -> np.ndarray | None:
                    return None if y is None else index[y]
                return labels, by_name, "--labels"
            elif len(data.labels) == num_classes:
                log(f"warning: the data's class names {data.labels[:5]} differ from `labels` "
                    f"{labels[:5]}; assuming the same order (class i of the data = output i)")
            else:
                raise DataError(f"the data has {len(data.labels)} classes that are not all in "
                                f"`labels` '{path}'; they cannot be matched to the outputs.")
        return labels, same, "--labels"
    if data.labels:
        if len(data.labels) != num_classes:
            raise DataError(
                f"the data has {len(data.labels)} classes ({', '.join(data.labels[:5])}"
                f"{', ...' if len(data.labels) > 5 else ''}) but the model outputs {num_classes} "
                f"scores; give `labels` with {num_classes} names that include the data's classes.")
        return list(data.labels), same, "data"
    labels = [f"class_{i}" for i in range(num_classes)]
    log(f"warning: no `labels`: the model card names the {num_classes} outputs class_0.."
        f"class_{num_classes - 1}; pass `labels` labels.txt (one name per line, in output order)")
    return labels, same, "default (class_i)"


# --- all together ---------------------------------------------------------------------------------

def load_model_source(path: str | Path, options: ModelOptions, *, calib_samples: int = 300,
                      log: Callable[[str], None] = print) -> RunData:
    """Load a model that edgecv did not train, with its contract, data and labels, as the
    :class:`RunData` that :func:`edgecv.converters.convert.convert_run` consumes.

    Defaults: 300 calibration samples; output directory ``<model stem>_export`` beside the
    model; the card's ``source_run`` is the model's path."""
    if calib_samples < 1:
        raise UsageError(f"`calib_samples` must be at least 1, received {calib_samples}.")
    path = Path(path)
    if path.name == SAVED_MODEL_FILE:
        path = path.parent
    model, kind = load_model(path, options)
    reference = reference_of(model, path)
    pre = resolve_contract(path, reference.image_shape(), options)
    # A subclassed model, or one with a dynamic height/width, gets a fixed-shape input, so every
    # converter sees the same (H, W, C).
    model = reference.with_image_shape(pre.input_shape)
    reference = reference_of(model, path)
    num_classes = reference.num_classes()
    data = load_model_data(options.data, pre, num_classes, calib_samples, options.seed)
    warnings: list[str] = []

    def note(line: str) -> None:
        if line.startswith("warning:"):
            warnings.append(line.removeprefix("warning: "))
        log(line)

    labels, to_outputs, labels_from = resolve_labels(options.labels, data, num_classes, note)
    notes = {"kind": kind, "path": str(path.resolve()), "reference": reference.description,
             "weights": str(Path(options.weights).resolve()) if options.weights else None,
             "custom_objects": options.custom_objects, "data": str(options.data),
             "data_use": data.description, "labels_from": labels_from, "warnings": warnings}
    return RunData(path, model, labels, pre, data.calibration, data.test_x,
                   to_outputs(data.test_y),
                   data.test_images, data.test_ids, default_out=model_export_dir(path).path,
                   notes=notes, calibration_info=data.calibration_info or {}, val_x=data.val_x,
                   val_y=to_outputs(data.val_y), train=data.train)
