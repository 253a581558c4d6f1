"""Runtime backends: one small interface, one module per runtime. numpy-only (no TensorFlow).

``open_backend(path)`` picks the backend from the file type; every backend reads the artifact's
model card and exposes ``run(batch) -> scores``, where ``batch`` is float32 NHWC model input
(already normalised by the card's preprocessing) and ``scores`` are float32 probabilities:
quantization of the input and dequantization of the output happen inside, from the model's own
tensor parameters.
"""

from __future__ import annotations

from pathlib import Path

from edgecv.errors import ModelFileError
from edgecv.runtime.base import Backend, BackendUnavailable

__all__ = ["Backend", "BackendUnavailable", "open_backend"]


def open_backend(path: str | Path, *, threads: int | None = None) -> Backend:
    """Open ``path`` (.tflite or .onnx) on the CPU with its runtime."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist.")
    if path.suffix == ".tflite":
        from edgecv.runtime.litert import LiteRTBackend

        return LiteRTBackend(path, threads=threads)
    if path.suffix == ".onnx":
        from edgecv.runtime.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads=threads)
    raise ModelFileError(f"unsupported model file type '{path.suffix}' for '{path}'; "
                         "expected .tflite or .onnx.")
