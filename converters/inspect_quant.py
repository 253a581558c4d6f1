"""``edgecv inspect SOURCE`` (``edgecv.inspect``): which layers lose most when the model is
quantized.

SOURCE is a run directory, a model file (``.keras``, ``.h5``, a SavedModel, a JSON config with
``--weights``; read like ``edgecv convert`` reads it) or a float ``.tflite`` file. Two
independent views, each ranked worst first and written to a CSV beside the other artifacts:

- the TF converter's ``QuantizationDebugger`` (:mod:`edgecv.converters.quant_debug`: RMSE in
  quantization steps, SQNR), which needs the TensorFlow model, so not for a bare ``.tflite``;
- Google's AI Edge Quantizer (:mod:`edgecv.converters.aeq`: SNR, cosine similarity, MSE per
  tensor), which works on the ``.tflite`` itself: the model's fp32 TFLite conversion, or the
  given file. Skipped, with the install line, when ``ai-edge-quantizer`` is not installed.

And for a Keras model, the int8 rounding of its weights and of its activations apart
(:mod:`edgecv.converters.rounding`), on the validation split (up to ``ROUNDING_IMAGES``): which
of the two to mend before asking which layer.

Images: the source's calibration split (a run's TRAIN split; ``--data`` for a model file). For
a ``.tflite``: its model card fixes the preprocessing (an edgecv artifact) and its source run
gives the images unless ``--data`` is given; a file without a card needs ``--data`` and the
normalisation flags, as a Keras model file does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edgecv.converters import aeq
from edgecv.converters.sources import ModelOptions, load_model_data, resolve_contract
from edgecv.errors import EdgecvError, ModelFileError, UsageError
from edgecv.results import DebuggerRow, Inspection, QuantizerRow

# the held-out images the rounding split is measured on: at 1,000 one flip is 0.1%
ROUNDING_IMAGES = 5000


def inspect_quant(source: str | Path, options: ModelOptions | None = None, samples: int = 64,
                  activation_bits: int = 8, out_dir: str | Path | None = None,
                  log: Callable[[str], None] = print) -> Inspection:
    """Every view for ``source`` with ``samples`` sample images (at least 100 calibrate), each
    written to its CSV in ``out_dir`` (default: RUN/export, or beside the model) once all
    have run."""
    options = options or ModelOptions()
    if samples < 1:
        raise UsageError(f"`samples` must be at least 1, received {samples}.")
    calib_samples = max(samples, 100)
    if str(source).lower().endswith(".tflite"):
        out = Path(out_dir) if out_dir else Path(source).resolve().parent
        _check_outputs(out)
        model, calibration, images = _tflite_source(Path(source), options, calib_samples, log)
        result = Inspection(source=str(source), images=images, activations=activation_bits)
        result.skipped["debugger"] = ("the TF QuantizationDebugger needs the TensorFlow model; "
                                      "pass the run or the model file for it")
        result.skipped["rounding"] = ("the int8 rounding apart needs the Keras model (it moves "
                                      "its weights); pass the run or the model file for it")
    else:
        from edgecv.converters.fuse import export_run
        from edgecv.converters.load import load_source
        from edgecv.converters.quant_debug import layer_errors
        from edgecv.converters.rounding import rounding_split
        from edgecv.converters.stem import int8_form
        from edgecv.converters.tflite import to_tflite_fp32
        from edgecv.converters.verify import check_data_scores
        from edgecv.rundir import RunDir

        run, _ = export_run(load_source(source, calib_samples, options, log), log)  # as convert
        calibration = run.calibration
        int8_model, rounded = int8_form(run.model, calibration)  # what convert's int8 files use
        for line in rounded:
            log(f"int8 form: {line}")
        out = Path(out_dir or run.default_out or RunDir(run.source).export.path)
        result = Inspection(source=str(source), images=(run.calibration_info or {}).get(
            "source", "the source's calibration split"), activations=activation_bits)
        _check_outputs(out)
        result.debugger = [DebuggerRow(**row) for row in
                           layer_errors(int8_model, calibration, calibration[:samples])]
        x, y, result.rounding_on, reference = check_data_scores(run, ROUNDING_IMAGES)
        result.rounding = rounding_split(int8_model, calibration, x, y, reference)
        if result.rounding is None:
            result.skipped["rounding"] = "the weights can be moved in a Keras model only"
        model = to_tflite_fp32(int8_model)
    try:
        result.quantizer = [QuantizerRow(**row) for row in aeq.tensor_errors(
            model, calibration, calibration[:samples], activation_bits)]
    except EdgecvError as exc:
        if "not installed" not in str(exc):
            raise
        result.skipped["quantizer"] = str(exc)
    _write_csvs(result, out)
    return result


def _write_csvs(result: Inspection, out_dir: Path) -> None:
    """Each view that ran to its CSV (``result.files``)."""
    from edgecv.converters.quant_debug import CSV_FILES, write_csv

    out_dir.mkdir(parents=True, exist_ok=True)
    for view, name in CSV_FILES.items():
        rows = getattr(result, view)
        if rows is not None:
            write_csv([row.to_dict() for row in rows], out_dir / name)
            result.files[view] = out_dir / name


def _check_outputs(out_dir: Path) -> None:
    """Before the slow part: the CSVs to be written would replace nothing edgecv did not write."""
    from edgecv.converters.quant_debug import CSV_FILES, refuse_foreign_csv

    for name in CSV_FILES.values():
        refuse_foreign_csv(out_dir / name)


def _tflite_source(path: Path, options: ModelOptions, calib_samples: int,
                   log: Callable[[str], None]) -> tuple[bytes, np.ndarray, str]:
    """A float .tflite file, and calibration images normalised as it expects."""
    from edgecv.card import read_tflite_card
    from edgecv.rundir import RunDir
    from edgecv.runtime.targets import load_interpreter_class

    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist.")
    model = path.read_bytes()
    card = read_tflite_card(model)
    interpreter = load_interpreter_class()(model_content=model)
    detail, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    if np.dtype(detail["dtype"]) != np.float32 or any(
            t["quantization"][0] for t in interpreter.get_tensor_details()
            if np.dtype(t["dtype"]) in (np.int8, np.uint8, np.int16)):
        raise UsageError(f"'{path}' is already quantized; inspect quantizes the float "
                         "model: pass its fp32 .tflite (edgecv convert writes "
                         "model_fp32.tflite), the run or the model file.")
    if len(detail["shape"]) != 4:
        raise UsageError(f"'{path}' takes input of shape {tuple(detail['shape'])}; edgecv "
                         "inspects image classifiers with one (N, H, W, C) input.")
    if card is not None:
        given = [f"`{name}`" for name in ("scale", "mean", "std", "img_size", "channels")
                 if name in options.given()]
        if given:
            raise UsageError(f"'{path}' carries an edgecv model card, which fixes the "
                             f"preprocessing: drop {', '.join(given)}.")
        pre = card.preprocessing
        if options.data is None and card.source_run and RunDir(card.source_run).is_run():
            from edgecv.converters.load import load_run

            run = load_run(card.source_run, calib_samples)
            return model, run.calibration, f"its source run {card.source_run} (train split)"
    else:
        pre = resolve_contract(path, tuple(int(d) for d in detail["shape"][1:]), options)
    if options.data is None:
        raise UsageError(f"'{path}' names no run whose images could calibrate it: pass `data` "
                         "SOURCE (digits, an image folder, an archive or an .npz).")
    data = load_model_data(options.data, pre, int(output["shape"][-1]), calib_samples,
                           options.seed)
    log(f"images: {data.description}")
    return model, data.calibration, str(options.data)
