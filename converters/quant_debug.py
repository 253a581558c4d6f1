"""Which layers lose accuracy in int8, and keeping the worst ones in float until the drop fits.

Built on ``tf.lite.experimental.QuantizationDebugger``: it runs the float and the quantized
model side by side on debug samples and reports, per quantized tensor, the error between the
float activation and the dequantized int8 one. edgecv ranks layers by RMSE / scale (error in
units of the quantization step; > 0.7 or so means the layer quantizes badly) and SQNR in dB.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

import numpy as np

from edgecv.converters.tflite import make_converter, representative_samples
from edgecv.errors import UsageError
from edgecv.io import captured_output
from edgecv.tf_import import import_tensorflow


def _sqnr(float_tensors: Sequence[np.ndarray], quant_tensors: Sequence[np.ndarray], scale: float,
          zero_point: int) -> float:
    """Signal-to-quantization-noise ratio in dB of a layer over the debug samples."""
    signal = noise = 0.0
    for f, q in zip(float_tensors, quant_tensors):
        f, q = np.asarray(f, np.float64), np.asarray(q)
        # Some ops (e.g. a float-output FULLY_CONNECTED) hand over real values, not integers.
        dequantized = (q.astype(np.float64) if q.dtype.kind == "f"
                       else (q.astype(np.int64) - zero_point) * float(scale))
        finite = np.isfinite(f) & np.isfinite(dequantized)
        signal += float(np.sum(np.square(f[finite])))
        noise += float(np.sum(np.square(f[finite] - dequantized[finite])))
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def crushed_share(float_tensors: Sequence[np.ndarray], scale: float) -> float:
    """Share of the live channels (last axis, float RMS > 0) whose RMS over all samples and
    positions is below one quantization step ``scale``."""
    values = (np.concatenate([np.asarray(f, np.float64).reshape(-1, np.shape(f)[-1])
                              for f in float_tensors]) if len(float_tensors) else np.zeros((0, 1)))
    if not len(values) or not scale or not math.isfinite(scale):
        return 0.0
    rms = np.sqrt(np.mean(np.square(values), axis=0))
    live = rms > 1e-6 * max(float(rms.max()), 1e-12)
    return float(np.mean(rms[live] < scale)) if live.any() else 0.0


def _crushed(float_tensors, quant_tensors, scale: float, zero_point: int) -> float:
    """Share of the layer's live output channels under one quantization step (see
    :mod:`edgecv.converters.recover`)."""
    return crushed_share(float_tensors, scale)


def _debugger(model, calibration: np.ndarray, debug_samples: np.ndarray, denylisted_nodes=()):
    tf = import_tensorflow()
    converter = make_converter(model)  # a Keras model or a SavedModel's signature
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_samples(calibration)
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"sqnr_db": _sqnr, "crushed": _crushed},
        denylisted_nodes=list(denylisted_nodes) or None)
    with captured_output():
        return tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative_samples(debug_samples),
            debug_options=options)


def _finite(value: float) -> float | None:
    """JSON/CSV-safe: None where the debugger's metric is infinite or undefined."""
    return round(value, 2) if math.isfinite(value) else None


# The file each view of edgecv inspect writes (view -> file name); each starts with these columns.
CSV_FILES = {"debugger": "quant_debug.csv", "quantizer": "quant_validate.csv"}
CSV_HEADER_START = "op,tensor,"


def refuse_foreign_csv(path) -> None:
    """UsageError if ``path`` exists and is not a CSV edgecv inspect wrote (its header starts
    otherwise): replacing it would lose a file edgecv did not make."""
    from pathlib import Path

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    try:
        with open(path, "rb") as handle:
            first = handle.read(len(CSV_HEADER_START)).decode("utf-8", "replace")
    except OSError:
        first = ""
    if not path.is_file() or path.is_symlink() or first != CSV_HEADER_START:
        raise UsageError(f"refusing to replace '{path}': edgecv did not write it (a CSV of "
                         "edgecv inspect starts with 'op,tensor,'); move it or choose another "
                         "output folder.")


def write_csv(rows: list[dict], path) -> None:
    """Write layer_errors() rows to ``path`` atomically; a file of that name edgecv did not write
    is refused (:func:`refuse_foreign_csv`)."""
    from edgecv.io import atomic_path

    refuse_foreign_csv(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["op"])
        writer.writeheader()
        writer.writerows(rows)


def layer_errors(model, calibration: np.ndarray, debug_samples: np.ndarray) -> list[dict]:
    """Per quantized layer: op, tensor name, RMSE/scale, SQNR (dB), max abs error, scale and
    the share of its output channels under one step (``crushed``); worst RMSE/scale first."""
    debugger = _debugger(model, calibration, debug_samples)
    with captured_output():
        debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = []
    for row in csv.DictReader(io.StringIO(buffer.getvalue())):
        scale = float(row["scale"]) or float("nan")
        rows.append({
            "op": row["op_name"], "tensor": row["tensor_name"],
            "rmse_over_scale": round(math.sqrt(float(row["mean_squared_error"])) / scale, 4),
            "sqnr_db": _finite(float(row["sqnr_db"])),
            "max_abs_error": float(row["max_abs_error"]), "scale": float(row["scale"]),
            "crushed": round(float(row["crushed"]), 4),
        })
    return sorted(rows, key=lambda r: r["rmse_over_scale"], reverse=True)


def selectively_quantized(model, calibration: np.ndarray, float_tensors: Sequence[str]) -> bytes:
    """An int8 model in which the ops producing ``float_tensors`` stay in float (denylist)."""
    debugger = _debugger(model, calibration, calibration[:1], denylisted_nodes=float_tensors)
    with captured_output():
        return bytes(debugger.get_nondebug_quantized_model())
