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
