"""Keras -> TFLite: one function per flavour, each returning the flatbuffer bytes.

All use ``tf.lite.TFLiteConverter.from_keras_model`` (works with Keras 3 in TF 2.21), or for a
SavedModel ``from_concrete_functions`` over its serving signature (:func:`make_converter`), and
builtin ops only. SELECT_TF_OPS (Flex) is enabled only when asked (``select_tf_ops``, fp32 / fp16 /
dynamic): Flex ops run neither on a device runtime without the Flex delegate nor on the Edge TPU,
so such a file is marked not deployable (:data:`FLEX_REASON`). The converter's stdout chatter is
captured (edgecv.tf_import).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from edgecv.errors import ConversionError, UsageError
# integer_only_violations lives with the schema (the device side checks files for TFLite Micro
# with it) and is re-exported here, where the int8 converters use it.
from edgecv.tflite_schema import integer_only_violations, operator_types  # noqa: F401
from edgecv.io import captured_output
from edgecv.tf_import import import_tensorflow

INT8_IO_TYPES = ("int8", "uint8", "float32")
FLEX_REASON = ("needs the Flex delegate: not runnable on tflite-runtime/ai-edge-litert without "
               "Flex, nor on the Edge TPU")


def make_converter(model, static_batch: bool = False):
    """A ``TFLiteConverter`` for a Keras model, or for a SavedModel's serving signature
    (:func:`edgecv.modelfile.reference.reference_of`). ``static_batch`` fixes the batch
    dimension to 1 (default: dynamic)."""
    from edgecv.modelfile.reference import reference_of

    return reference_of(model).tflite_converter(static_batch)


def _convert(model, configure=None, *, static_batch: bool = False,
             select_tf_ops: bool = False) -> bytes:
    tf = import_tensorflow()
    converter = make_converter(model, static_batch)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS] + (
        [tf.lite.OpsSet.SELECT_TF_OPS] if select_tf_ops else [])
    if configure is not None:
        configure(tf, converter)
    try:
        with captured_output(replay_on_error=False):  # the error below says what matters
            return with_serving_signature(bytes(converter.convert()))
    except Exception as exc:  # the converter raises ConverterError / ValueError / RuntimeError
        text = str(exc)
        unsupported = _unsupported_ops(text)
        if unsupported and not select_tf_ops:
            if any(layer is None for _, layer in unsupported):
                unsupported = _name_layers(model, unsupported)
            where = ", ".join(f"{op} (layer '{layer}')" if layer else op
                              for op, layer in unsupported)
            raise ConversionError(
                f"TFLite conversion of '{model.name}' failed: {where} has no builtin TFLite "
                "kernel. Fix: replace that layer with builtin-compatible layers (e.g. express "
                "it with keras.ops that TFLite lowers), or pass `select_tf_ops` to write fp32/"
                "fp16/dynamic models with Flex ops, marked not deployable (a Flex model "
                f"{FLEX_REASON}).") from exc
        first = text.strip().splitlines()[0][:240] if text.strip() else type(exc).__name__
        raise ConversionError(f"TFLite conversion of '{model.name}' failed: {first}") from exc


def with_serving_signature(data: bytes) -> bytes:
    """``data`` with the SignatureDef TF's SavedModel path writes (``serving_default``: input
    ``input``, output ``output_0``) and those names on its input and output tensors, unless it
    has a signature already. The frozen-graph conversion (:meth:`ModelReference.tflite_converter`)
    writes none, and LiteRT's ``get_signature_runner()`` and the Android / iOS APIs look the
    model's tensors up by signature."""
    from edgecv.tflite_schema import pack_model, tflite_schema, unpack_model

    schema = tflite_schema()
    tree = unpack_model(data)
    if tree.signatureDefs or len(tree.subgraphs) != 1:
        return data
    graph = tree.subgraphs[0]
    signature = schema.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0
    signature.inputs, signature.outputs = [], []
    for indices, names, side in ((graph.inputs, ["input"], signature.inputs),
                                 (graph.outputs, ["output_0"], signature.outputs)):
        names = names if len(indices) == 1 else [f"{names[0]}_{i}" for i in range(len(indices))]
        for index, name in zip(indices, names):
            graph.tensors[index].name = name
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = name, int(index)
            side.append(entry)
    tree.signatureDefs = [signature]
    return pack_model(tree, len(data) + 1024)


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


def _name_layers(model, unsupported: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """Find the layer of each op the converter's message did not place (its locations name
    Python lines, not nodes, for concrete functions), from the op's node name in the model's
    frozen graph (``.../<layer>_1/<Op>``)."""
    from edgecv.modelfile.reference import reference_of

    try:
        operations = reference_of(model).frozen_function().graph.get_operations()
    except Exception:  # only the error message's detail is at stake: keep the op names alone
        return unsupported
    nodes = {}
    for operation in operations:
        nodes.setdefault(f"tf.{operation.type}", operation.name)
    named = []
    for op, layer in unsupported:
        parts = nodes.get(op, "").split("/")
        if layer is None and len(parts) >= 2:
            layer = re.sub(r"_\d+$", "", parts[-2])
        named.append((op, layer))
    return named


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


def to_tflite_fp32(model, select_tf_ops: bool = False) -> bytes:
    """Float32 reference model. ``select_tf_ops`` allows Flex ops (default off)."""
    return _convert(model, select_tf_ops=select_tf_ops)


def to_tflite_fp16(model, select_tf_ops: bool = False) -> bytes:
    """Float16 weights (dequantized to float32 at load on CPU; native on GPU delegates).
    ``select_tf_ops`` allows Flex ops (default off)."""

    def configure(tf, converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]

    return _convert(model, configure, select_tf_ops=select_tf_ops)


def to_tflite_dynamic(model, select_tf_ops: bool = False) -> bytes:
    """Dynamic-range quantization: int8 weights, float activations, no calibration data.
    ``select_tf_ops`` allows Flex ops (default off)."""

    def configure(tf, converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    return _convert(model, configure, select_tf_ops=select_tf_ops)


def flex_ops(model: bytes) -> list[str]:
    """The Flex (TensorFlow) ops a TFLite model needs, e.g. ``['FlexMatrixInverse']``."""
    return sorted({name.split(":", 1)[1] for name, _ in operator_types(model)
                   if name.startswith("CUSTOM:Flex")})


def to_tflite_int8(model, calibration: np.ndarray, io: str = "int8",
                   static_batch: bool = False) -> bytes:
    """Full-integer int8 (builtin int8 kernels only). ``io``: int8 (default), uint8 (Edge TPU,
    camera pipelines) or float32 (a quantize/dequantize pair stays inside the model).
    ``static_batch`` fixes the batch dimension to 1 (default: dynamic)."""
    if io not in INT8_IO_TYPES:
        raise UsageError(f"`io` must be one of {', '.join(INT8_IO_TYPES)}, received '{io}'.")
    dataset = representative_samples(calibration)

    def configure(tf, converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io != "float32":
            converter.inference_input_type = {"int8": tf.int8, "uint8": tf.uint8}[io]
            converter.inference_output_type = {"int8": tf.int8, "uint8": tf.uint8}[io]

    return _convert(model, configure, static_batch=static_batch)


def to_tflite_int16x8(model, calibration: np.ndarray) -> bytes:
    """16-bit activations, 8-bit weights (float32 input and output)."""
    dataset = representative_samples(calibration)

    def configure(tf, converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]

    return _convert(model, configure)


def with_pixel_input(data: bytes, preprocessing) -> bytes:
    """A uint8-input int8 model whose input holds the raw 0..255 pixels: the input tensor's
    quantization set to :func:`edgecv.tflite_metadata.pixel_quantization` of ``preprocessing``
    (scale ``scale / std``, zero point ``mean / scale``), so a client that feeds an
    image's pixels unchanged, as MediaPipe Tasks, the Task Library and pycoral do for a uint8
    input, computes what the model was trained on.

    The converter quantizes the input with the range calibration saw, which differs from the
    pixels' whenever the calibration images miss a 0 or a 255, or the normalisation is not
    pixel / 255. Only the QUANTIZE op behind the input reads that quantization (it requantizes
    to the int8 tensor inside, computing its multiplier from both at load time), so nothing else
    changes. ``data`` is returned unchanged when its input is not uint8, when an op other than
    QUANTIZE reads it, or when no pixel quantization exists (a per-channel normalisation)."""
    from edgecv.tflite_metadata import pixel_quantization
    from edgecv.tflite_schema import pack_model, tflite_schema, unpack_model

    schema = tflite_schema()
    wanted = pixel_quantization(preprocessing)
    tree = unpack_model(data)
    graph = tree.subgraphs[0]
    if wanted is None or len(graph.inputs) != 1:
        return data
    index = int(graph.inputs[0])
    tensor = graph.tensors[index]
    quantize = schema.BuiltinOperator.QUANTIZE
    readers = [tree.operatorCodes[op.opcodeIndex] for op in graph.operators
               if index in [int(i) for i in op.inputs]]
    if (tensor.type != schema.TensorType.UINT8 or not readers
            or any(max(code.builtinCode, code.deprecatedBuiltinCode) != quantize
                   for code in readers)):
        return data
    scale, zero_point = wanted
    quantization = schema.QuantizationParametersT()
    quantization.scale, quantization.zeroPoint = [scale], [zero_point]
    tensor.quantization = quantization
    return pack_model(tree, len(data) + 1024)
