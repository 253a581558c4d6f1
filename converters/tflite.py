"""Keras -> TFLite: one function per flavour, each returning the flatbuffer bytes.

All use ``tf.lite.TFLiteConverter.from_keras_model`` (works with Keras 3 in TF 2.21) and builtin
ops only: SELECT_TF_OPS (Flex) is never enabled, since Flex ops run neither on a device runtime
nor on the Edge TPU. The converter's stdout chatter is captured (edgecv.tf_import).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from edgecv.errors import EdgecvError, UsageError
from edgecv.tflite_schema import operator_types
from edgecv.io import captured_output
from edgecv.tf_import import import_tensorflow

INT8_IO_TYPES = ("int8", "uint8", "float32")


class ConversionError(EdgecvError):
    """The converter failed, or its output breaks a promise (e.g. a float op in an int8 model)."""


def _convert(model, configure=None) -> bytes:
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if configure is not None:
        configure(tf, converter)
    try:
        with captured_output(replay_on_error=False):  # the error below says what matters
            return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError / ValueError / RuntimeError
        text = str(exc)
        unsupported = _unsupported_ops(text)
        if unsupported:
            where = ", ".join(f"{op} (layer '{layer}')" if layer else op
                              for op, layer in unsupported)
            raise ConversionError(
                f"TFLite conversion of '{model.name}' failed: {where} has no builtin TFLite "
                "kernel. Replace that layer with builtin-compatible layers; edgecv does not "
                "enable Flex (SELECT_TF_OPS) ops, which run neither on device runtimes nor on "
                "the Edge TPU.") from exc
        first = text.strip().splitlines()[0][:240] if text.strip() else type(exc).__name__
        raise ConversionError(f"TFLite conversion of '{model.name}' failed: {first}") from exc


def _unsupported_ops(text: str) -> list[tuple[str, str | None]]:
    """(``tf.Op``, Keras layer name or None) for each op the converter could not lower."""
    found: dict[str, str | None] = {}
    for op in re.findall(r"'(tf\.[A-Za-z0-9_]+)' op is neither a custom op nor a flex op", text):
        found.setdefault(op, None)
    for op_type, node in re.findall(r'fused\["(\w+):", "([^"@]+)@', text):
        parts = node.split("/")
        if f"tf.{op_type}" in found and len(parts) >= 2:
            found[f"tf.{op_type}"] = re.sub(r"_\d+$", "", parts[-2])
    return sorted(found.items())


def representative_samples(samples: np.ndarray) -> "callable":
    """A representative-dataset callable over float32 NHWC ``samples`` (one sample per step)."""
    if samples.ndim != 4 or len(samples) == 0:
        raise UsageError(
            f"calibration data must be a non-empty (N, H, W, C) batch, received shape {samples.shape}."
        )

    def generate() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [sample[None].astype(np.float32)]

    return generate


def to_tflite_fp32(model) -> bytes:
    """Float32 reference model."""
    return _convert(model)


def to_tflite_fp16(model) -> bytes:
    """Float16 weights (dequantized to float32 at load on CPU; native on GPU delegates)."""

    def configure(tf, converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]

    return _convert(model, configure)


def to_tflite_dynamic(model) -> bytes:
    """Dynamic-range quantization: int8 weights, float activations, no calibration data."""

    def configure(tf, converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    return _convert(model, configure)


def with_batch_one(model):
    """The same model behind an input of static shape (1, H, W, C): the Edge TPU compiler
    refuses dynamic shapes, and Keras models have a dynamic batch dimension."""
    import keras

    inputs = keras.Input(batch_shape=(1, *model.input_shape[1:]), name="input")
    return keras.Model(inputs, model(inputs), name=model.name)


def to_tflite_int8(model, calibration: np.ndarray, io: str = "int8",
                   static_batch: bool = False) -> bytes:
    """Full-integer int8 (builtin int8 kernels only). ``io``: int8 (default), uint8 (Edge TPU,
    camera pipelines) or float32 (a quantize/dequantize pair stays inside the model).
    ``static_batch`` fixes the batch dimension to 1 (default: dynamic)."""
    if static_batch:
        model = with_batch_one(model)
    if io not in INT8_IO_TYPES:
        raise UsageError(f"--io must be one of {', '.join(INT8_IO_TYPES)}, received '{io}'.")
    dataset = representative_samples(calibration)

    def configure(tf, converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io != "float32":
            converter.inference_input_type = {"int8": tf.int8, "uint8": tf.uint8}[io]
            converter.inference_output_type = {"int8": tf.int8, "uint8": tf.uint8}[io]

    return _convert(model, configure)


def to_tflite_int16x8(model, calibration: np.ndarray) -> bytes:
    """16-bit activations, 8-bit weights (float32 input and output)."""
    dataset = representative_samples(calibration)

    def configure(tf, converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]

    return _convert(model, configure)


def integer_only_violations(model: bytes, io: str = "int8") -> list[str]:
    """Ops of a full-int8 model that touch a tensor other than int8/int32, or are not builtin.

    The QUANTIZE/DEQUANTIZE ops at the model's edges may also use the ``io`` type (uint8 or
    float32) that was asked for with ``--io``.
    """
    allowed = {"int8", "int32"}
    edge_allowed = allowed | ({io} if io in ("uint8", "float32") else set())
    problems: list[str] = []
    for name, dtypes in operator_types(model):
        if name.startswith(("CUSTOM", "FLEX")) or name == "DELEGATE":
            problem = f"{name} (not a builtin op)"
        else:
            bad = sorted(set(dtypes) - (edge_allowed if name in ("QUANTIZE", "DEQUANTIZE")
                                        else allowed))
            problem = f"{name} uses {', '.join(bad)} tensors" if bad else None
        if problem and problem not in problems:
            problems.append(problem)
    return problems
