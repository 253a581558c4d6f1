"""What a conversion reads: a training run directory or a model file -> one :class:`RunData`.

:func:`load_run` re-creates a run's seeded split (config.json, split.json); a model that edgecv
did not train goes through :func:`edgecv.converters.sources.load_model_source`;
:func:`load_source` picks between them and applies ``--calib-data``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from edgecv.converters.calibration import load_calibration, train_split_calibration
from edgecv.converters.rundata import RunData
from edgecv.errors import UsageError
from edgecv.preprocessing import Preprocessing
from edgecv.rundir import RunDir


def load_run(run_dir: str | Path, calib_samples: int = 300) -> RunData:
    """Load a run's model and re-create its seeded split: a class-stratified sample of the TRAIN
    split calibrates, the validation split picks the ONNX calibration method, the test split
    verifies (split.json is checked, so calibration can never hold a test image)."""
    from edgecv.data import load_dataset
    from edgecv.modelfile.keras_file import load_keras_model

    run_dir = Path(run_dir)
    files = RunDir(run_dir)
    if not run_dir.exists():
        raise UsageError(f"run directory '{run_dir}' does not exist.")
    if not files.is_run():
        raise UsageError(f"'{run_dir}' is not an edgecv run directory (no config.json written "
                         "by edgecv train); train one with `edgecv train` first.")
    if calib_samples < 1:
        raise UsageError(f"`calib_samples` must be at least 1, received {calib_samples}.")
    config = json.loads(files.config.read_text())
    pre = Preprocessing.from_dict(config["preprocessing"])
    model = load_keras_model(files.model)
    data = config["data"]
    spec = data.get("path") or data["name"]  # a folder or archive by path, else a name
    dataset = load_dataset(spec, pre.height, pre.width, pre.channels,
                           val_split=data["val_split"], test_split=data["test_split"],
                           seed=data["seed"])
    split = json.loads(files.split.read_text()) if files.split.is_file() else None
    if split is not None and split["test"] != dataset.test.ids:
        raise UsageError(f"the data behind '{run_dir}' changed since training: its test split no "
                         "longer matches split.json, so verification would not be honest.")
    labels = list(config["labels"])
    calibration = train_split_calibration(dataset, pre, calib_samples, data["seed"], spec, labels)
    return RunData(run_dir, model, labels, pre, calibration.x,
                   pre.normalize(dataset.test.x), dataset.test.y, dataset.test.x,
                   list(dataset.test.ids), calibration_info=calibration.record(),
                   val_x=pre.normalize(dataset.val.x) if len(dataset.val) else None,
                   val_y=dataset.val.y if len(dataset.val) else None,
                   train=dataset.train, train_config=config["train"])


def load_source(source: str | Path, calib_samples: int = 300, options=None,
                log: Callable[[str], None] = print, calib_data: str | None = None) -> RunData:
    """A run directory (:func:`load_run`) or a model that edgecv did not train
    (:func:`edgecv.converters.sources.load_model_source`, read with ``options``, a
    :class:`~edgecv.converters.sources.ModelOptions`). Default: 300 calibration samples from the
    source's own training data; ``calib_data`` (same forms as ``--data``) replaces them
    (:func:`edgecv.converters.calibration.load_calibration`)."""
    from edgecv.converters.sources import ModelOptions, load_model_source
    from edgecv.modelfile.kinds import is_keras_source

    options = options or ModelOptions()
    if is_keras_source(source):
        run = load_model_source(source, options, calib_samples=calib_samples, log=log)
    else:
        run = _load_run_source(source, calib_samples, options)
    if calib_data is not None:
        calibration = load_calibration(calib_data, run.preprocessing, run.labels, calib_samples,
                                       seed=options.seed)
        run.calibration, run.calibration_info = calibration.x, calibration.record()
    return run


def _load_run_source(source, calib_samples: int, options) -> RunData:
    if not Path(source).exists():
        raise UsageError(f"'{source}' does not exist; give a run directory written by `edgecv "
                         "train` or a model (.keras, .h5, a SavedModel directory, a .json config "
                         "with `weights`).")
    if not RunDir(source).is_run():
        raise UsageError(f"'{source}' is not an edgecv run directory (no config.json written by "
                         "edgecv train) nor a model (.keras, .h5, a SavedModel directory, a .json "
                         "config with `weights`).")
    given = [f"`{name}`" for name in options.given()]
    if given:
        raise UsageError(f"'{source}' is an edgecv run: its config.json fixes the preprocessing, "
                         f"labels and data, so {', '.join(given)} apply to model files only.")
    return load_run(source, calib_samples)
