"""Runtime backends: one small interface, one module per runtime. numpy-only (no TensorFlow,
except the Keras reference backend, which imports it only when a Keras model is opened).

``open_backend(path, target=...)`` picks the backend from the file type; every backend reads
the artifact's model card and exposes ``run(batch) -> scores``, where ``batch`` is float32 NHWC
model input (already normalised by the card's preprocessing) and ``scores`` are float32
probabilities: quantization of the input and dequantization of the output happen inside, from
the model's own tensor parameters. ``bench``, ``predict`` and ``camera`` all go through here.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgecv.card import ModelCard, read_tflite_card
from edgecv.errors import ModelFileError, UsageError
from edgecv.modelfile.kinds import is_saved_model, runtime_for
from edgecv.runtime.base import Backend
from edgecv.runtime.targets import TARGETS

__all__ = ["Backend", "TARGETS", "cpu_flags", "open_backend", "read_card", "usable_cores"]


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The feature flags of the first CPU (x86 ``flags``, ARM ``Features``); empty if unknown."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask on Linux), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def open_backend(path: str | Path, *, target: str = "cpu", threads: int | None = None,
                 checksum: str = "warn", custom_objects: str | None = None,
                 weights: str | None = None) -> Backend:
    """Open ``path`` (.tflite, .onnx, or a Keras model: .keras, .h5, .json with ``weights``, a
    SavedModel directory) on ``target`` (default cpu) with its runtime: a .tflite on ``mcu``
    runs in TFLite Micro (:class:`~edgecv.runtime.tflm.TFLMBackend`). ``custom_objects``
    (``FILE.py[:Names]``) and ``weights`` apply to Keras models only. Raises ModelFileError for a
    missing/corrupt file and :class:`~edgecv.errors.BackendUnavailable` (with the reason) when the target cannot run
    it here."""
    path = Path(path)
    if threads is not None and threads < 1:
        raise UsageError(f"`threads` must be at least 1, received {threads}.")
    if not path.is_file() and not is_saved_model(path):
        raise ModelFileError(f"model file '{path}' does not exist.")
    try:
        runtime = runtime_for(path)
    except UsageError as exc:
        raise ModelFileError(f"unsupported model file type '{path.suffix}' for '{path}'; "
                             "expected .tflite, .onnx, .keras, .h5, .json or a SavedModel "
                             "directory.") from exc
    if target == "mcu":
        from edgecv.errors import BackendUnavailable
        from edgecv.runtime.tflm import NAME, TFLMBackend

        if runtime != "litert":
            raise BackendUnavailable(NAME, f"'{path.name}' is not a .tflite file: a "
                                     "microcontroller (TFLite Micro) runs full-int8 .tflite files")
        return TFLMBackend(path, checksum=checksum)
    if runtime == "litert":
        from edgecv.runtime.litert import LiteRTBackend

        return LiteRTBackend(path, threads=threads, target=target, checksum=checksum)
    if runtime == "onnxruntime":
        from edgecv.runtime.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads=threads, target=target, checksum=checksum)
    from edgecv.runtime.keras import KerasBackend

    return KerasBackend(path, threads=threads, target=target, custom_objects=custom_objects,
                        weights=weights)


def read_onnx_card(path: str | Path) -> ModelCard | None:
    """The card of an ONNX file, read through onnxruntime (no onnx package needed; here, not in
    edgecv.card, so the card module needs no runtime)."""
    from edgecv.runtime.onnxruntime import OnnxRuntimeBackend

    with OnnxRuntimeBackend(Path(path)) as backend:
        return backend.card


def read_card(path: str | Path) -> ModelCard | None:
    """The card of a ``.tflite`` or ``.onnx`` artifact (None if the file carries none)."""
    path = Path(path)
    if path.suffix == ".tflite":
        return read_tflite_card(path.read_bytes())
    if path.suffix == ".onnx":
        return read_onnx_card(path)
    raise ModelFileError(f"unsupported artifact type '{path.suffix}'; expected .tflite or .onnx.")
