"""TFLite files on ai-edge-litert (XNNPACK on by default), falling back to tflite-runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecv.card import read_tflite_card
from edgecv.errors import DataError, ModelFileError
from edgecv.io import captured_output
from edgecv.runtime.base import Backend, BackendUnavailable, dequantize, quantize


def load_interpreter_class():
    """The Interpreter class of ai-edge-litert, or tflite-runtime as a fallback."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise BackendUnavailable("LiteRT", "neither ai-edge-litert nor tflite-runtime is "
                                     "installed: pip install ai-edge-litert") from exc
    return Interpreter


class LiteRTBackend(Backend):
    name = "litert"

    def __init__(self, path: Path, *, threads: int | None = None):
        # Bytes, not model_path: model_content runs the flatbuffer verifier (RUNTIME_FACTS.md).
        data = Path(path).read_bytes()
        interpreter_class = load_interpreter_class()
        try:
            with captured_output(replay_on_error=False):  # XNNPACK's INFO line on fd 2
                self.interpreter = interpreter_class(model_content=data, num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"'{path}' is not a valid TFLite model: {exc}"[:300]) from exc
        try:  # after the verifier accepted the file
            card = read_tflite_card(data)
        except ModelFileError as exc:
            raise ModelFileError(f"'{path}': {exc}") from exc
        super().__init__(path, card)
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])
        signature = self._input.get("shape_signature")
        # A model saved with a static batch (Edge TPU models) cannot be resized: loop instead.
        self._resizable = signature is not None and len(signature) and int(signature[0]) == -1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._input["shape"])

    def io_details(self) -> list[tuple[str, str]]:
        """("input"/"output", "name shape dtype quantization") for ``edgecv info``."""
        rows = []
        for kind, detail in (("input", self._input), ("output", self._output)):
            scale, zero_point = detail["quantization"]
            quant = f" scale={scale:.6g} zero_point={zero_point}" if scale else ""
            rows.append((kind, f"{detail['name']} {[int(d) for d in detail['shape']]} "
                               f"{np.dtype(detail['dtype']).name}{quant}"))
        return rows

    def _resize(self, batch_size: int) -> None:
        if batch_size != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"],
                                                 [batch_size, *self.input_shape[1:]])
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch = batch_size

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = self.check_input(batch)
        if not self._resizable and len(batch) != self._batch:
            return np.concatenate([self._invoke(batch[i:i + self._batch])
                                   for i in range(0, len(batch), self._batch)])
        self._resize(len(batch))
        return self._invoke(batch)

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero_point = self._input["quantization"]
            if scale == 0:
                raise DataError(f"'{self.path}' has an integer input without quantization "
                                "parameters; it cannot take normalised float input.")
            batch = quantize(batch, scale, zero_point, dtype)
        self.interpreter.set_tensor(self._input["index"], batch)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        if np.issubdtype(out.dtype, np.integer):
            scale, zero_point = self._output["quantization"]
            out = dequantize(out, scale, zero_point)
        return out.astype(np.float32, copy=False)
