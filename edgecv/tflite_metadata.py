"""Standard TFLite Metadata, the description MediaPipe Tasks, the TFLite Task Library and Android
Studio's ML Model Binding read from an image classifier: written beside edgecv's own card.

The metadata is a flatbuffer with file identifier ``M001`` (the published
``metadata_schema.fbs`` of tflite-support, schema 1.0), stored in a buffer of the model that a
``model.metadata`` entry named ``TFLITE_METADATA`` points to; its associated files (here
``labels.txt``, one label a line, in output order) are packed in a zip archive appended to the
flatbuffer, so the ``.tflite`` file is also a valid zip. tflite-support's writer does the same
with Python's ``zipfile`` in append mode; it is not used here because its metadata writer pins
protobuf 3.20, which TensorFlow 2.21 cannot share, and MediaPipe's fails to import its compiled
module. The flatbuffer is built with the ``flatbuffers`` package's Builder, field by field from
the schema (no generated code, no TensorFlow), and read back the same way.

What a client is told (:class:`ImageClassifierMetadata`): the input is an RGB or grayscale image
of the model's size, normalised as ``(pixel - mean) / std`` with ``mean`` and ``std`` in 0..255
pixel units (the card's ``(pixel * scale - mean) / std`` divided through by ``scale``); the
output is one score per label. A client feeds a float32 input so; a uint8 input gets the raw
pixels, which is right only when the file's input quantization is the pixel values themselves
(:func:`pixel_quantization`). A file a client could not use as described gets no metadata and a
reason (:func:`metadata_refusal`): int8 or int16 input (MediaPipe and the Task Library take uint8
or float32 images), a uint8 input quantized otherwise, Flex ops, a label with a line break.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from edgecv.errors import ModelFileError
from edgecv.tflite_schema import associated_files, with_associated_files

METADATA_NAME = "TFLITE_METADATA"  # the model.metadata entry clients look up
METADATA_IDENTIFIER = b"M001"  # metadata_schema.fbs's file_identifier
# The oldest metadata parser that understands every field written here (schema 1.0.0: no
# VOCABULARY file, no 1.1 tokenizer options or subgraph process units).
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"

# metadata_schema.fbs enums and union member indices used here
COLOR_SPACES = {"RGB": 1, "GRAYSCALE": 2}
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions


@dataclass(frozen=True)
class ImageClassifierMetadata:
    """What the standard metadata of an image classifier says: model ``name``, ``description``,
    ``version``, ``author``; the input image's ``color_space`` (``RGB`` or ``GRAYSCALE``),
    ``width`` and ``height``, and its normalisation ``mean`` / ``std`` in 0..255 pixel units;
    the output's ``labels`` (the associated file ``label_file``)."""

    name: str
    description: str
    version: str
    author: str
    color_space: str
    width: int
    height: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: list[str]
    label_file: str = LABELS_FILE
    input_name: str = "image"
    output_name: str = "scores"
    input_range: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (min, max) stats

    def summary(self) -> str:
        """One line for ``edgecv info``."""
        def values(v):
            return ",".join(f"{x:g}" for x in v)

        return (f"{self.input_name} {self.width}x{self.height} {self.color_space}, "
                f"(pixel - mean {values(self.mean)}) / std {values(self.std)}; "
                f"{self.output_name}: {len(self.labels)} labels in {self.label_file}")


# --- what to write -----------------------------------------------------------------------------

def pixel_normalization(preprocessing) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``preprocessing``'s ``(pixel * scale - mean) / std`` as ``(pixel - mean') / std'`` with
    ``mean' = mean / scale`` and ``std' = std / scale`` (0..255 pixel units, as the metadata's
    NormalizationOptions and its clients use them), one value per channel or a single one."""
    scale = float(preprocessing.scale)
    return (tuple(float(m) / scale for m in preprocessing.mean),
            tuple(float(s) / scale for s in preprocessing.std))


def pixel_quantization(preprocessing) -> tuple[float, int] | None:
    """The (scale, zero point) of a uint8 input whose stored values are the raw pixels, for
    ``preprocessing``: real = (pixel - mean') * (1 / std'), so scale ``1 / std'`` and zero point
    ``mean'`` rounded to an integer (at most half a pixel value off: a mean of 127.5 becomes
    128). None when no such quantization exists: per-channel values that differ, or a zero
    point outside 0..255."""
    mean, std = pixel_normalization(preprocessing)
    if len(set(mean)) > 1 or len(set(std)) > 1:
        return None
    zero_point = int(np.floor(mean[0] + 0.5))
    if not 0 <= zero_point <= 255 or std[0] <= 0:
        return None
    return 1.0 / std[0], zero_point


def is_pixel_quantization(quantization, preprocessing) -> bool:
    """Whether a uint8 input's ``quantization`` (the card's) takes raw pixels for ``preprocessing``
    (scale within 1e-5 relative, zero point equal)."""
    wanted = pixel_quantization(preprocessing)
    if wanted is None or quantization is None:
        return False
    scale, zero_point = wanted
    return (abs(quantization.scale - scale) <= 1e-5 * scale
            and int(quantization.zero_point) == zero_point)


def metadata_refusal(card) -> str | None:
    """Why a file with this model card gets no standard metadata (a client could not use it as
    the metadata would describe it), or None when it gets it."""
    extra = card.extra or {}
    if extra.get("deployable") is False:
        return "it needs Flex ops, which MediaPipe Tasks and the Task Library cannot run"
    if card.input_dtype in ("int8", "int16"):
        return (f"its input is {card.input_dtype}, and MediaPipe Tasks and the TFLite Task Library "
                "take uint8 or float32 images (convert with --io uint8 for them)")
    if card.input_dtype == "uint8" and not is_pixel_quantization(card.input_quantization,
                                                                  card.preprocessing):
        return ("its uint8 input is not quantized as the raw pixels (a per-channel "
                "normalisation, or a zero point outside 0..255), and clients feed raw pixels "
                "to a uint8 input")
    if card.input_dtype not in ("uint8", "float32"):
        return f"its input is {card.input_dtype}; clients feed uint8 or float32 images"
    broken = [label for label in card.labels if "\n" in label or "\r" in label]
    if broken:
        return f"the label {broken[0]!r} holds a line break, which {LABELS_FILE} cannot hold"
    return None


def classifier_metadata(card, name: str | None = None) -> ImageClassifierMetadata:
    """The standard metadata describing a file with this model card (labels, image size, colour
    space, normalisation in pixel units); ``name`` defaults to the source run's folder name."""
    from pathlib import PurePath

    from edgecv import __version__

    pre = card.preprocessing
    mean, std = pixel_normalization(pre)
    run = PurePath(card.source_run).name if card.source_run else None
    name = name or run or "edgecv_image_classifier"
    labels = list(card.labels)
    shown = ", ".join(labels[:10]) + (f" and {len(labels) - 10} more" if len(labels) > 10 else "")
    colour = "RGB" if pre.channels == 3 else "GRAYSCALE"
    if card.input_dtype == "uint8":
        low, high = (0.0,), (255.0,)
    else:
        low = tuple((0.0 - m) / s for m, s in zip(*_per_channel(mean, std, pre.channels)))
        high = tuple((255.0 - m) / s for m, s in zip(*_per_channel(mean, std, pre.channels)))
    return ImageClassifierMetadata(
        name=name,
        description=(f"Image classifier ({pre.height}x{pre.width} {colour} input, "
                     f"{len(labels)} classes: {shown}), {card.format}, made by edgecv "
                     f"{card.edgecv_version}."),
        version=f"{card.format} (edgecv {card.edgecv_version})",
        author=f"edgecv {__version__} (edgecv convert)",
        color_space=colour, width=pre.width, height=pre.height, mean=mean, std=std,
        labels=labels, input_range=(low, high))


def _per_channel(mean, std, channels):
    expand = (lambda v: tuple(v) * channels if len(v) == 1 else tuple(v))
    return expand(mean), expand(std)


# --- writing -----------------------------------------------------------------------------------

def _string(builder, text: str | None):
    return builder.CreateString(text) if text is not None else None


def _table(builder, slots: int, fields: list[tuple[int, str, object]]) -> int:
    """One table: ``fields`` are (slot, kind, value) with kind ``offset``, ``uint8`` or
    ``uint32``; None values are left out."""
    builder.StartObject(slots)
    for slot, kind, value in fields:
        if value is None:
            continue
        if kind == "offset":
            builder.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "uint8":
            builder.PrependUint8Slot(slot, value, 0)
        else:
            builder.PrependUint32Slot(slot, value, 0)
    return builder.EndObject()


def _tables(builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _floats(builder, values) -> int:
    return builder.CreateNumpyVector(np.asarray(values, np.float32))


def metadata_flatbuffer(meta: ImageClassifierMetadata) -> bytes:
    """``meta`` as a ``ModelMetadata`` flatbuffer (identifier ``M001``), field slots as declared
    in metadata_schema.fbs."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    # AssociatedFile {name, description, type, locale}
    labels_file = _table(b, 4, [
        (0, "offset", _string(b, meta.label_file)),
        (1, "offset", _string(b, "Labels of the categories, one a line, in output order.")),
        (2, "uint8", _TENSOR_AXIS_LABELS)])
    # input: ImageSize {width, height}; ImageProperties {color_space, default_size}
    size = _table(b, 2, [(0, "uint32", meta.width), (1, "uint32", meta.height)])
    image = _table(b, 2, [(0, "uint8", COLOR_SPACES[meta.color_space]), (1, "offset", size)])
    # Content {content_properties_type, content_properties, range}
    image_content = _table(b, 3, [(0, "uint8", _IMAGE_PROPERTIES), (1, "offset", image)])
    # NormalizationOptions {mean, std}; ProcessUnit {options_type, options}
    mean, std = _floats(b, meta.mean), _floats(b, meta.std)
    normalization = _table(b, 2, [(0, "offset", mean), (1, "offset", std)])
    unit = _table(b, 2, [(0, "uint8", _NORMALIZATION_OPTIONS), (1, "offset", normalization)])
    units = _tables(b, [unit])
    stats = None
    if meta.input_range is not None:  # Stats {max, min}
        high, low = _floats(b, meta.input_range[1]), _floats(b, meta.input_range[0])
        stats = _table(b, 2, [(0, "offset", high), (1, "offset", low)])
    # TensorMetadata {name, description, dimension_names, content, process_units, stats,
    # associated_files}
    input_tensor = _table(b, 7, [
        (0, "offset", _string(b, meta.input_name)),
        (1, "offset", _string(b, f"Input image, {meta.width}x{meta.height} {meta.color_space}, "
                                  "normalised as (pixel - mean) / std.")),
        (3, "offset", image_content), (4, "offset", units), (5, "offset", stats)])
    feature = _table(b, 0, [])  # FeatureProperties {}
    score_content = _table(b, 3, [(0, "uint8", _FEATURE_PROPERTIES), (1, "offset", feature)])
    output_tensor = _table(b, 7, [
        (0, "offset", _string(b, meta.output_name)),
        (1, "offset", _string(b, f"Scores of the {len(meta.labels)} categories, in "
                                  f"{meta.label_file}'s order.")),
        (3, "offset", score_content), (6, "offset", _tables(b, [labels_file]))])
    # SubGraphMetadata {name, description, input_tensor_metadata, output_tensor_metadata, ...}
    subgraph = _table(b, 7, [
        (0, "offset", _string(b, meta.name)),
        (2, "offset", _tables(b, [input_tensor])), (3, "offset", _tables(b, [output_tensor]))])
    # ModelMetadata {name, description, version, subgraph_metadata, author, license,
    # associated_files, min_parser_version}
    root = _table(b, 8, [
        (0, "offset", _string(b, meta.name)), (1, "offset", _string(b, meta.description)),
        (2, "offset", _string(b, meta.version)), (3, "offset", _tables(b, [subgraph])),
        (4, "offset", _string(b, meta.author)),
        (7, "offset", _string(b, MIN_PARSER_VERSION))])
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def labels_text(labels: list[str]) -> bytes:
    """The label file: one label a line, UTF-8."""
    return "".join(f"{label}\n" for label in labels).encode()


def without_tflite_metadata(model: bytes) -> bytes:
    """``model`` without its standard metadata: the ``TFLITE_METADATA`` entry dropped (its
    buffer emptied) and the appended zip gone (repacking writes the flatbuffer alone)."""
    from edgecv.tflite_schema import drop_metadata, pack_model, unpack_model

    tree = unpack_model(model)
    drop_metadata(tree, METADATA_NAME)
    return pack_model(tree, len(model) + 1024)


def with_tflite_metadata(model: bytes, meta: ImageClassifierMetadata) -> bytes:
    """``model`` with ``meta`` as its standard metadata (replacing any it had) and the label file
    appended. The other metadata entries (edgecv's card, TFLite's own) are kept."""
    from edgecv.tflite_schema import pack_model, set_metadata, unpack_model

    payload = metadata_flatbuffer(meta)
    tree = unpack_model(model)  # packing drops the zip of the label file it may have had
    set_metadata(tree, METADATA_NAME, payload)
    packed = pack_model(tree, len(model) + len(payload) + 1024)
    return with_associated_files(packed, {meta.label_file: labels_text(meta.labels)})


# --- reading -----------------------------------------------------------------------------------

class _Table:
    """A flatbuffer table read by slot (what generated code does), bounds-checked by the
    caller's exception handling."""

    def __init__(self, data: bytes, position: int):
        from flatbuffers import table

        self.table = table.Table(bytearray(data), position)
        self.data = data

    def _offset(self, slot: int) -> int:
        return self.table.Offset(4 + 2 * slot)

    def string(self, slot: int) -> str | None:
        o = self._offset(slot)
        return self.table.String(o + self.table.Pos).decode("utf-8", "replace") if o else None

    def uint(self, slot: int, fmt: str) -> int:
        o = self._offset(slot)
        return struct.unpack_from(fmt, self.data, self.table.Pos + o)[0] if o else 0

    def child(self, slot: int) -> "_Table | None":
        o = self._offset(slot)
        return _Table(self.data, self.table.Indirect(o + self.table.Pos)) if o else None

    def children(self, slot: int) -> list["_Table"]:
        o = self._offset(slot)
        if not o:
            return []
        start, count = self.table.Vector(o), self.table.VectorLen(o)
        if count > 64:
            raise ValueError(f"{count} tables where a classifier has a few")
        return [_Table(self.data, self.table.Indirect(start + 4 * i)) for i in range(count)]

    def floats(self, slot: int) -> tuple[float, ...]:
        o = self._offset(slot)
        if not o:
            return ()
        start, count = self.table.Vector(o), self.table.VectorLen(o)
        if count > 64 or start + 4 * count > len(self.data):
            raise ValueError("float vector out of bounds")
        return tuple(float(v) for v in np.frombuffer(self.data, "<f4", count, start))


def metadata_buffer(model: bytes) -> bytes | None:
    """The bytes of the model's ``TFLITE_METADATA`` buffer, or None."""
    from edgecv.tflite_schema import tflite_schema

    root = tflite_schema().Model.GetRootAs(model, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name() and entry.Name().decode(errors="replace") == METADATA_NAME:
            return bytes(root.Buffers(entry.Buffer()).DataAsNumpy())
    return None


def read_tflite_metadata(model: bytes) -> ImageClassifierMetadata | None:
    """The standard metadata of a TFLite image classifier, or None when the file has none; a
    malformed one (or a missing label file) is a :class:`ModelFileError`."""
    try:
        payload = metadata_buffer(model)
        if payload is None:
            return None
        if payload[4:8] != METADATA_IDENTIFIER:
            raise ModelFileError(f"the {METADATA_NAME} buffer is not a metadata flatbuffer "
                                 f"(identifier {payload[4:8]!r}, expected {METADATA_IDENTIFIER!r}).")
        root = _Table(payload, struct.unpack_from("<I", payload, 0)[0])
        subgraph = root.children(3)[0]
        inp, out = subgraph.children(2)[0], subgraph.children(3)[0]
        content = inp.child(3)
        image = content.child(1) if content and content.uint(0, "<B") == _IMAGE_PROPERTIES else None
        size = image.child(1) if image else None
        normalization = None
        for unit in inp.children(4):
            if unit.uint(0, "<B") == _NORMALIZATION_OPTIONS:
                normalization = unit.child(1)
        label_names = [f.string(0) for f in out.children(6) if f.uint(2, "<b") == _TENSOR_AXIS_LABELS]
        stats = inp.child(5)
    except ModelFileError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"corrupt {METADATA_NAME} metadata ({type(exc).__name__}: {exc})"[:240]) from exc
    colour = {v: k for k, v in COLOR_SPACES.items()}.get(image.uint(0, "<b") if image else 0, "UNKNOWN")
    labels: list[str] = []
    if label_names:
        files = associated_files(model)
        if label_names[0] not in files:
            raise ModelFileError(f"the model's metadata names the label file '{label_names[0]}', "
                                 "which is not in the zip appended to it.")
        labels = files[label_names[0]].decode("utf-8", "replace").splitlines()
    return ImageClassifierMetadata(
        name=root.string(0) or "", description=root.string(1) or "", version=root.string(2) or "",
        author=root.string(4) or "", color_space=colour,
        width=size.uint(0, "<I") if size else 0, height=size.uint(1, "<I") if size else 0,
        mean=normalization.floats(0) if normalization else (),
        std=normalization.floats(1) if normalization else (),
        labels=labels, label_file=label_names[0] if label_names else "",
        input_name=inp.string(0) or "", output_name=out.string(0) or "",
        input_range=(stats.floats(1), stats.floats(0)) if stats else None)
