"""Per-tensor int8 (or int16-activation) error of any float .tflite, with Google's AI Edge
Quantizer (``ai-edge-quantizer``; the ``quantizer`` extra, also in ``train``).

The TF converter's ``QuantizationDebugger`` (:mod:`edgecv.converters.quant_debug`) needs the
TensorFlow model; the AI Edge Quantizer works on the .tflite file itself: it calibrates the
float model in LiteRT, quantizes it with a recipe (``static_wi8_ai8``: int8 weights per channel,
int8 activations; ``static_wi8_ai16``: 16-bit activations) and runs float and quantized side by
side on sample images, comparing every tensor. So `edgecv inspect --quant` can rank the layers
of a model edgecv never saw as TensorFlow, and of every run, from a second, independent
quantizer.

Needs no TensorFlow. The file must carry a SignatureDef (the quantizer feeds signatures); one is
added when it has none (:func:`edgecv.converters.tflite.with_serving_signature`).
"""

from __future__ import annotations

import math

import numpy as np

from edgecv.errors import EdgecvError
from edgecv.io import captured_output
from edgecv.tflite_schema import builtin_op_names, tflite_schema

INSTALL = "pip install 'edgecv[quantizer]' (ai-edge-quantizer)"


def _quantizer():
    try:
        from ai_edge_quantizer import quantizer, recipe
        from ai_edge_quantizer.utils import validation_utils
    except ImportError as exc:
        raise EdgecvError(f"the AI Edge Quantizer is not installed: {INSTALL}.") from exc
    return quantizer, recipe, validation_utils


def _signature(model: bytes) -> tuple[bytes, str, str, bool]:
    """The model (with a serving signature added if it had none), its signature key, its one
    input's name in that signature, and whether its batch dimension is dynamic."""
    from edgecv.converters.tflite import with_serving_signature
    from edgecv.runtime.targets import load_interpreter_class

    model = with_serving_signature(model)
    interpreter = load_interpreter_class()(model_content=model)
    key, entry = next(iter(interpreter.get_signature_list().items()))
    if len(entry["inputs"]) != 1:
        raise EdgecvError(f"the model's signature '{key}' has {len(entry['inputs'])} inputs; "
                          "edgecv inspects image classifiers with one input.")
    batch = interpreter.get_input_details()[0].get("shape_signature")
    dynamic = batch is not None and len(batch) > 0 and int(batch[0]) == -1
    return model, key, entry["inputs"][0], dynamic


def _feed(key: str, name: str, x: np.ndarray) -> dict:
    return {key: [{name: x[i:i + 1].astype(np.float32)} for i in range(len(x))]}


def _calibration_feed(key: str, name: str, x: np.ndarray, dynamic_batch: bool) -> dict:
    """The calibration images as ONE batch. The quantizer's calibrator keeps a moving average
    (factor 0.95) of each tensor's per-step min/max, which narrows the ranges of tensors whose
    extremes are rare (the logits) and clips them; over one batch it is the plain min/max of
    every image, what TF's converter calibrates. A model whose batch is fixed gets one image
    per step (the moving average) instead."""
    if not dynamic_batch:
        return _feed(key, name, x)
    return {key: [{name: x.astype(np.float32)}]}


def producing_ops(model: bytes) -> dict[str, str]:
    """Tensor name -> the name of the builtin op that writes it, for subgraph 0."""
    op_names = builtin_op_names()
    root = tflite_schema().Model.GetRootAs(model, 0)
    graph = root.Subgraphs(0)
    found = {}
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        code = root.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        for index in op.OutputsAsNumpy().tolist() if op.OutputsLength() else []:
            found[graph.Tensors(index).Name().decode()] = name
    return found


def weight_only(model: bytes) -> bytes:
    """``model`` with int8 weights (per channel) and float activations: the quantizer's
    ``weight_only_wi8_afp32`` recipe, no calibration."""
    quantizer, recipe, _ = _quantizer()
    model = _signature(model)[0]
    engine = quantizer.Quantizer(bytearray(model), recipe.weight_only_wi8_afp32())
    with captured_output(replay_on_error=False):
        return bytes(engine.quantize(enable_progress_report=False).quantized_model)


def quantize(model: bytes, calibration: np.ndarray, activation_bits: int = 8,
             per_image: bool = False):
    """(the quantizer, its quantized model bytes) for the float ``model`` calibrated on
    ``calibration`` (float32 NHWC, already normalised), with int8 weights per channel and
    ``activation_bits`` (8 or 16) activations on every op the quantizer supports.
    ``per_image`` feeds the calibrator one image per step (its moving-average ranges, kept
    for comparison; see :func:`_calibration_feed`)."""
    quantizer, recipe, _ = _quantizer()
    if activation_bits not in (8, 16):
        raise EdgecvError(f"activation bits must be 8 or 16, received {activation_bits}.")
    model, key, name, dynamic = _signature(model)
    chosen = recipe.static_wi8_ai8() if activation_bits == 8 else recipe.static_wi8_ai16()
    engine = quantizer.Quantizer(bytearray(model), chosen)
    feed = (_feed(key, name, calibration) if per_image
            else _calibration_feed(key, name, calibration, dynamic))
    with captured_output(replay_on_error=False):
        ranges = engine.calibrate(feed, num_threads=1)
        result = engine.quantize(ranges, enable_progress_report=False)
    return engine, bytes(result.quantized_model)


def available() -> bool:
    """Whether ``ai-edge-quantizer`` is installed."""
    try:
        _quantizer()
    except EdgecvError:
        return False
    return True


def quantize_mixed(model: bytes, calibration: np.ndarray, int16_ops: list[str],
                   float_ops: list[str] = ()) -> bytes:
    """Full int8 (int8 weights per channel, int8 activations) except the ops writing the tensors
    named in ``int16_ops``, which get 16-bit activations (int16x8 kernels), and those named in
    ``float_ops``, which stay float (the quantizer's ``no_quantize``); the quantizer puts the
    requantizing and (de)quantizing ops between them. An op's recipe scope is its output tensor
    names, each followed by ``;``."""
    import re

    quantizer, recipe, _ = _quantizer()
    from ai_edge_quantizer import algorithm_manager, qtyping

    model, key, name, dynamic = _signature(model)
    engine = quantizer.Quantizer(bytearray(model), recipe.static_wi8_ai8())
    every_op = qtyping.TFLOperationName.ALL_SUPPORTED
    for op in int16_ops:
        engine.add_static_config("^" + re.escape(op + ";"), every_op, 16, 8)
    for op in float_ops:
        engine.update_quantization_recipe("^" + re.escape(op + ";"), every_op,
                                          algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    with captured_output(replay_on_error=False):
        ranges = engine.calibrate(_calibration_feed(key, name, calibration, dynamic),
                                  num_threads=1)
        return bytes(engine.quantize(ranges, enable_progress_report=False).quantized_model)


def tensor_errors(model: bytes, calibration: np.ndarray, samples: np.ndarray,
                  activation_bits: int = 8) -> list[dict]:
    """Per tensor of the quantized model that the float one also has (activations and the
    output; weights left out): the op that writes it, SNR in dB (signal power over the power
    of the quantized-minus-float difference; higher is better, under about 20 dB a layer loses
    visibly), cosine similarity and mean squared error, on ``samples``. Worst SNR first."""
    _, _, validation = _quantizer()
    model, key, name, _dynamic = _signature(model)
    engine, _quantized = quantize(model, calibration, activation_bits)
    metrics = [validation.ValidationErrorMetric.SNR,
               validation.ValidationErrorMetric.COSINE_SIMILARITY,
               validation.ValidationErrorMetric.MSE]
    with captured_output(replay_on_error=False):
        result = engine.validate(_feed(key, name, samples), error_metrics=metrics, num_threads=1)
    found = result.get_signature_comparison_result(key)
    ops = producing_ops(model)
    rows = []
    for tensors in (found.intermediate_tensors, found.output_tensors):
        for tensor, values in tensors.items():
            snr = float(values["snr"])
            rows.append({"op": ops.get(tensor, "?"), "tensor": tensor,
                         "snr_db": round(10 * math.log10(snr), 2) if snr > 0 else None,
                         "cosine": round(float(values["cosine_similarity"]), 5),
                         "mse": float(values["mse"])})
    return sorted(rows, key=lambda r: -math.inf if r["snr_db"] is None else r["snr_db"])
