"""Build minimal TFLite flatbuffers with the schema that ships in ai-edge-litert (no TensorFlow):
``scores = input + constant``, so tests can exercise the LiteRT backend, the integrity checks and
the card on real files that a runtime really executes."""

import flatbuffers
import numpy as np

from edgecv.tflite_schema import tflite_schema


def tiny_tflite(shape=(1, 8, 8, 1), constant=0.5, constant_shape=None, declared_shape=None) -> bytes:
    """A float32 ADD model. ``constant_shape`` stores a constant buffer of another shape than
    declared (a corrupt file); ``declared_shape`` overrides the output tensor's declared shape."""
    schema = tflite_schema()
    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    code.version = 1
    model.operatorCodes = [code]
    const = schema.BufferT()
    const.data = list(np.full(constant_shape or shape[1:], constant, np.float32).tobytes())
    model.buffers = [schema.BufferT(), schema.BufferT(), const, schema.BufferT()]

    def tensor(name, buffer, dims):
        t = schema.TensorT()
        t.name, t.type, t.shape, t.buffer = name, schema.TensorType.FLOAT32, list(dims), buffer
        return t

    graph = schema.SubGraphT()
    graph.tensors = [tensor("input", 1, shape), tensor("const", 2, (1, *shape[1:])),
                     tensor("scores", 3, declared_shape or shape)]
    graph.inputs, graph.outputs = [0], [2]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType = schema.BuiltinOptions.AddOptions
    op.builtinOptions = schema.AddOptionsT()
    graph.operators = [op]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def with_card(model: bytes, labels, height=8, width=8, channels=1) -> bytes:
    """``model`` with an edgecv card (identity preprocessing scale 1/255)."""
    from edgecv.card import ModelCard, embed_tflite_card
    from edgecv.preprocessing import Preprocessing

    card = ModelCard(labels=list(labels), preprocessing=Preprocessing(height, width, channels),
                     format="tflite_fp32")
    return embed_tflite_card(model, card)


def tiny_int8_tflite(input_scale=1 / 16, second_op="SOFTMAX") -> bytes:
    """A full-int8 classifier in the shape edgecv's files have: int8 input (1, 8, 8, 1) ->
    RESHAPE to (1, 64) -> SOFTMAX (64 int8 scores, scale 1/256, zero point -128). Its
    tensors are named as the TFLite converter names a Keras model's ("functional_1/flatten_1/
    Reshape"). ``input_scale`` is also the softmax input's scale; ``second_op`` replaces
    SOFTMAX's operator code (e.g. ``GELU``: an operator TFLite Micro has no kernel for)."""
    schema = tflite_schema()
    classes = 64
    model = schema.ModelT()
    model.version = 3
    codes = []
    for name in ("RESHAPE", second_op):
        code = schema.OperatorCodeT()
        code.builtinCode = getattr(schema.BuiltinOperator, name)
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
        code.version = 1
        codes.append(code)
    model.operatorCodes = codes
    shape_buffer = schema.BufferT()
    shape_buffer.data = list(np.array([1, classes], np.int32).tobytes())
    model.buffers = [schema.BufferT(), schema.BufferT(), shape_buffer, schema.BufferT(),
                     schema.BufferT()]

    def tensor(name, buffer, dims, dtype, scale=None, zero_point=0):
        t = schema.TensorT()
        t.name, t.buffer, t.shape = name, buffer, list(dims)
        t.type = getattr(schema.TensorType, dtype)
        if scale is not None:
            t.quantization = schema.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [float(scale)], [int(zero_point)]
        return t

    graph = schema.SubGraphT()
    graph.tensors = [tensor("serving_default_input:0", 1, (1, 8, 8, 1), "INT8", input_scale),
                     tensor("functional_1/flatten_1/Reshape/shape", 2, (2,), "INT32"),
                     tensor("functional_1/flatten_1/Reshape", 3, (1, classes), "INT8", input_scale),
                     tensor("functional_1/probs_1/Softmax", 4, (1, classes), "INT8", 1 / 256, -128)]
    graph.inputs, graph.outputs = [0], [3]
    reshape = schema.OperatorT()
    reshape.opcodeIndex, reshape.inputs, reshape.outputs = 0, [0, 1], [2]
    reshape.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
    reshape.builtinOptions = schema.ReshapeOptionsT()
    reshape.builtinOptions.newShape = [1, classes]
    softmax = schema.OperatorT()
    softmax.opcodeIndex, softmax.inputs, softmax.outputs = 1, [2], [3]
    softmax.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    softmax.builtinOptions = schema.SoftmaxOptionsT()
    softmax.builtinOptions.beta = 1.0
    graph.operators = [reshape, softmax]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def with_int8_card(model: bytes, labels) -> bytes:
    """A :func:`tiny_int8_tflite` model with an edgecv card (8 x 8 x 1, scale 1/255, int8
    I/O) naming its 64 outputs ``labels``."""
    from edgecv.card import ModelCard, Quantization, embed_tflite_card
    from edgecv.preprocessing import Preprocessing

    card = ModelCard(labels=list(labels), preprocessing=Preprocessing(8, 8, 1),
                     format="tflite_int8", input_dtype="int8", output_dtype="int8",
                     input_quantization=Quantization("int8", 1 / 16, 0),
                     output_quantization=Quantization("int8", 1 / 256, -128))
    return embed_tflite_card(model, card)


def dense_graph(input_width: int, ops, outputs=None, seed: int = 0) -> bytes:
    """A float32 graph of FULLY_CONNECTED and ADD operators, stored in the order of ``ops``.

    ``ops``: ``("dense", source, width)`` (random constant weights, no bias) or
    ``("add", source, source)``, a source being ``"input"`` or the index of an earlier entry of
    ``ops``; the graph returns the last entry (or the entries listed in ``outputs``). Tensor
    sizes are what the tests choose, so the arena TFLite Micro plans for it can be worked out by
    hand."""
    schema = tflite_schema()
    rng = np.random.default_rng(seed)
    model = schema.ModelT()
    model.version = 3
    model.operatorCodes = []
    for builtin in (schema.BuiltinOperator.FULLY_CONNECTED, schema.BuiltinOperator.ADD):
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        model.operatorCodes.append(code)
    model.buffers = [schema.BufferT()]
    graph = schema.SubGraphT()
    graph.tensors, graph.operators = [], []

    def tensor(name, width, data=None, shape=None):
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = list(np.asarray(data, np.float32).tobytes())
        model.buffers.append(buffer)
        t = schema.TensorT()
        t.name, t.type = name, schema.TensorType.FLOAT32
        t.shape, t.buffer = list(shape or (1, width)), len(model.buffers) - 1
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    widths = {"input": input_width}
    index = {"input": tensor("input", input_width)}
    for i, (kind, source, arg) in enumerate(ops):
        op = schema.OperatorT()
        if kind == "dense":
            weights = rng.standard_normal((arg, widths[source])) / np.sqrt(widths[source])
            w = tensor(f"w{i}", 0, weights, shape=(arg, widths[source]))
            widths[i] = arg
            op.opcodeIndex, op.inputs = 0, [index[source], w, -1]
            op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
            op.builtinOptions = schema.FullyConnectedOptionsT()
        else:
            widths[i] = widths[source]
            op.opcodeIndex, op.inputs = 1, [index[source], index[arg]]
            op.builtinOptionsType = schema.BuiltinOptions.AddOptions
            op.builtinOptions = schema.AddOptionsT()
        index[i] = tensor(f"t{i}", widths[i])
        op.outputs = [index[i]]
        graph.operators.append(op)
    graph.inputs = [index["input"]]
    graph.outputs = [index[o] for o in (outputs or [len(ops) - 1])]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
