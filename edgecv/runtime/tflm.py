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
sees it (:class:`TFLMBackend` does both). Even a verified file can make TFLM's kernels call
``abort()``: an int8 MobileNetV2 whose softmax input scale is under 2^-26 (an untrained head)
kills the process in SOFTMAX's Prepare (``QuantizeMultiplierGreaterThanOne``), with no message.
So a model is first prepared and run once in a child process (:func:`prepare_in_child`), and
only a model that survived there is loaded into this one.

What TFLM can run at all is read from the file first (:func:`tflm_incompatibility`): every
operator needs a kernel (:data:`RESOLVER_METHODS`, the ``MicroMutableOpResolver`` method that
registers it) and, for the microcontroller target, int8 tensors throughout.

Time per inference here is x86 reference C++: it says nothing about a microcontroller's
latency.
"""

from __future__ import annotations

import ctypes
import json
import math
import re
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecv.card import read_tflite_card
from edgecv.errors import BackendUnavailable, ModelFileError
from edgecv.io import captured_output
from edgecv.runtime.base import (Backend, dequantize_table, quantize, runtime_message,
                                 to_model_input, to_scores)
from edgecv.runtime.integrity import check_recorded_checksum, check_tflite_tensor_sizes

INSTALL_HINT = ("pip install 'edgecv[mcu]' (TFLite Micro's tflite-micro wheel; published for "
                "Python 3.11 on x86-64 Linux)")
NAME = "TFLite Micro"
# Doubling from the estimate stops here: no microcontroller has 1 GiB of RAM.
MAX_ARENA_BYTES = 1 << 30
_ALLOCATION = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
# Preparing and running a model once in the child process (prepare_in_child) may take this long.
CHILD_TIMEOUT_S = 600

# Builtin operator (the TFLite schema's name) -> the method of TFLM's MicroMutableOpResolver that
# registers its kernel, from tensorflow/lite/micro/micro_mutable_op_resolver.h (tflite-micro,
# 2023-2026). An operator missing here has no TFLM kernel: a model that uses it cannot run on a
# board. tests/test_mcu_export.py checks the table against the kernels the installed tflite-micro
# registers.
RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2",
    "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll", "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape",
    "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}
# The tensor types of a model the microcontroller target runs: int8 throughout (int32 biases),
# uint8 or float32 allowed only where the model quantizes its input or dequantizes its output.
MCU_IO_TYPES = ("int8", "uint8", "float32")

# kTensorArenaSize = the measured arena + this share of it (at least ARENA_MARGIN_MIN_BYTES),
# rounded up to whole KiB: the recording allocator measured TFLM's reference kernels on x86-64,
# and a board's optimized kernels (CMSIS-NN, ESP-NN) may ask for scratch buffers the reference
# kernels do not (its 32-bit pointers make the persistent part smaller, not larger).
ARENA_MARGIN = 0.10
ARENA_MARGIN_MIN_BYTES = 1024


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


def tflm_version() -> str | None:
    """The installed tflite-micro's version (package metadata), or None."""
    from importlib import metadata

    try:
        return metadata.version("tflite-micro")
    except metadata.PackageNotFoundError:
        return None


def resolver_method(op: str) -> str | None:
    """The ``MicroMutableOpResolver`` method that registers ``op`` (a name from
    :func:`edgecv.tflite_schema.operators`), or None when TFLM has no kernel for it (custom
    operators included: TFLM's few are audio front-end and detection post-processing kernels,
    which no image classifier converted with builtin ops holds)."""
    return RESOLVER_METHODS.get(op)


def model_ops(model: bytes) -> list[tuple[str, int]]:
    """(operator name, how many times the model uses it), in order of first use."""
    from edgecv.tflite_schema import operators

    return list(Counter(op.name for op in operators(model)).items())


def tflm_incompatibility(model: bytes) -> str | None:
    """Why TFLite Micro cannot run ``model`` on a microcontroller, or None: an operator TFLM
    has no kernel for, or a tensor that is not int8 (int32 biases aside; the input and output
    may be uint8 or float32 where QUANTIZE / DEQUANTIZE convert them). The operator is named
    with the Keras layer it came from. Raises ModelFileError for a file that is not TFLite."""
    from edgecv.tflite_schema import integer_only_violations, operators

    try:
        ops = operators(model)
        io_type = _input_type(model)
    except Exception as exc:  # a corrupt flatbuffer (struct.error, IndexError, ...)
        raise ModelFileError(f"not a readable TFLite file ({type(exc).__name__}: "
                             f"{runtime_message(exc)})") from exc
    lacking = [op for op in ops if resolver_method(op.name) is None]
    if lacking:
        more = len({op.name for op in lacking}) - 1
        return (f"{lacking[0].described()} has no {NAME} kernel"
                + (f" (and {more} other operator type(s))" if more else ""))
    problems = integer_only_violations(model, io=io_type if io_type in MCU_IO_TYPES else "int8")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return (f"{problems[0]}{more}: the microcontroller target runs full-int8 models "
                "(edgecv convert `formats=['int8']`)")
    return None


def _input_type(model: bytes) -> str:
    """The type name of the model's first input tensor (``int8``, ``float32``, ...)."""
    from edgecv.tflite_schema import tflite_schema

    schema = tflite_schema()
    names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    return names.get(graph.Tensors(int(graph.InputsAsNumpy()[0])).Type(), "unknown")


def reserved_arena(measured: int) -> int:
    """The tensor arena to reserve on a board for a measured one (``kTensorArenaSize``):
    ``measured`` plus :data:`ARENA_MARGIN` of it, at least :data:`ARENA_MARGIN_MIN_BYTES`,
    rounded up to whole KiB."""
    margin = max(math.ceil(measured * ARENA_MARGIN), ARENA_MARGIN_MIN_BYTES)
    return -(-(measured + margin) // 1024) * 1024


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
    from edgecv.runtime.integrity import ITEM_BYTES
    from edgecv.tflite_schema import tflite_schema

    schema = tflite_schema()
    sizes = {code: ITEM_BYTES.get(name.lower(), 4) for name, code in vars(schema.TensorType).items()
             if not name.startswith("_")}
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


def _output_count(model: bytes) -> int:
    """How many outputs the model's first subgraph has (what TFLM runs)."""
    from edgecv.tflite_schema import tflite_schema

    return tflite_schema().Model.GetRootAs(model, 0).Subgraphs(0).OutputsLength()


class MicroInterpreter:
    """One model in TFLM's interpreter with the arena it needs, measured.

    ``model``: the bytes of a .tflite file already checked by LiteRT's verifier (see the module
    docstring); ``arena_size``: bytes to give TFLM (default: :func:`arena_estimate`, doubled
    until the model allocates). ``arena`` is what TFLM's recording allocator measured, which
    does not depend on the size given. Batches of any size run one image at a time (TFLM models
    have a batch of 1). ``isolate`` (default True) first prepares the model and runs it once in
    a child process (:func:`prepare_in_child`), since TFLM's kernels abort() on some files.
    Raises :class:`BackendUnavailable` without tflite-micro and :class:`ModelFileError` when
    TFLM cannot prepare the model (an op it lacks, a type its kernels refuse), with TFLM's own
    words, or aborted on it.
    """

    def __init__(self, model: bytes, arena_size: int | None = None, *, isolate: bool = True):
        runtime = load_tflm_runtime()
        if isolate:  # the size that worked there needs no doubling here
            arena_size = prepare_in_child(model, arena_size)
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
        self.output_count = _output_count(model)
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
        return self.invoke_outputs(batch, count=1)[0]

    def invoke_outputs(self, batch: np.ndarray, count: int | None = None) -> list[np.ndarray]:
        """The model's first ``count`` outputs (default: all, in the file's order) for a batch,
        as :meth:`invoke` gives the first: one (N, *shape[1:]) array per output."""
        expected = self.input["shape"][1:]
        if batch.ndim != len(expected) + 1 or batch.shape[1:] != expected:
            raise ModelFileError(f"input batch has shape {tuple(batch.shape)}, expected "
                                 f"(N, {', '.join(map(str, expected))}).")
        count = self.output_count if count is None else min(count, self.output_count)
        outputs = [[] for _ in range(count)]
        for image in batch.astype(self.input["dtype"], copy=False):
            self._interpreter.set_input(image[None], 0)
            self._interpreter.invoke()
            for index, column in enumerate(outputs):
                column.append(np.array(self._interpreter.get_output(index))[0])
        return [np.stack(column) for column in outputs]

    def quantize_input(self, batch: np.ndarray) -> np.ndarray:
        """Normalised float32 model input -> the model's input type (with its scale and zero
        point for an integer input)."""
        if self.input["dtype"].kind in "iu":
            return quantize(batch, self.input["scale"], self.input["zero_point"], self.input["dtype"])
        return batch.astype(self.input["dtype"], copy=False)


# --- the child process ------------------------------------------------------------------------

_CHILD_ANSWER = "edgecv-tflm-child: "


def prepare_in_child(model: bytes, arena_size: int | None = None,
                     timeout_s: float = CHILD_TIMEOUT_S) -> int:
    """Prepare ``model`` in TFLM and run it once on a zero input in a child process (``python
    -m edgecv.runtime.tflm``); return the arena size that worked there (``arena_size``, or the
    estimate doubled until it allocates). TFLM's kernels abort() the process on some files
    (see the module docstring): here that ends the child, and the caller gets a
    :class:`ModelFileError` naming the signal instead of dying. TFLM's own refusals come back
    as the same ModelFileError :class:`MicroInterpreter` raises."""
    command = [sys.executable, "-m", "edgecv.runtime.tflm"]
    if arena_size:
        command.append(str(int(arena_size)))
    try:
        done = subprocess.run(command, input=model, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise ModelFileError(f"{NAME} took more than {timeout_s:.0f} s to prepare the model and "
                             "run it once.") from exc
    answers = [line[len(_CHILD_ANSWER):] for line in
               done.stdout.decode(errors="replace").splitlines()
               if line.startswith(_CHILD_ANSWER)]
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        said = " ".join(done.stderr.decode(errors="replace").split())[-200:]
        raise ModelFileError(f"{NAME} aborted ({name}) while preparing the model or running it "
                             "once (in a child process): one of its kernels refuses a parameter "
                             "of this file" + (f" ({said})" if said else "")
                             + "; it cannot run on a board as it is.")
    if not answers:
        said = " ".join(done.stderr.decode(errors="replace").split())[-300:]
        raise ModelFileError(f"{NAME}'s child process ended (exit {done.returncode}) without an "
                             f"answer: {said or 'no output'}")
    answer = json.loads(answers[-1])
    if "error" in answer:
        raise ModelFileError(answer["error"])
    return int(answer["arena_size"])


def _child_main(argv: list[str]) -> int:
    """``python -m edgecv.runtime.tflm [ARENA_SIZE]``: the model's bytes on stdin; prepare it,
    run it once on a zero input, print the arena size that worked (or the error) on stdout."""
    model = sys.stdin.buffer.read()
    try:
        micro = MicroInterpreter(model, int(argv[0]) if argv else None, isolate=False)
        micro.invoke(np.zeros((1, *micro.input["shape"][1:]), micro.input["dtype"]))
        answer = {"arena_size": micro.arena_size}
    except (ModelFileError, BackendUnavailable) as exc:
        answer = {"error": str(exc)}
    print(_CHILD_ANSWER + json.dumps(answer), flush=True)
    return 0


# --- the backend --------------------------------------------------------------------------------

class TFLMBackend(Backend):
    """A full-int8 .tflite file in TFLite Micro's interpreter (the ``mcu`` target): the
    reference kernels a microcontroller runs, on this machine. ``arena`` is the tensor arena
    TFLM measured (:class:`ArenaUsage`); TFLM runs one image at a time, on one thread, so
    ``threads`` does not apply. The file is checked as LiteRT checks it (the flatbuffer
    verifier, declared tensor sizes) and must be one TFLM can run
    (:func:`tflm_incompatibility`, else :class:`ModelFileError`). ``checksum`` is
    warn/refuse/off (see :mod:`edgecv.runtime.integrity`)."""

    name = "tflm"

    def __init__(self, path: Path, *, target: str = "mcu", checksum: str = "warn"):
        # ai-edge-litert, a dependency of edgecv itself (its schema reads every .tflite); not
        # through edgecv.runtime.targets, which probes this module
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        load_tflm_runtime()  # BackendUnavailable first: no file needs reading to say that
        data = path.read_bytes()
        warning = check_recorded_checksum(path, data, checksum)
        try:  # LiteRT's flatbuffer verifier (model_content=): TFLM runs none
            with captured_output(replay_on_error=False):
                Interpreter(model_content=data)
            check_tflite_tensor_sizes(data)
        except (ValueError, RuntimeError, ModelFileError) as exc:
            raise ModelFileError(f"'{path}' is not a valid TFLite model: "
                                 f"{runtime_message(exc)}") from exc
        problem = tflm_incompatibility(data)
        if problem:
            raise ModelFileError(f"'{path}' cannot run on {NAME}: {problem}.")
        try:
            card = read_tflite_card(data)
            self.micro = MicroInterpreter(data)
        except ModelFileError as exc:
            raise ModelFileError(f"'{path}': {exc}") from exc
        super().__init__(path, card, target=target, threads=None)
        if warning:
            self.warnings.append(warning)
        self.size_bytes = len(data)
        self.arena = self.micro.arena
        inp, out = self.micro.input, self.micro.output
        self._in_quant = (inp["scale"], inp["zero_point"], inp["dtype"]) \
            if inp["dtype"].kind in "iu" else None
        self.output_is_float = out["dtype"].kind == "f"
        self._out_quant = None if self.output_is_float else (out["scale"], out["zero_point"])
        self._out_table = None if self.output_is_float else dequantize_table(
            out["scale"], out["zero_point"], out["dtype"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.check_open()
        return self.micro.input["shape"]

    @property
    def input_quantization(self) -> tuple[float, int, np.dtype] | None:
        self.check_open()
        return self._in_quant

    def io_details(self) -> list[tuple[str, str]]:
        """("input"/"output", "shape dtype quantization") for ``edgecv info``."""
        self.check_open()
        rows = []
        for kind, detail in (("input", self.micro.input), ("output", self.micro.output)):
            quant = (f" scale={detail['scale']:.6g} zero_point={detail['zero_point']}"
                     if detail["scale"] else "")
            rows.append((kind, f"{list(detail['shape'])} {detail['dtype'].name}{quant}"))
        return rows

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return to_scores(self.micro.invoke(to_model_input(batch, self._in_quant)),
                         self._out_quant, self._out_table)

    def _release(self) -> None:
        self.micro = None
        self._in_quant = self._out_quant = self._out_table = None


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
