"""ONNX files on ONNX Runtime: the CPU provider, or on ``gpu`` the TensorRT / CUDA / ROCm
providers that ``onnxruntime.get_available_providers()`` lists."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgecv.card import ModelCard
from edgecv.errors import BackendUnavailable, ModelFileError
from edgecv.runtime.base import Backend, runtime_message
from edgecv.runtime.integrity import check_recorded_checksum


def providers_for(target: str) -> list[str]:
    """The providers to ask for on ``target``, best first, CPU last as ONNX Runtime requires."""
    from edgecv.runtime.targets import available_gpu_providers, probe

    if target == "cpu":
        return ["CPUExecutionProvider"]
    if target != "gpu":
        raise BackendUnavailable(f"ONNX Runtime on {target}",
                                 "ONNX Runtime runs on the cpu and gpu targets only")
    reason = probe("gpu", "onnxruntime")
    if reason:
        raise BackendUnavailable("ONNX Runtime on gpu", reason)
    return [*available_gpu_providers(), "CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    """A .onnx file in an InferenceSession. ``threads`` sets intra-op threads (default: ONNX
    Runtime's choice); ``checksum`` is warn/refuse/off (see runtime.integrity)."""

    name = "onnxruntime"

    def __init__(self, path: Path, *, threads: int | None = None, target: str = "cpu",
                 checksum: str = "warn"):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable("ONNX Runtime", "pip install onnxruntime") from exc
        path = Path(path)
        providers = providers_for(target)
        data = path.read_bytes()
        warning = check_recorded_checksum(path, data, checksum)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            with warnings.catch_warnings():  # a missing provider is reported below, with reason
                warnings.simplefilter("ignore", UserWarning)
                self.session = ort.InferenceSession(data, options, providers=providers)
        except Exception as exc:  # onnxruntime's Fail / InvalidProtobuf / InvalidArgument
            raise ModelFileError(f"'{path}' is not a valid ONNX model: {runtime_message(exc)}") from exc
        # ONNX Runtime silently falls back to the CPU when a GPU provider fails to initialise:
        # a "GPU" figure measured on the CPU would be a lie.
        active = self.session.get_providers()
        if target == "gpu" and not any(p in active for p in providers[:-1]):
            raise BackendUnavailable("ONNX Runtime on gpu", f"the GPU providers {providers[:-1]} "
                                     f"failed to initialise; the session fell back to {active}")
        self.providers = active
        try:  # corrupt names or metadata surface only here (UnicodeDecodeError)
            text = self.session.get_modelmeta().custom_metadata_map.get("edgecv_card")
            card = ModelCard.from_json(text) if text else None
            self._input = self.session.get_inputs()[0]
            self._output = self.session.get_outputs()[0].name
        except (ModelFileError, ValueError, IndexError) as exc:
            raise ModelFileError(f"'{path}': corrupt model metadata: "
                                 f"{runtime_message(exc)}") from exc
        super().__init__(path, card, target=target, threads=threads)
        if warning:
            self.warnings.append(warning)
        self.size_bytes = len(data)

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.check_open()
        return tuple(d if isinstance(d, int) else -1 for d in self._input.shape)

    def io_details(self) -> list[tuple[str, str]]:
        """("input"/"output", "name shape type") for ``edgecv info``."""
        self.check_open()
        return [(kind, f"{arg.name} {list(arg.shape)} {arg.type}") for kind, arg in
                (("input", self._input), ("output", self.session.get_outputs()[0]))]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self._output], {self._input.name: batch})[0].astype(np.float32)

    def _release(self) -> None:
        self.session = None  # the InferenceSession owns the graph, weights and thread pools
        self._input = self._output = None
