"""ONNX files on ONNX Runtime (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecv.card import ModelCard
from edgecv.errors import ModelFileError
from edgecv.runtime.base import Backend, BackendUnavailable, runtime_message


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: Path, *, threads: int | None = None,
                 providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable("ONNX Runtime", "pip install onnxruntime") from exc
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's Fail / InvalidProtobuf / InvalidArgument
            raise ModelFileError(f"'{path}' is not a valid ONNX model: {runtime_message(exc)}") from exc
        text = self.session.get_modelmeta().custom_metadata_map.get("edgecv_card")
        super().__init__(path, ModelCard.from_json(text) if text else None)
        self._input = self.session.get_inputs()[0]
        self._output = self.session.get_outputs()[0].name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else -1 for d in self._input.shape)

    def io_details(self) -> list[tuple[str, str]]:
        """("input"/"output", "name shape type") for ``edgecv info``."""
        return [(kind, f"{arg.name} {list(arg.shape)} {arg.type}") for kind, arg in
                (("input", self._input), ("output", self.session.get_outputs()[0]))]

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = self.check_input(batch)
        return self.session.run([self._output], {self._input.name: batch})[0].astype(np.float32)
