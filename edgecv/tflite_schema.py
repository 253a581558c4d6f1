"""Reading the TFLite flatbuffer with the schema classes that ship in ai-edge-litert (no TensorFlow)."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from edgecv.errors import EdgecvError, ModelFileError


def tflite_schema():
    """The generated flatbuffer classes of the TFLite schema (shipped with ai-edge-litert)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # tflite-runtime does not ship the schema
        raise EdgecvError("reading TFLite files needs ai-edge-litert: pip install ai-edge-litert") from exc
    return schema

TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer's file identifier
# Associated files read back from a (hostile) model are refused above this size.
MAX_ASSOCIATED_FILE_BYTES = 4 * 1024 * 1024


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


def pack_model(tree, size_hint: int, files_of: bytes | None = None) -> bytes:
    """Serialize a ``schema.ModelT`` (the object API, after editing it) back to TFLite bytes;
    ``size_hint``: the expected size (the builder grows past it). Packing writes the flatbuffer
    alone, so ``files_of``, the file ``tree`` was read from, gives back the associated files
    zipped after its flatbuffer (the label file of standard TFLite Metadata,
    :mod:`edgecv.tflite_metadata`, :func:`associated_files`); default none."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint)
    builder.Finish(tree.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    packed = bytes(builder.Output())
    if files_of is not None:
        packed = with_associated_files(packed, associated_files(files_of))
    return packed


def with_associated_files(model: bytes, files: dict[str, bytes]) -> bytes:
    """``model`` (a flatbuffer with no zip after it) with ``files`` appended as a zip archive
    (stored, not compressed), as tflite-support's populator appends them."""
    if not files:
        return model
    out = io.BytesIO(model)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def associated_files(model: bytes) -> dict[str, bytes]:
    """The files of the zip appended to ``model`` ({} when it has none); a malformed archive or
    a file over :data:`MAX_ASSOCIATED_FILE_BYTES` is a :class:`ModelFileError`."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            entries = archive.infolist()
            too_big = [e.filename for e in entries if e.file_size > MAX_ASSOCIATED_FILE_BYTES]
            if too_big:
                raise ModelFileError(f"the model's associated file '{too_big[0]}' declares more "
                                     f"than {MAX_ASSOCIATED_FILE_BYTES:,} bytes.")
            return {e.filename: archive.read(e) for e in entries[:16]}
    except zipfile.BadZipFile:
        return {}
    except (OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise ModelFileError(f"corrupt associated files in the model ({exc})"[:240]) from exc


def _metadata_name(entry) -> str:
    return entry.name.decode(errors="replace") if isinstance(entry.name, bytes) else entry.name


def drop_metadata(tree, name: str) -> None:
    """Remove ``tree``'s (a ``schema.ModelT``) metadata entries called ``name``; their buffers
    stay, emptied, so the buffer indices of tensors and other entries do not move."""
    kept = []
    for entry in tree.metadata or []:
        if _metadata_name(entry) == name:
            tree.buffers[entry.buffer].data = None
        else:
            kept.append(entry)
    tree.metadata = kept or None


def set_metadata(tree, name: str, payload: bytes) -> None:
    """``payload`` as ``tree``'s metadata entry ``name`` in a new buffer, replacing an entry of
    that name (:func:`drop_metadata`); the other entries are kept."""
    import numpy as np

    schema = tflite_schema()
    drop_metadata(tree, name)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(tree.buffers) - 1
    tree.metadata = [*(tree.metadata or []), entry]


def builtin_op_names() -> dict[int, str]:
    """Builtin operator code -> its name (``CONV_2D``, ...)."""
    schema = tflite_schema()
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


@dataclass(frozen=True)
class Operator:
    """One operator stored in a TFLite file: ``name`` (the builtin's, e.g. ``CONV_2D``, or
    ``CUSTOM:<code>``), the dtypes of its input and output tensors, its output tensors' names."""

    name: str
    dtypes: list[str]
    outputs: list[str]

    @property
    def layer(self) -> str | None:
        """The Keras layer it came from, read from its first output's name (:func:`keras_layer`)."""
        return keras_layer(self.outputs[0]) if self.outputs else None

    def described(self) -> str:
        """``CONV_2D (layer 'conv1')``, or ``SOFTMAX (tensor 'output_0')`` when no layer shows."""
        if self.layer:
            return f"{self.name} (layer '{self.layer}')"
        return f"{self.name} (tensor '{self.outputs[0]}')" if self.outputs else self.name


# A Keras 3 layer's ops sit in a name scope "<layer>_<n>" under the model's ("functional_1/
# conv1_1/convolution1"); nested models add scopes ("functional_1/mobilenetv2_1/block_1_expand_1/
# Conv2D"). The converter joins the names of fused ops with ";".
_LAYER_SCOPE = re.compile(r"^(.+)_\d+$")


def keras_layer(tensor: str) -> str | None:
    """The Keras layer a tensor of a converted model came from, read from its name: the
    innermost ``<layer>_<n>`` scope below the model's (``functional_1/gelu_1/Gelu/mul_2`` ->
    ``gelu``), else the second part of ``model/layer/op``; None when the name holds neither
    (a renamed model output such as ``output_0``)."""
    parts = tensor.split(";")[0].split("/")
    layer = None
    for part in parts[1:]:
        match = _LAYER_SCOPE.match(part)
        if match is None:
            break
        layer = match.group(1)
    if layer is None and len(parts) >= 3:
        layer = parts[1]
    return layer


def operators(model: bytes) -> list[Operator]:
    """Every operator stored in the file, subgraph by subgraph, in execution order."""
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
            name = f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}"
        codes.append(name)
    result = []
    for s in range(root.SubgraphsLength()):
        graph = root.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            inputs = op.InputsAsNumpy().tolist() if op.InputsLength() else []
            outputs = op.OutputsAsNumpy().tolist() if op.OutputsLength() else []
            dtypes = [type_names[graph.Tensors(i).Type()] for i in [*inputs, *outputs] if i >= 0]
            names = [(graph.Tensors(i).Name() or b"").decode(errors="replace")
                     for i in outputs if i >= 0]
            result.append(Operator(codes[op.OpcodeIndex()], dtypes, names))
    return result


def operator_types(model: bytes) -> list[tuple[str, list[str]]]:
    """(operator name, dtypes of its input/output tensors) for every op stored in the file."""
    return [(op.name, op.dtypes) for op in operators(model)]


def integer_only_violations(model: bytes, io: str = "int8") -> list[str]:
    """Ops of a full-int8 model that touch a tensor other than int8/int32, or are not builtin,
    each named with its Keras layer (:meth:`Operator.described`).

    The QUANTIZE/DEQUANTIZE ops at the model's edges may also use the ``io`` type (uint8 or
    float32) that was asked for with ``--io``.
    """
    allowed = {"int8", "int32"}
    edge_allowed = allowed | ({io} if io in ("uint8", "float32") else set())
    problems: list[str] = []
    for op in operators(model):
        if op.name.startswith(("CUSTOM", "FLEX")) or op.name == "DELEGATE":
            problem = f"{op.described()} is not a builtin op"
        else:
            bad = sorted(set(op.dtypes) - (edge_allowed if op.name in ("QUANTIZE", "DEQUANTIZE")
                                           else allowed))
            problem = f"{op.described()} uses {', '.join(bad)} tensors" if bad else None
        if problem and problem not in problems:
            problems.append(problem)
    return problems
