"""Reading the TFLite flatbuffer with the schema classes that ship in ai-edge-litert (no TensorFlow)."""

from __future__ import annotations

from edgecv.errors import EdgecvError


def tflite_schema():
    """The generated flatbuffer classes of the TFLite schema (shipped with ai-edge-litert)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # tflite-runtime does not ship the schema
        raise EdgecvError("reading TFLite files needs ai-edge-litert: pip install ai-edge-litert") from exc
    return schema

TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer's file identifier


def unpack_model(model: bytes):
    """``model`` as a ``schema.ModelT`` (the object API, to edit and :func:`pack_model`).

    Buffers stored after the flatbuffer (``offset``/``size``, as the AI Edge Quantizer writes
    them) are read back into the tree: packing writes only the flatbuffer, so those offsets
    would point past the end of the new file."""
    import numpy as np

    tree = tflite_schema().ModelT.InitFromPackedBuf(bytearray(model), 0)
    for buffer in tree.buffers or []:
        if buffer.offset > 1:  # 0 and 1 mean "no external data"
            buffer.data = np.frombuffer(model, np.uint8, count=buffer.size, offset=buffer.offset)
            buffer.offset = buffer.size = 0
    return tree


def pack_model(tree, size_hint: int) -> bytes:
    """Serialize a ``schema.ModelT`` (the object API, after editing it) back to TFLite bytes;
    ``size_hint``: the expected size (the builder grows past it)."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint)
    builder.Finish(tree.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def builtin_op_names() -> dict[int, str]:
    """Builtin operator code -> its name (``CONV_2D``, ...)."""
    schema = tflite_schema()
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def operator_types(model: bytes) -> list[tuple[str, list[str]]]:
    """(operator name, dtypes of its input/output tensors) for every op stored in the file."""
    schema = tflite_schema()
    op_names = builtin_op_names()
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    root = schema.Model.GetRootAs(model, 0)
    codes = []
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(builtin, str(builtin))
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.CustomCode() or b'').decode()}"
        codes.append(name)
    result = []
    for s in range(root.SubgraphsLength()):
        graph = root.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            indices = [*op.InputsAsNumpy().tolist(), *op.OutputsAsNumpy().tolist()] \
                if op.InputsLength() or op.OutputsLength() else []
            dtypes = [type_names[graph.Tensors(i).Type()] for i in indices if i >= 0]
            result.append((codes[op.OpcodeIndex()], dtypes))
    return result
