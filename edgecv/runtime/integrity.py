"""Checks that run before a model file is handed to a runtime (numpy + the TFLite schema only).

The flatbuffer verifier that ai-edge-litert runs on ``model_content`` checks structure only
(shared/RUNTIME_FACTS.md): a file with three flipped bits declared a tensor that made XNNPACK
allocate 8.4 GB, and about one single-bit flip in five loads and runs with silently changed
weights. Two checks catch what the verifier cannot:

- :func:`check_tflite_tensor_sizes`: every declared tensor is of a plausible size, and every
  constant tensor's buffer holds exactly the bytes its shape and type declare;
- :func:`check_recorded_checksum`: the SHA-256 that ``edgecv convert`` recorded in
  ``conversion.json`` beside the artifact still matches the file.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from edgecv.errors import ModelFileError, UsageError
from edgecv.rundir import ExportDir

# Edge models are megabytes; a single tensor of 1 GiB (or 4 GiB of them in all) is a corrupt
# shape, not a model this toolkit deploys.
MAX_TENSOR_BYTES = 1 << 30
MAX_TOTAL_TENSOR_BYTES = 4 << 30
CHECKSUM_POLICIES = ("warn", "refuse", "off")

# bytes per element of each TFLite tensor type (lower-case schema names) with a fixed size
ITEM_BYTES = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1,
              "int16": 2, "int8": 1, "float64": 8, "uint64": 8, "uint32": 4, "uint16": 2,
              "complex64": 8, "complex128": 16, "bfloat16": 2}


def check_tflite_tensor_sizes(model: bytes, max_tensor_bytes: int = MAX_TENSOR_BYTES,
                              max_total_bytes: int = MAX_TOTAL_TENSOR_BYTES) -> None:
    """Raise ModelFileError if a tensor declares an absurd size or a constant buffer's length
    disagrees with its declared shape. Defaults: 1 GiB per tensor, 4 GiB in all."""
    from edgecv.tflite_schema import tflite_schema

    schema = tflite_schema()
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    try:
        root = schema.Model.GetRootAs(model, 0)
        total = 0
        for s in range(root.SubgraphsLength()):
            graph = root.Subgraphs(s)
            for t in range(graph.TensorsLength()):
                tensor = graph.Tensors(t)
                dtype = type_names.get(tensor.Type(), "unknown")
                item = ITEM_BYTES.get(dtype)
                if item is None or tensor.Sparsity() is not None:
                    continue  # strings, int4 and sparse tensors have no fixed byte size
                shape = tensor.ShapeAsNumpy().tolist() if tensor.ShapeLength() else []
                if any(d < 0 for d in shape):
                    raise ModelFileError(f"tensor '{_name(tensor)}' declares a negative dimension "
                                         f"{shape}; the file is corrupt.")
                nbytes = int(np.prod(shape, dtype=object)) * item if shape else item
                if nbytes > max_tensor_bytes:
                    raise ModelFileError(
                        f"tensor '{_name(tensor)}' declares shape {shape} ({nbytes / 2**30:.1f} GiB "
                        f"of {dtype}), more than {max_tensor_bytes / 2**30:.1f} GiB: the file is "
                        "corrupt, and loading it would allocate that memory.")
                total += nbytes
                buffer = root.Buffers(tensor.Buffer()) if tensor.Buffer() < root.BuffersLength() else None
                stored = buffer.DataLength() if buffer is not None else 0
                if stored and stored != nbytes:
                    raise ModelFileError(
                        f"constant tensor '{_name(tensor)}' declares shape {shape} of {dtype} "
                        f"({nbytes} bytes) but its buffer holds {stored} bytes: the file is corrupt.")
    except (struct.error, IndexError, ValueError, TypeError, OverflowError) as exc:
        raise ModelFileError(f"corrupt TFLite tensor table ({type(exc).__name__}: {exc})"[:240]) from exc
    if total > max_total_bytes:
        raise ModelFileError(f"the model's tensors declare {total / 2**30:.1f} GiB in all, more "
                             f"than {max_total_bytes / 2**30:.1f} GiB: the file is corrupt.")


def _name(tensor) -> str:
    return (tensor.Name() or b"?").decode(errors="replace")


def recorded_checksum(path: Path) -> str | None:
    """The SHA-256 that ``edgecv convert`` recorded for ``path`` in the ``conversion.json``
    beside it, or None when there is no such record."""
    manifest = ExportDir(path.parent).conversion
    if not manifest.is_file():
        return None
    try:
        rows = json.loads(manifest.read_text()).get("artifacts", [])
    except (ValueError, OSError, AttributeError):
        return None
    return next((row.get("sha256") for row in rows if row.get("file") == path.name), None)


def check_recorded_checksum(path: Path, data: bytes, policy: str = "warn") -> str | None:
    """Compare ``data`` with the checksum recorded at convert time.

    ``policy``: ``warn`` (default) returns a warning text on mismatch, ``refuse`` raises
    ModelFileError, ``off`` skips the check. Returns None when the file matches or has no record.
    """
    if policy not in CHECKSUM_POLICIES:
        raise UsageError(f"`checksum` must be one of {', '.join(CHECKSUM_POLICIES)}, "
                         f"received '{policy}'.")
    if policy == "off":
        return None
    expected = recorded_checksum(path)
    if expected is None:
        return None
    actual = hashlib.sha256(data).hexdigest()
    if actual == expected:
        return None
    manifest = ExportDir(path.parent).conversion.name
    message = (f"'{path}' does not match the SHA-256 recorded in {manifest} when it was "
               f"converted ({actual[:12]}... vs {expected[:12]}...): the file was changed or "
               "corrupted since; re-run edgecv convert")
    if policy == "refuse":
        raise ModelFileError(message + ".")
    return message + " (use `checksum='refuse'` to reject such files)."
