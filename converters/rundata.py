"""The one input of a conversion: :class:`RunData`, what every converter, verifier and the
recovery search read, whether it came from a training run or from a model file.

It imports nothing of the converters, so any of them can use it (loading:
:mod:`edgecv.converters.load`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecv.preprocessing import Preprocessing


@dataclass
class RunData:
    """What a conversion needs, from a training run or from a model file: ``source`` is the run
    directory or the model file (or SavedModel directory) it was read from, ``model`` a Keras
    model or a :class:`~edgecv.modelfile.saved_model.SavedModelReference`."""

    source: Path
    model: object
    labels: list[str]
    preprocessing: Preprocessing
    calibration: np.ndarray  # float32, normalised
    test_x: np.ndarray  # float32, normalised
    test_y: np.ndarray | None  # None: the data has no labels, verification is agreement only
    test_images: np.ndarray | None = None  # uint8, as loaded (written to testset.npz)
    test_ids: list | None = None
    default_out: Path | None = None  # None: RunDir(source).export
    notes: dict = field(default_factory=dict)  # how a model file was read (conversion.json)
    calibration_info: dict = field(default_factory=dict)  # what calibrated (conversion.json)
    val_x: np.ndarray | None = None  # float32, normalised; picks the ONNX calibration method
    val_y: np.ndarray | None = None  # its labels: the slice that picks is stratified by them
    train: object | None = None  # edgecv.data.Split: the images quantization-aware training uses
    train_config: dict | None = None  # a run's "train" config: QAT augments as training did
