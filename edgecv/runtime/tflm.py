"""TensorFlow Lite Micro's own interpreter on this machine (the ``tflite-micro`` wheel).

TFLite Micro (TFLM) is the C++ runtime a microcontroller runs; its Python wheel runs the same
reference kernels (the ones a board uses when it has no vendor kernels) and its recording
allocator reports the tensor arena the board must reserve. Two facts shape this module
(shared/RUNTIME_FACTS.md):

- the arena TFLM needs does not depend on the ``arena_size`` it is given, as long as that is
  large enough (too small fails at creation), so :class:`MicroInterpreter` starts from an
  estimate and doubles it until the model allocates, then reads the real figure;
- the allocator's report is printed by C code on the process's file descriptor 2, so it is
  read back through :func:`edgecv.io.captured_output`.

TFLM does not run the flatbuffer verifier LiteRT runs, so a file is checked by LiteRT's
(``model_content=``) and :func:`edgecv.runtime.integrity.check_tflite_tensor_sizes` before TFLM
sees it. Time per inference here is x86 reference C++: it says nothing about a microcontroller's
latency.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass

import numpy as np

from edgecv.errors import BackendUnavailable, ModelFileError
from edgecv.io import captured_output
from edgecv.runtime.base import quantize, runtime_message

INSTALL_HINT = ("pip install 'edgecv[mcu]' (TFLite Micro's tflite-micro wheel; published for "
                "Python 3.11 on x86-64 Linux)")
NAME = "TFLite Micro"
# Doubling from the estimate stops here: no microcontroller has 1 GiB of RAM.
MAX_ARENA_BYTES = 1 << 30
_ALLOCATION = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def load_tflm_runtime():
    """The ``tflite_micro`` runtime module, or :class:`BackendUnavailable` saying how to install it."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:
        raise BackendUnavailable(NAME, f"tflite-micro is not installed: {INSTALL_HINT}") from exc
    return runtime


def tflm_missing() -> str | None:
    """Why TFLite Micro cannot run here (not installed), or None."""
    try:
        load_tflm_runtime()
    except BackendUnavailable as exc:
        return exc.reason
    return None


@dataclass(frozen=True)
class ArenaUsage:
    """The tensor arena TFLM's recording allocator measured, in bytes: ``head`` holds the
    planned activations (non-persistent, reused between ops), ``tail`` the persistent data
    (tensor structs, quantization data, kernels' buffers); ``total`` = head + tail."""

    total: int
    head: int
    tail: int

    @classmethod
    def parse(cls, text: str) -> "ArenaUsage":
        """From the text of ``print_allocations()``; ModelFileError if it holds no totals."""
        found = {kind: int(value) for kind, value in _ALLOCATION.findall(text)}
        if set(found) != {"total", "head", "tail"}:
            raise ModelFileError(f"{NAME} printed no arena allocation figures (read: "
                                 f"{text.strip()[:200]!r}).")
        return cls(**found)

    def to_dict(self) -> dict:
        return {"total": self.total, "head": self.head, "tail": self.tail}


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers, so what TFLM printed is in the capture before it is read."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to reach (not Linux/macOS): nothing buffered
        pass


def arena_estimate(model: bytes) -> int:
    """A first arena size to try: every non-constant tensor's bytes, twice, plus 16 KiB for
    TFLM's persistent structures (the doubling in :class:`MicroInterpreter` covers the rest)."""
    from edgecv.tflite_schema import tflite_schema

    schema = tflite_schema()
    sizes = {schema.TensorType.INT8: 1, schema.TensorType.UINT8: 1, schema.TensorType.INT16: 2,
             schema.TensorType.FLOAT16: 2}
    root = schema.Model.GetRootAs(model, 0)
    total = 0
    for s in range(root.SubgraphsLength()):
        graph = root.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer = root.Buffers(tensor.Buffer()) if tensor.Buffer() < root.BuffersLength() else None
            if buffer is not None and buffer.DataLength():
                continue  # a constant: it stays in the model's flash
            shape = tensor.ShapeAsNumpy().tolist() if tensor.ShapeLength() else [1]
            total += int(np.prod([max(1, d) for d in shape])) * sizes.get(tensor.Type(), 4)
    return 2 * total + (16 << 10)


class MicroInterpreter:
    """One model in TFLM's interpreter with the arena it needs, measured.

    ``model``: the bytes of a .tflite file already checked by LiteRT's verifier (see the module
    docstring); ``arena_size``: bytes to give TFLM (default: :func:`arena_estimate`, doubled
    until the model allocates). ``arena`` is what TFLM's recording allocator measured, which
    does not depend on the size given. Batches of any size run one image at a time (TFLM models
    have a batch of 1). Raises :class:`BackendUnavailable` without tflite-micro and
    :class:`ModelFileError` when TFLM cannot prepare the model (an op it lacks, a type its
    kernels refuse), with TFLM's own words.
    """

    def __init__(self, model: bytes, arena_size: int | None = None):
        runtime = load_tflm_runtime()
        size = arena_size or arena_estimate(model)
        while True:
            with captured_output(replay_on_error=False) as printed:
                try:
                    self._interpreter = runtime.Interpreter.from_bytes(model, arena_size=size)
                    error = None
                except (RuntimeError, ValueError) as exc:
                    _flush_c_stdio()
                    error, said = exc, printed()
            if error is None:
                break
            too_small = "Failed to allocate" in said or "Failed to resize buffer" in said
            if too_small and arena_size is None and size < MAX_ARENA_BYTES:
                size *= 2
                continue
            detail = " ".join(line.strip() for line in said.splitlines()
                              if line.strip())[:300] or runtime_message(error)
            raise ModelFileError(f"{NAME} cannot prepare the model: {detail}") from error
        self.arena_size = size
        with captured_output(replay_on_error=False) as printed:
            self._interpreter.print_allocations()
            _flush_c_stdio()
            report = printed()
        self.arena = ArenaUsage.parse(report)
        self.input = self._details(self._interpreter.get_input_details(0))
        self.output = self._details(self._interpreter.get_output_details(0))

    @staticmethod
    def _details(details: dict) -> dict:
        """shape, dtype, scale and zero point of an input/output (scale 0 for a float tensor)."""
        quant = details.get("quantization_parameters") or {}
        scales, zeros = quant.get("scales"), quant.get("zero_points")
        return {"shape": tuple(int(d) for d in details["shape"]), "dtype": np.dtype(details["dtype"]),
                "scale": float(scales[0]) if scales is not None and len(scales) else 0.0,
                "zero_point": int(zeros[0]) if zeros is not None and len(zeros) else 0}

    def invoke(self, batch: np.ndarray) -> np.ndarray:
        """The model's raw outputs (its own type: int8 for a full-int8 model) for a batch in the
        model's input type, one image at a time; shape (N, *output shape[1:])."""
        expected = self.input["shape"][1:]
        if batch.ndim != len(expected) + 1 or batch.shape[1:] != expected:
            raise ModelFileError(f"input batch has shape {tuple(batch.shape)}, expected "
                                 f"(N, {', '.join(map(str, expected))}).")
        outputs = []
        for image in batch.astype(self.input["dtype"], copy=False):
            self._interpreter.set_input(image[None], 0)
            self._interpreter.invoke()
            outputs.append(np.array(self._interpreter.get_output(0))[0])
        return np.stack(outputs)

    def quantize_input(self, batch: np.ndarray) -> np.ndarray:
        """Normalised float32 model input -> the model's input type (with its scale and zero
        point for an integer input)."""
        if self.input["dtype"].kind in "iu":
            return quantize(batch, self.input["scale"], self.input["zero_point"], self.input["dtype"])
        return batch.astype(self.input["dtype"], copy=False)
