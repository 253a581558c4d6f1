"""The model card: what a deployed artifact needs to be used correctly, carried inside the file.

A :class:`ModelCard` (labels, input shape and layout, preprocessing, quantization of input and
output, format, source run, version) is serialised to JSON and embedded

- in a TFLite file as a named metadata buffer (``edgecv_card``) of the flatbuffer, written and
  read with the schema that ships in ai-edge-litert (no TensorFlow needed);
- in an ONNX file as ``metadata_props`` entry ``edgecv_card`` (read back with onnxruntime's
  ``custom_metadata_map`` or the onnx package).

So ``predict``, ``bench`` and ``camera`` never need preprocessing flags.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field

from edgecv import __version__
from edgecv.errors import EdgecvError, ModelFileError
from edgecv.preprocessing import Preprocessing
from edgecv.tflite_schema import (TFLITE_IDENTIFIER, pack_model, set_metadata, tflite_schema,
                                  unpack_model)

CARD_KEY = "edgecv_card"


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = (q - zero_point) * scale."""

    dtype: str  # "int8", "uint8", "int16"
    scale: float
    zero_point: int


@dataclass
class ModelCard:
    """Everything needed to feed an artifact and read its output."""

    labels: list[str]
    preprocessing: Preprocessing
    format: str  # e.g. "tflite_int8", "onnx"
    task: str = "image-classification"
    input_dtype: str = "float32"
    output_dtype: str = "float32"
    input_quantization: Quantization | None = None
    output_quantization: Quantization | None = None
    source_run: str | None = None
    edgecv_version: str = __version__
    extra: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """NHWC shape of one input batch of size 1."""
        return (1, *self.preprocessing.input_shape)

    def to_json(self) -> str:
        data = asdict(self)
        data["preprocessing"] = self.preprocessing.to_dict()
        data["input_shape"] = list(self.input_shape)
        data["layout"] = self.preprocessing.layout
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelCard":
        """Parse a card; anything malformed (bad JSON, missing or invalid fields, a corrupted
        preprocessing contract) is a ModelFileError: the card comes from a file."""
        try:
            return cls._from_json(text)
        except ModelFileError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, EdgecvError) as exc:
            raise ModelFileError(f"corrupt model card ({type(exc).__name__}: {exc})"[:240]) from exc

    @classmethod
    def _from_json(cls, text: str | bytes) -> "ModelCard":
        data = json.loads(text)
        for key in ("input_quantization", "output_quantization"):
            if data.get(key) is not None:
                data[key] = Quantization(**data[key])
        data["preprocessing"] = Preprocessing.from_dict(data["preprocessing"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# --- TFLite -------------------------------------------------------------------------------------

def embed_tflite_card(model: bytes, card: ModelCard) -> bytes:
    """Return the TFLite flatbuffer ``model`` with ``card`` stored as metadata ``edgecv_card``
    (an existing card is replaced; the other metadata and the associated files zipped after the
    flatbuffer are kept)."""
    tree = unpack_model(model)
    set_metadata(tree, CARD_KEY, card.to_json().encode())
    return pack_model(tree, len(model) + 4096, files_of=model)


def read_tflite_card(model: bytes) -> ModelCard | None:
    """The card stored in a TFLite flatbuffer, or None if it has none."""
    schema = tflite_schema()
    if len(model) < 8 or model[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError("not a TFLite flatbuffer (missing the TFL3 identifier).")
    try:
        root = schema.Model.GetRootAs(model, 0)
        for i in range(root.MetadataLength()):
            entry = root.Metadata(i)
            if entry.Name() and entry.Name().decode() == CARD_KEY:
                return ModelCard.from_json(bytes(root.Buffers(entry.Buffer()).DataAsNumpy()))
    except (struct.error, IndexError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"corrupt TFLite file or model card ({type(exc).__name__}: {exc})"[:240]) from exc
    return None


# --- ONNX ---------------------------------------------------------------------------------------

def embed_onnx_card(model_proto, card: ModelCard) -> None:
    """Store ``card`` in ``model_proto.metadata_props`` (in place; replaces an existing card)."""
    for prop in list(model_proto.metadata_props):
        if prop.key == CARD_KEY:
            model_proto.metadata_props.remove(prop)
    entry = model_proto.metadata_props.add()
    entry.key = CARD_KEY
    entry.value = card.to_json()
