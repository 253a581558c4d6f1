"""``edgecv info FILE``: the model card, inputs/outputs, operator counts and size of an artifact."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from edgecv.errors import ModelFileError


def describe(path: str | Path) -> str:
    """A human-readable description of a .tflite or .onnx artifact."""
    from edgecv.runtime import open_backend

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist.")
    data = path.read_bytes()
    lines = [f"file      {path}", f"size      {len(data):,} bytes ({len(data) / 1024:.1f} KiB)",
             f"sha256    {hashlib.sha256(data).hexdigest()}"]
    with open_backend(path) as backend:
        lines.append(f"runtime   {backend.name}")
        lines.extend(f"{kind:<9} {detail}" for kind, detail in backend.io_details())
        card = backend.card
    if path.suffix == ".tflite":
        from edgecv.tflite_schema import operator_types

        ops = Counter(name for name, _ in operator_types(data))
    else:
        try:
            import onnx
        except ImportError:  # the device side may have onnxruntime only
            onnx = None
        ops = Counter(node.op_type for node in onnx.load_from_string(data).graph.node) if onnx else None
    if ops is None:
        lines.append("operators (install onnx to list them)")
    else:
        lines.append("operators " + ", ".join(f"{n} x{c}" for n, c in sorted(ops.items())))
    if card is None:
        lines.append("card      none (not written by edgecv: preprocessing must be given by hand)")
    else:
        lines.append("card")
        lines.extend(f"  {key:<20} {json.dumps(value)}"
                     for key, value in sorted(json.loads(card.to_json()).items()))
    return "\n".join(lines)
