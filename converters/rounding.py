"""Which int8 rounding loses the answers: the weights' or the activations'.

A full-int8 TFLite file rounds two things: every kernel onto a grid of 255 steps per output
channel, and every activation onto one grid per tensor. They call for different remedies:
16-bit activations (int16x8, ``--recover``'s first step) refine the activations' grid and
leave the weights' as it is; quantization-aware training trains the model around both grids
but keeps them (a full-int8 file has int8 activations however it was trained); float layers
drop both. :func:`rounding_split` measures each apart, on real files:

- **weights alone**: the Keras model with its conv and dense kernels moved onto their int8
  grid (each output channel keeps its largest weight, so the converter's scale is unchanged),
  run in float, against the model;
- **activations alone**: that twin's own int8 file, run in LiteRT, against the twin. Its
  kernels are on the grid already, so the converter's weight rounding changes nothing: what is
  left is the activations' (and the few constants no kernel holds, such as biases in int32).

Per-channel rounding commutes with the BatchNorm folding the converter does first (a channel's
weights and its largest one are scaled by the same factor), so the twin's folded kernels are on
the folded grid too.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# Keras layer -> the kernel attributes the converter quantizes per output channel, and the axes
# one channel's weights span (the rest of the kernel's axes). Transposed convolutions and other
# layers keep their weights: their rounding then counts as the activations'.
_LAST = "all but the last"
_KERNELS = {
    "Dense": (("kernel", _LAST),),
    "Conv1D": (("kernel", _LAST),),
    "Conv2D": (("kernel", _LAST),),
    "Conv3D": (("kernel", _LAST),),
    "DepthwiseConv2D": (("kernel", (0, 1)),),  # a channel = (input channel, multiplier)
    "DepthwiseConv1D": (("kernel", (0,)),),
    "SeparableConv2D": (("depthwise_kernel", (0, 1)), ("pointwise_kernel", _LAST)),
    "SeparableConv1D": (("depthwise_kernel", (0,)), ("pointwise_kernel", _LAST)),
}


def on_int8_grid(kernel: np.ndarray, axes) -> np.ndarray:
    """``kernel`` rounded as symmetric per-channel int8 (scale = the channel's largest |weight| /
    127), back in float: what the converter's rounding of it means."""
    axes = tuple(range(kernel.ndim - 1)) if axes == _LAST else axes
    scale = np.abs(kernel).max(axis=axes, keepdims=True) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    return (np.clip(np.round(kernel / scale), -127, 127) * scale).astype(kernel.dtype)


def _gridded_kernels(model, only=None):
    """(variable, kernel on the grid) for each kernel of ``model`` (nested models included),
    of the layers ``only(layer)`` keeps (default: all)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if only is not None and not only(layer):
            continue
        for attribute, axes in _KERNELS.get(type(layer).__name__, ()):
            variable = getattr(layer, attribute, None)
            if variable is not None:
                yield variable, on_int8_grid(np.asarray(variable.numpy()), axes)


@contextmanager
def weights_on_int8_grid(model, only=None):
    """Within the block, ``model``'s kernels (of the layers ``only(layer)`` keeps, default all)
    sit on their int8 grid (yields how many); its own weights come back afterwards, whatever
    happens inside."""
    gridded = list(_gridded_kernels(model, only))
    saved = [variable.numpy() for variable, _ in gridded]
    try:
        for variable, kernel in gridded:
            variable.assign(kernel)
        yield len(gridded)
    finally:
        for (variable, _), value in zip(gridded, saved):
            variable.assign(value)


def _part(scores: np.ndarray, reference: np.ndarray, y: np.ndarray | None) -> dict:
    from edgecv.converters.verify import disagreements, slice_row

    flips = disagreements(scores, reference, y)
    return {**slice_row(scores, y, reference).to_dict(), "flips": flips["count"],
            "exact_ties": flips["exact_ties"]}


def rounding_split(model, calibration: np.ndarray, x: np.ndarray, y: np.ndarray | None,
                   reference_scores: np.ndarray, io: str = "int8",
                   preprocessing=None) -> dict | None:
    """The int8 rounding of ``model`` taken apart on ``x`` (labels ``y`` or None), each part a
    row as :class:`~edgecv.converters.verify.Budget` judges one (accuracy, agreement, drops)
    plus its flips and exact ties: ``weights`` (the kernels on their grid, float, vs
    ``reference_scores``) and ``activations`` (that twin's int8 file, ``io`` as the int8
    file's, calibrated on ``calibration``, vs the twin); ``kernels``: how many were moved;
    ``preprocessing`` (default None): a uint8 input then takes the raw pixels, as in the
    shipped file (:func:`edgecv.converters.tflite.with_pixel_input`);
    ``seconds``: what measuring took (one more int8 conversion and two scorings of ``x``).
    None when ``model`` is not a Keras model (a SavedModel signature has no layers to move).
    The model's weights move for the length of the twin's scoring and conversion: call it when
    nothing else runs the model."""
    from edgecv.converters.tflite import to_tflite_int8, with_pixel_input
    from edgecv.converters.verify import artifact_scores

    if not hasattr(model, "_flatten_layers"):
        return None
    start = time.perf_counter()
    with weights_on_int8_grid(model) as kernels:
        twin_scores = model.predict(x, batch_size=256, verbose=0)
        data = to_tflite_int8(model, calibration, io=io)
    if preprocessing is not None:
        data = with_pixel_input(data, preprocessing)
    with tempfile.TemporaryDirectory(prefix="edgecv-rounding-") as tmp:
        path = Path(tmp) / "int8_weights_on_grid.tflite"
        path.write_bytes(data)
        int8_scores = artifact_scores(path, x)
    return {"kernels": kernels, "weights": _part(twin_scores, reference_scores, y),
            "activations": _part(int8_scores, twin_scores, y),
            "seconds": round(time.perf_counter() - start, 2)}


def rounding_text(split: dict) -> str:
    """``"weights alone 99.20% agreement (60 flips), activations alone 99.07% (70 flips, 47
    exact ties)"``."""
    weights, activations = split["weights"], split["activations"]
    return (f"weights alone {100 * weights['agreement']:.2f}% agreement ({weights['flips']} "
            f"flips), activations alone {100 * activations['agreement']:.2f}% "
            f"({activations['flips']} flips, {activations['exact_ties']} exact ties)")


def to_blame(split: dict | None, budget) -> str | None:
    """Which rounding alone misses ``budget``: "activations" (first: no weight remedy reaches
    past it), "weights", or None (neither alone, or no split)."""
    from edgecv.converters.verify import SliceFigures

    if not split:
        return None
    for part in ("activations", "weights"):
        if budget.misses(SliceFigures.from_record(split[part])):
            return part
    return None
