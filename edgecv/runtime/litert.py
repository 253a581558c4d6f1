"""TFLite files on ai-edge-litert (XNNPACK on by default), falling back to tflite-runtime, then
``tf.lite`` only when neither is installed. Targets: ``cpu``, ``gpu`` (the LiteRT GPU delegate
library) and ``edgetpu`` (the libedgetpu delegate on an edgetpu_compiler output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecv.card import read_tflite_card
from edgecv.errors import BackendUnavailable, ModelFileError
from edgecv.io import captured_output
from edgecv.runtime.base import (Backend, dequantize_table, runtime_message, to_model_input,
                                 to_scores)
from edgecv.runtime.integrity import check_recorded_checksum, check_tflite_tensor_sizes
from edgecv.runtime.targets import load_interpreter_class


def load_delegate(library: str, options: dict | None = None):
    """``load_delegate`` of the runtime that provides the Interpreter class."""
    try:
        from ai_edge_litert.interpreter import load_delegate as load
    except ImportError:
        try:
            from tflite_runtime.interpreter import load_delegate as load
        except ImportError:
            from edgecv.tf_import import import_tensorflow

            load = import_tensorflow().lite.experimental.load_delegate
    try:
        return load(library, options or {})
    except (ValueError, OSError, RuntimeError) as exc:
        raise BackendUnavailable(library, "the delegate failed to load: "
                                 + runtime_message(exc)) from exc


def _reference_resolver():
    """The ``OpResolverType.BUILTIN_REF`` of the runtime that provides the Interpreter class."""
    try:
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError:
        try:
            from tflite_runtime.interpreter import OpResolverType
        except ImportError:
            from edgecv.tf_import import import_tensorflow

            OpResolverType = import_tensorflow().lite.experimental.OpResolverType
    return OpResolverType.BUILTIN_REF


def _target_delegates(target: str, device: str | None) -> list:
    from edgecv.runtime.targets import GPU_DELEGATE_LIBRARIES, edgetpu_library, probe

    if target == "cpu":
        return []
    reason = probe(target, "litert")
    if reason:
        raise BackendUnavailable(f"LiteRT on {target}", reason)
    if target == "edgetpu":
        return [load_delegate(edgetpu_library(), {"device": device} if device else None)]
    if target == "gpu":
        return [load_delegate(GPU_DELEGATE_LIBRARIES[0])]
    raise BackendUnavailable(f"LiteRT on {target}", "LiteRT does not run on this target")


class LiteRTBackend(Backend):
    """A .tflite file in a LiteRT Interpreter. ``threads`` sets the CPU thread count (default:
    the runtime's choice); ``checksum`` is warn/refuse/off (see runtime.integrity).
    ``reference_kernels`` (default False; cpu only) runs LiteRT's reference kernels
    (``BUILTIN_REF``: no XNNPACK, no optimized kernels): slow, the correctness anchor TFLite
    Micro's kernels are compared with."""

    name = "litert"

    def __init__(self, path: Path, *, threads: int | None = None, target: str = "cpu",
                 device: str | None = None, checksum: str = "warn",
                 reference_kernels: bool = False):
        path = Path(path)
        # Bytes, not model_path: model_content runs the flatbuffer verifier (RUNTIME_FACTS.md).
        data = path.read_bytes()
        interpreter_class = load_interpreter_class()
        warning = check_recorded_checksum(path, data, checksum)
        kernels = {}
        if reference_kernels:
            if target != "cpu":
                raise BackendUnavailable(f"LiteRT on {target}", "reference kernels run on the cpu")
            kernels["experimental_op_resolver_type"] = _reference_resolver()
        try:
            with captured_output(replay_on_error=False):  # XNNPACK's INFO line on fd 2
                self.interpreter = interpreter_class(model_content=data, num_threads=threads,
                                                     **kernels)
        except (ValueError, RuntimeError) as exc:
            # LiteRT's messages span lines ("...\nAllocateTensors() called on inconsistent model.")
            raise ModelFileError(f"'{path}' is not a valid TFLite model: "
                                 f"{runtime_message(exc)}") from exc
        # The verifier accepted the structure; now the sizes it does not check, before allocating.
        try:
            check_tflite_tensor_sizes(data)
        except ModelFileError as exc:
            raise ModelFileError(f"'{path}': {exc}") from exc
        delegates = _target_delegates(target, device)
        try:
            with captured_output(replay_on_error=False):
                if delegates:
                    self.interpreter = interpreter_class(model_content=data, num_threads=threads,
                                                         experimental_delegates=delegates)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"'{path}' cannot be prepared on {target}: "
                                 f"{runtime_message(exc)}") from exc
        try:
            card = read_tflite_card(data)
        except ModelFileError as exc:
            raise ModelFileError(f"'{path}': {exc}") from exc
        super().__init__(path, card, target=target, threads=threads)
        if warning:
            self.warnings.append(warning)
        self.size_bytes = len(data)
        try:  # a corrupt tensor name or shape surfaces only here (UnicodeDecodeError, IndexError)
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
        except (ValueError, IndexError, RuntimeError) as exc:
            raise ModelFileError(f"'{path}' has a corrupt input/output tensor: "
                                 f"{type(exc).__name__}: {runtime_message(exc)}") from exc
        self._cache_io()
        signature = self._input.get("shape_signature")
        # A model saved with a static batch (Edge TPU models) cannot be resized: loop instead.
        self._resizable = signature is not None and len(signature) and int(signature[0]) == -1

    def _cache_io(self) -> None:
        """What the hot path needs from the tensor details, computed once per (re)allocation."""
        self._shape = tuple(int(d) for d in self._input["shape"])
        self._batch = self._shape[0]
        in_scale, in_zero = self._input["quantization"]
        self._in_quant = None
        if np.issubdtype(self._input["dtype"], np.integer):
            if in_scale == 0:
                raise ModelFileError(f"'{self.path}' has an integer input without quantization "
                                     "parameters; it cannot take normalised float input.")
            self._in_quant = (in_scale, in_zero, self._input["dtype"])
        out_scale, out_zero = self._output["quantization"]
        self.output_is_float = not np.issubdtype(self._output["dtype"], np.integer)
        self._out_quant = None if self.output_is_float else (out_scale, out_zero)
        self._out_table = None if self.output_is_float else dequantize_table(
            out_scale, out_zero, self._output["dtype"])
        self._in_index, self._out_index = self._input["index"], self._output["index"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.check_open()
        return self._shape

    def io_details(self) -> list[tuple[str, str]]:
        """("input"/"output", "name shape dtype quantization") for ``edgecv info``."""
        self.check_open()
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
            self._cache_io()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if not self._resizable and len(batch) != self._batch:
            return np.concatenate([self._invoke(batch[i:i + self._batch])
                                   for i in range(0, len(batch), self._batch)])
        self._resize(len(batch))
        return self._invoke(batch)

    @property
    def input_quantization(self) -> tuple[float, int, np.dtype] | None:
        self.check_open()
        return self._in_quant

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._in_index, to_model_input(batch, self._in_quant))
        self.interpreter.invoke()
        return to_scores(self.interpreter.get_tensor(self._out_index), self._out_quant,
                         self._out_table)

    def _release(self) -> None:
        # The interpreter owns the model's tensors and arena (and any delegate); the tensor
        # details are plain dicts, dropped so nothing stale is left to use.
        self.interpreter = None
        self._input = self._output = None
        self._in_quant = self._out_quant = self._out_table = None
