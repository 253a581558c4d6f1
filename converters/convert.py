"""``edgecv convert``: a training run or a user's model -> verified, self-describing TFLite and
ONNX artifacts.

Both kinds of source become one :class:`RunData` (:func:`load_run` for a run directory,
:func:`edgecv.converters.sources.load_model_source` for a .keras / .h5 / SavedModel / JSON model
plus flags and data; :func:`load_source` picks), and everything after that is the same code.
For every artifact: convert, embed the model card, write atomically, then run it in its real
runtime (ai-edge-litert / onnxruntime, through :mod:`edgecv.runtime`) on the held-out test data
and compare with the reference model. ``conversion.json`` records the figures and the SHA-256 of
each file.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgecv.card import (ModelCard, Quantization, embed_onnx_card, embed_tflite_card,
                         read_tflite_card)
from edgecv.errors import EdgecvError, UsageError, unknown_name
from edgecv.io import atomic_path, write_json_atomic
from edgecv.preprocessing import Preprocessing
from edgecv.testset import TESTSET_NAME, save_testset

# format name -> output file name. fp32 is always written: it is the reference for sizes.
FORMATS = {
    "fp32": "model_fp32.tflite",
    "fp16": "model_fp16.tflite",
    "dynamic": "model_dynamic.tflite",
    "int8": "model_int8.tflite",
    "int8_qat": "model_int8_qat.tflite",
    "int16x8": "model_int16x8.tflite",
    "onnx": "model.onnx",
    "onnx_int8": "model_int8.onnx",
    "edgetpu": "model_edgetpu.tflite",
}


class AccuracyDropError(EdgecvError):
    """An artifact lost more accuracy than ``--max-drop`` allows (the report is still written)."""


# --select-tf-ops (Flex) is allowed for these only: a full-integer model needs builtin int8
# kernels, and the Edge TPU runs no TensorFlow op.
SELECT_TF_OPS_FORMATS = ("fp32", "fp16", "dynamic")


@dataclass
class RunData:
    """What a conversion needs, from a training run or from a model file (``run_dir`` is then
    the model file or SavedModel directory, ``model`` a Keras model or a
    :class:`~edgecv.training.keras_io.SavedModelReference`)."""

    run_dir: Path
    model: object
    labels: list[str]
    preprocessing: Preprocessing
    calibration: np.ndarray  # float32, normalised
    test_x: np.ndarray  # float32, normalised
    test_y: np.ndarray | None  # None: the data has no labels, verification is agreement only
    test_images: np.ndarray | None = None  # uint8, as loaded (written to testset.npz)
    test_ids: list | None = None
    default_out: Path | None = None  # None: run_dir / "export"
    notes: dict = field(default_factory=dict)  # how a model file was read (conversion.json)
    calibration_info: dict = field(default_factory=dict)  # what calibrated (conversion.json)
    val_x: np.ndarray | None = None  # float32, normalised; picks the ONNX calibration method
    val_y: np.ndarray | None = None  # its labels: the slice that picks is stratified by them
    train: object | None = None  # edgecv.data.Split: the images quantization-aware training uses
    train_config: dict | None = None  # a run's "train" config: QAT augments as training did


def load_run(run_dir: str | Path, calib_samples: int = 300) -> RunData:
    """Load a run's model and re-create its seeded split: a class-stratified sample of the TRAIN
    split calibrates, the validation split picks the ONNX calibration method, the test split
    verifies (split.json is checked, so calibration can never hold a test image)."""
    from edgecv.converters.calibration import train_split_calibration
    from edgecv.data import load_dataset
    from edgecv.training.keras_io import load_keras_model

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise UsageError(f"'{run_dir}' is not an edgecv run directory (no config.json); "
                         "train one with `edgecv train` first.")
    if calib_samples < 1:
        raise UsageError(f"--calib-samples must be at least 1, received {calib_samples}.")
    config = json.loads(config_path.read_text())
    pre = Preprocessing.from_dict(config["preprocessing"])
    model = load_keras_model(run_dir / "model.keras")
    data = config["data"]
    spec = data.get("path") or data["name"]  # a folder or archive by path, else a name
    dataset = load_dataset(spec, pre.height, pre.width, pre.channels,
                           val_split=data["val_split"], test_split=data["test_split"],
                           seed=data["seed"])
    split = json.loads((run_dir / "split.json").read_text()) if (run_dir / "split.json").is_file() else None
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
    from edgecv.runtime.targets import is_keras_source

    options = options or ModelOptions()
    if is_keras_source(source):
        run = load_model_source(source, options, calib_samples=calib_samples, log=log)
    else:
        run = _load_run_source(source, calib_samples, options)
    if calib_data is not None:
        from edgecv.converters.calibration import load_calibration

        calibration = load_calibration(calib_data, run.preprocessing, run.labels, calib_samples,
                                       seed=options.seed)
        run.calibration, run.calibration_info = calibration.x, calibration.record()
    return run


def _load_run_source(source, calib_samples: int, options) -> RunData:
    if not (Path(source) / "config.json").is_file():
        raise UsageError(f"'{source}' is not an edgecv run directory (no config.json) nor a model "
                         "(.keras, .h5, a SavedModel directory, a .json config with --weights).")
    given = options.given()
    if given:
        raise UsageError(f"'{source}' is an edgecv run: its config.json fixes the preprocessing, "
                         f"labels and data, so {', '.join(given)} apply to model files only.")
    return load_run(source, calib_samples)


def _tflite_io_quantization(model: bytes) -> tuple[str, str, Quantization | None, Quantization | None]:
    from edgecv.runtime.targets import load_interpreter_class

    interpreter = load_interpreter_class()(model_content=model)
    details = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    result = []
    for detail in details:
        scale, zero_point = detail["quantization"]
        dtype = np.dtype(detail["dtype"]).name
        result.append((dtype, Quantization(dtype, float(scale), int(zero_point)) if scale else None))
    return result[0][0], result[1][0], result[0][1], result[1][1]


def _card(run: RunData, fmt: str, **quant) -> ModelCard:
    return ModelCard(labels=run.labels, preprocessing=run.preprocessing, format=fmt,
                     source_run=str(run.run_dir.resolve()), **quant)


ONNX_CALIBRATION = ("auto", "minmax", "entropy", "percentile")


def build_artifact(run: RunData, fmt: str, *, io: str = "int8", opset: int = 17,
                   onnx_fp32=None, select_tf_ops: bool = False,
                   onnx_calibration: str = "auto", notes: dict | None = None,
                   qat_epochs: int | None = None, qat_lr: float | None = None,
                   log: Callable[[str], None] = print):
    """Convert ``run.model`` to ``fmt`` with its card embedded; return (file bytes, the fp32 ONNX
    proto when one was made, so onnx_int8 reuses it, else None). ``select_tf_ops`` (fp32, fp16,
    dynamic only) allows Flex ops; the card's ``extra`` then says whether the file is deployable.
    ``onnx_calibration`` (default auto, see :func:`choose_onnx_int8`) sets how the ONNX int8
    ranges are calibrated; what was chosen goes into ``notes`` when given. ``int8_qat`` fine-tunes
    a fake-quantized copy first (:func:`edgecv.converters.qat.build_qat_int8`, ``qat_epochs`` and
    ``qat_lr``, default its own); its record goes into ``notes["qat"]``."""
    from edgecv.converters import onnx as onnx_converter
    from edgecv.converters import tflite

    if fmt in ("onnx", "onnx_int8"):
        proto = onnx_fp32 if onnx_fp32 is not None else onnx_converter.to_onnx(run.model, opset)
        fp32_proto = proto
        if fmt == "onnx_int8":
            proto, chosen = choose_onnx_int8(run, proto, onnx_calibration)
            if notes is not None:
                notes["onnx_calibration"] = chosen
        embed_onnx_card(proto, _card(run, fmt))
        return proto.SerializeToString(), fp32_proto
    if fmt == "edgetpu":
        return build_edgetpu(run), None
    builders: dict[str, Callable[[], bytes]] = {
        "fp32": lambda: tflite.to_tflite_fp32(run.model, select_tf_ops=select_tf_ops),
        "fp16": lambda: tflite.to_tflite_fp16(run.model, select_tf_ops=select_tf_ops),
        "dynamic": lambda: tflite.to_tflite_dynamic(run.model, select_tf_ops=select_tf_ops),
        "int8": lambda: tflite.to_tflite_int8(run.model, run.calibration, io=io),
        "int16x8": lambda: tflite.to_tflite_int16x8(run.model, run.calibration),
        "int8_qat": lambda: _build_qat(run, io, qat_epochs, qat_lr, notes, log),
    }
    data = builders[fmt]()
    if fmt in ("int8", "int8_qat"):
        problems = tflite.integer_only_violations(data, io=io)
        if problems:
            raise tflite.ConversionError(
                f"the int8 model is not integer-only: {'; '.join(problems[:5])}.")
    extra = {}
    if select_tf_ops:
        flex = tflite.flex_ops(data)
        extra = {"select_tf_ops": True, "deployable": not flex, "flex_ops": flex}
        if flex:
            extra["reason"] = tflite.FLEX_REASON
    in_dtype, out_dtype, in_q, out_q = _tflite_io_quantization(data)
    card = _card(run, f"tflite_{fmt}", input_dtype=in_dtype, output_dtype=out_dtype,
                 input_quantization=in_q, output_quantization=out_q, extra=extra)
    return embed_tflite_card(data, card), None


def _build_qat(run: RunData, io: str, epochs: int | None, lr: float | None, notes: dict | None,
               log: Callable[[str], None]) -> bytes:
    from edgecv.converters import qat

    settings = {k: v for k, v in (("epochs", epochs), ("lr", lr)) if v is not None}
    data, record = qat.build_qat_int8(run, io=io, log=log, **settings)
    if notes is not None:
        notes["qat"] = record
    return data


def check_data(run: RunData, limit: int = 1000) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The images (and labels, None without) that choose between quantization settings and
    decide ``--recover``: a class-stratified sample of the validation split (up to ``limit``),
    else the calibration images; never the test split, which must stay unseen until the chosen
    artifact is verified on it.

    Stratified, not the first ``limit``: a folder's split is ordered by class, so the first 1,000
    of CIFAR-10's 7,500 validation images are 750 airplanes and 250 automobiles.
    """
    from edgecv.converters.calibration import stratified_indices

    if run.val_x is not None and len(run.val_x):
        index = stratified_indices(run.val_y, limit, seed=0, total=len(run.val_x))
        kind = "stratified sample" if run.val_y is not None else "random sample"
        y = None if run.val_y is None else run.val_y[index]
        return run.val_x[index], y, f"validation split ({kind} of {len(index)} images)"
    count = min(limit, len(run.calibration))
    return (run.calibration[:limit], None,
            f"calibration images ({count}; the source has no validation split)")


def check_slice(run: RunData, limit: int = 1000) -> tuple[np.ndarray, str]:
    """:func:`check_data` without the labels."""
    x, _y, where = check_data(run, limit)
    return x, where


def choose_onnx_int8(run: RunData, fp32_proto, method: str = "auto"):
    """ONNX int8 with ``method`` (minmax, entropy, percentile; U8S8 with 7-bit weights, the
    fast x86 setting) or, for ``auto``, with whichever calibration method and integer types
    (:data:`edgecv.converters.onnx.INTEGER_TYPES`) agree best with the reference model on
    :func:`check_slice`. Returns (proto, record)."""
    from edgecv.converters import onnx as onnx_converter

    if method not in ONNX_CALIBRATION:
        raise unknown_name("--onnx-calibration value", method, ONNX_CALIBRATION)
    if method != "auto":
        return onnx_converter.to_onnx_int8(fp32_proto, run.calibration, method=method), {
            "method": method, "types": "u8s8", "chosen_by": "--onnx-calibration"}
    x, where = check_slice(run)
    reference = run.model.predict(x, batch_size=256, verbose=0)
    proto, record = onnx_converter.to_onnx_int8_best(fp32_proto, run.calibration, x, reference)
    return proto, {**record, "chosen_by": f"best top-1 agreement on the {where}"}


def build_edgetpu(run: RunData) -> bytes:
    """A uint8-I/O full-int8 model, compiled by ``edgetpu_compiler`` when it is on PATH.

    The static compatibility report and the compiler's verdict go into the card's ``extra``
    (and ``edgetpu_report.json``)."""
    from edgecv.converters import edgetpu, tflite

    data = tflite.to_tflite_int8(run.model, run.calibration, io="uint8", static_batch=True)
    problems = tflite.integer_only_violations(data, io="uint8")
    if problems:
        raise tflite.ConversionError(f"the int8 model is not integer-only: {'; '.join(problems[:5])}.")
    in_dtype, out_dtype, in_q, out_q = _tflite_io_quantization(data)
    report = {"static": edgetpu.static_report(data)}
    compiler = edgetpu.find_compiler()
    if compiler is None:
        report["compiler"] = {"status": "absent",
                              "reason": "edgetpu_compiler not found on PATH; the file is the "
                                        "uncompiled uint8 model, the static report stands"}
    else:
        with tempfile.TemporaryDirectory() as workdir:
            source = Path(workdir) / "model.tflite"
            source.write_bytes(data)
            compiled, parsed, _log = edgetpu.compile_for_edgetpu(source, Path(workdir), compiler)
            data = compiled.read_bytes()
        report["compiler"] = {"status": "compiled", "path": compiler, **parsed}
    card = _card(run, "tflite_edgetpu", input_dtype=in_dtype, output_dtype=out_dtype,
                 input_quantization=in_q, output_quantization=out_q,
                 extra={"edgetpu_compiled": compiler is not None, "edgetpu": report})
    return embed_tflite_card(data, card)


def artifact_scores(path: Path, x: np.ndarray) -> np.ndarray:
    """Scores of the artifact at ``path`` on ``x``, in its runtime, 64 images per call."""
    from edgecv.runtime import open_backend

    with open_backend(path, checksum="off") as backend:  # just written: conversion.json is older
        return np.concatenate([backend.run(x[i:i + 64]) for i in range(0, len(x), 64)])


def verify_artifact(path: Path, run: RunData, keras_scores: np.ndarray) -> dict:
    """Run ``path`` in its runtime on the test split; accuracy (None when the data has no
    labels), top-1 agreement with the reference scores, and output difference."""
    from edgecv.converters.verify import per_class_rows, worst_class

    scores = artifact_scores(path, run.test_x)

    diff = np.abs(scores - keras_scores)
    predicted = scores.argmax(1)
    row = {
        "accuracy": None if run.test_y is None else float((predicted == run.test_y).mean()),
        "agreement": float((predicted == keras_scores.argmax(1)).mean()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
    }
    if run.test_y is not None:
        classes = per_class_rows(predicted, keras_scores.argmax(1), run.test_y, run.labels)
        row.update(worst_class=worst_class(classes), per_class=classes)
    return row


def score_drops(row: dict, keras_accuracy: float | None) -> dict:
    """Add to a verified row its drops vs the reference, in percentage points: accuracy (None
    when the data has no labels) and agreement (100 - agreement %)."""
    row["accuracy_drop_pp"] = (None if keras_accuracy is None or row["accuracy"] is None
                               else round(100 * (keras_accuracy - row["accuracy"]), 3))
    row["agreement_drop_pp"] = round(100 * (1 - row["agreement"]), 3)
    return row


def budget_drop(row: dict) -> float | None:
    """The drop ``--max-drop`` judges: the accuracy drop when the data has labels, else the
    agreement drop; None for a row that was not verified."""
    if row.get("accuracy_drop_pp") is not None:
        return row["accuracy_drop_pp"]
    return row.get("agreement_drop_pp")


def _figures(row: dict) -> str:
    accuracy = ("acc -" if row["accuracy"] is None else
                f"acc {row['accuracy']:.4f} (drop {row['accuracy_drop_pp']:+.2f} pp)")
    worst = row.get("worst_class")
    worst = f"  worst class {worst['class']} {0.0 - worst['drop_pp']:+.1f} pp" if worst else ""
    return (f"{accuracy}  agreement {row['agreement']:.4f}  max|diff| "
            f"{row['max_abs_diff']:.4f}{worst}")


def _check_formats(formats: list[str], max_drop: float, select_tf_ops: bool) -> list[str]:
    for fmt in formats:
        if fmt not in FORMATS:
            raise unknown_name("format", fmt, FORMATS)
    if max_drop < 0:
        raise UsageError(f"--max-drop must be 0 or more, received {max_drop}.")
    refused = [f for f in formats
               if FORMATS[f].endswith(".tflite") and f not in SELECT_TF_OPS_FORMATS]
    if select_tf_ops and refused:
        raise UsageError(
            f"--select-tf-ops applies to the fp32, fp16 and dynamic TFLite models only; "
            f"{', '.join(refused)} cannot use Flex ops (a full-integer model needs builtin int8 "
            f"kernels, the Edge TPU runs no TensorFlow op): drop "
            f"{', '.join('--' + f for f in refused)} (or --all).")
    return [f for f in FORMATS if f == "fp32" or f in formats]


def convert_run(source: str | Path | RunData, formats: list[str], *,
                out_dir: str | Path | None = None, io: str = "int8", calib_samples: int = 300,
                opset: int = 17, max_drop: float = 1.0, recover: bool = False,
                select_tf_ops: bool = False, options=None, calib_data: str | None = None,
                onnx_calibration: str = "auto", qat_epochs: int | None = None,
                qat_lr: float | None = None, log: Callable[[str], None] = print) -> dict:
    """Write and verify ``formats`` (fp32 is always included) for a run directory, a model file
    (read with ``options``, see :func:`load_source`) or an already loaded :class:`RunData`;
    return the report.

    Defaults: int8 I/O for the int8 model, 300 calibration samples, opset 17, max drop 1.0 pp
    (of accuracy; of agreement with the reference when the data has no labels), no Flex ops.
    Output: ``out_dir``, else ``RUN/export`` or, for a model file, ``<stem>_export`` beside it.
    Raises AccuracyDropError after writing ``conversion.json`` if an artifact drops too much.
    With ``recover``, an int8 TFLite or ONNX model over budget is followed by a mixed
    int8/float one (:func:`edgecv.converters.recover.recover`); if that one fits the budget, the
    int8 drop no longer fails the run.
    ``select_tf_ops`` allows Flex ops in fp32/fp16/dynamic (refused with int8, int16x8, edgetpu);
    a file that needs them is marked ``deployable: false`` and, since ai-edge-litert has no
    Flex delegate, recorded as not verified instead of failing.
    ``calib_data`` (same forms as ``--data``; default: the source's own training split)
    calibrates instead; ``onnx_calibration`` (default ``auto``, see :func:`choose_onnx_int8`).
    ``int8_qat`` (quantization-aware fine-tuning, minutes of training) is written only when
    asked for by name; ``qat_epochs`` / ``qat_lr`` set its fine-tuning (default 2 and 1e-4).
    """
    from edgecv.converters.tflite import FLEX_REASON

    ordered = _check_formats(formats, max_drop, select_tf_ops)
    if "int8_qat" in ordered:  # before minutes of loading
        if qat_epochs is not None and qat_epochs < 1:
            raise UsageError(f"--qat-epochs must be at least 1, received {qat_epochs}.")
        if qat_lr is not None and not qat_lr > 0:
            raise UsageError(f"--qat-lr must be positive, received {qat_lr}.")
    if onnx_calibration not in ONNX_CALIBRATION:
        raise unknown_name("--onnx-calibration value", onnx_calibration, ONNX_CALIBRATION)
    if isinstance(source, RunData):
        run = source
        if calib_data is not None:
            raise UsageError("calib_data applies when convert_run loads the source; a loaded "
                             "RunData already carries its calibration.")
    else:
        run = load_source(source, calib_samples, options, log, calib_data=calib_data)
    info = run.calibration_info or {"count": int(len(run.calibration))}
    if info.get("source"):
        classes = info.get("per_class") or {}
        spread = (f", {min(classes.values())}..{max(classes.values())} per class over "
                  f"{len(classes)} classes" if classes else "")
        log(f"calibration: {info['count']} images from {info['source']} ({info['split']}"
            f"{spread})")
    out = Path(out_dir) if out_dir else (run.default_out or run.run_dir / "export")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise UsageError(f"cannot write to output directory '{out}': {exc.strerror or exc}.") from exc

    keras_scores = run.model.predict(run.test_x, batch_size=256, verbose=0)
    reference = run.notes.get("reference", "keras model")
    if run.test_y is None:
        keras_accuracy = None
        log(f"{reference}: {len(run.test_x)} test images without labels: verification reports "
            "agreement and output difference; --max-drop applies to agreement")
    else:
        keras_accuracy = float((keras_scores.argmax(1) == run.test_y).mean())
        log(f"{reference}: test accuracy {keras_accuracy:.4f} on {len(run.test_y)} images")
    rows, onnx_fp32, fp32_size = [], None, None
    for fmt in ordered:
        start = time.perf_counter()
        notes: dict = {}
        data, proto = build_artifact(run, fmt, io=io, opset=opset, onnx_fp32=onnx_fp32,
                                     select_tf_ops=select_tf_ops and fmt in SELECT_TF_OPS_FORMATS,
                                     onnx_calibration=onnx_calibration, notes=notes,
                                     qat_epochs=qat_epochs, qat_lr=qat_lr, log=log)
        onnx_fp32 = proto if proto is not None else onnx_fp32
        seconds = time.perf_counter() - start
        path = out / FORMATS[fmt]
        # conversion.json vouches for the files beside it (bench/predict check their SHA-256):
        # it goes before the first of them is replaced and comes back once all are written.
        (out / "conversion.json").unlink(missing_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        fp32_size = fp32_size or len(data)
        row = {"format": fmt, "file": path.name, "size_bytes": len(data),
               "size_ratio_vs_fp32": round(len(data) / fp32_size, 4),
               "sha256": hashlib.sha256(data).hexdigest(), "convert_s": round(seconds, 2),
               **notes}
        if "onnx_calibration" in notes:
            log(f"onnx_int8  calibration {notes['onnx_calibration']['method']}, "
                f"{notes['onnx_calibration']['types']} "
                f"({notes['onnx_calibration']['chosen_by']}"
                f"{': ' + str(notes['onnx_calibration']['agreement']) if 'agreement' in notes['onnx_calibration'] else ''})")
        if fmt == "edgetpu":
            edgetpu_report = read_tflite_card(data).extra["edgetpu"]
            write_json_atomic(out / "edgetpu_report.json", edgetpu_report)
            row["edgetpu"] = {"static": edgetpu_report["static"]["summary"],
                              "compiler": edgetpu_report["compiler"]["status"]}
            log(f"edgetpu    {edgetpu_report['static']['summary']}; compiler: "
                f"{edgetpu_report['compiler'].get('reason', edgetpu_report['compiler']['status'])}")
        if fmt == "edgetpu" and row["edgetpu"]["compiler"] == "compiled":
            row["verified"] = "no: a compiled Edge TPU model runs only on an Edge TPU (edgecv bench)"
            rows.append(row)
            log(f"{fmt:<10} {len(data) / 1024:8.1f} KiB  not verified here: {row['verified']}")
            continue
        flex = []
        if select_tf_ops and fmt in SELECT_TF_OPS_FORMATS:
            extra = read_tflite_card(data).extra
            flex = extra["flex_ops"]
            row.update(deployable=extra["deployable"], flex_ops=flex,
                       deployable_reason=extra.get("reason"))
        try:
            row.update(verify_artifact(path, run, keras_scores))
        except (EdgecvError, RuntimeError, ValueError) as exc:
            if not flex:
                raise
            first = " ".join(str(exc).split())[:160]
            row["verified"] = f"no: {FLEX_REASON} (ai-edge-litert: {first})"
            rows.append(row)
            log(f"{fmt:<10} {len(data) / 1024:8.1f} KiB  not verified: needs Flex ops "
                f"{', '.join(flex)}; not deployable on tflite-runtime/ai-edge-litert or the Edge TPU")
            continue
        score_drops(row, keras_accuracy)
        rows.append(row)
        log(f"{fmt:<10} {len(data) / 1024:8.1f} KiB  {_figures(row)}  {seconds:.1f}s")
    for fmt, kind in (("int8", "tflite"), ("onnx_int8", "onnx")):
        int8_row = next((r for r in rows if r["format"] == fmt), None)
        if not (recover and int8_row and budget_drop(int8_row) is not None
                and budget_drop(int8_row) > max_drop):
            continue
        from edgecv.converters.recover import recover as recover_mixed

        chosen = int8_row.get("onnx_calibration", {})
        mixed = recover_mixed(run, kind, keras_scores, keras_accuracy, max_drop, out, log,
                              onnx_fp32=onnx_fp32, onnx_method=chosen.get("method", "minmax"),
                              onnx_types=chosen.get("types", "u8s8"))
        mixed["size_ratio_vs_fp32"] = round(mixed["size_bytes"] / fp32_size, 4)
        rows.append(mixed)
        if mixed["within_budget"]:
            int8_row["recovered_by"] = mixed["file"]
    if run.test_images is not None and run.test_y is not None:
        # so `edgecv bench` measures accuracy on a bare device
        save_testset(out / TESTSET_NAME, run.test_images, run.test_y, run.labels, run.test_ids)
    elif run.test_images is not None:
        log(f"{TESTSET_NAME} not written: the test images have no labels")
    report = {"run": str(run.run_dir), "keras_accuracy": keras_accuracy,
              "test_images": int(len(run.test_x)), "calibration_samples": int(len(run.calibration)),
              "calibration": info,
              "int8_io": io, "opset": opset, "max_drop_pp": max_drop,
              "max_drop_applies_to": "accuracy" if run.test_y is not None else "agreement"}
    if run.notes:
        report["source"] = run.notes
    if select_tf_ops:
        report["select_tf_ops"] = True
    report["artifacts"] = rows
    write_json_atomic(out / "conversion.json", report)
    log(f"wrote {len(rows)} artifact(s) and conversion.json to {out}")
    too_much = [r for r in rows if budget_drop(r) is not None and budget_drop(r) > max_drop
                and "recovered_by" not in r]
    if too_much:
        worst = max(too_much, key=budget_drop)
        what = "accuracy" if worst["accuracy_drop_pp"] is not None else "agreement"
        raise AccuracyDropError(
            f"{worst['file']} lost {budget_drop(worst):.2f} pp of {what} vs the reference, more "
            f"than --max-drop {max_drop}; see {out / 'conversion.json'}.")
    return report
