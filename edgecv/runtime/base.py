"""The backend interface and the (de)quantization arithmetic every backend shares."""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from edgecv.card import ModelCard
from edgecv.errors import BackendClosed, DataError, EdgecvError, ModelFileError


def runtime_message(exc: Exception, limit: int = 240) -> str:
    """The useful part of a runtime's exception text (ONNX Runtime prefixes C++ locations)."""
    text = " ".join(str(exc).split())
    if "onnxruntime_src" in text and ") " in text:
        text = text.rsplit(") ", 1)[1]
    return text[:limit] or type(exc).__name__


def all_finite(x: np.ndarray) -> bool:
    """True if no element is NaN or inf. One float64 sum (no boolean temporary: this runs twice
    per inference) is finite exactly then, since float32 values cannot overflow a float64 sum;
    only a non-finite sum of float64 input needs the element-wise check."""
    return math.isfinite(x.sum(dtype=np.float64)) or (x.dtype == np.float64 and
                                                      bool(np.isfinite(x).all()))


@functools.lru_cache(maxsize=None)
def _integer_range(dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """float -> integer tensor: round(x / scale) + zero_point, clipped to the dtype's range."""
    low, high = _integer_range(np.dtype(dtype))
    # One float32 temporary, updated in place, and as few numpy calls as possible: this runs
    # on every frame, and each call costs about 2 us beside a sub-millisecond model.
    q = np.asarray(x, np.float32) / np.float32(scale)
    np.rint(q, out=q)
    q += np.float32(zero_point)
    q.clip(low, high, out=q)
    return q.astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """integer -> float32; the subtraction is done in int64 so uint8/int8 never wrap around."""
    return ((q.astype(np.int64) - zero_point) * np.float64(scale)).astype(np.float32)


def quantization_steps(a: np.ndarray, b: np.ndarray, scale: float) -> int | None:
    """The largest difference of two arrays of dequantized scores, in quantization steps of
    ``scale`` (None for a float output, scale 0; 0 for empty arrays)."""
    if not scale:
        return None
    return int(np.rint(np.abs(a.astype(np.float64) - b).max() / scale)) if a.size else 0


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Top-1 agreement of two score arrays (N, classes)."""
    return float((a.argmax(1) == b.argmax(1)).mean())


def agreement_counting_ties(a: np.ndarray, b: np.ndarray) -> float:
    """Top-1 agreement where a tie counts for each of its classes: an image agrees when some
    class holds the top score in both arrays. Two runtimes of one int8 file can differ by one
    output step where one of them has its top two scores equal; :func:`agreement` then counts
    how argmax breaks the tie (by class order), this does not."""
    top_a = a == a.max(1, keepdims=True)
    top_b = b == b.max(1, keepdims=True)
    return float((top_a & top_b).any(1).mean())


def agreement_text(strict: float, counting_ties: float | None = None) -> str:
    """``99.20%``, or ``99.20% (100.00% counting ties)`` where :func:`agreement_counting_ties`
    gives another figure."""
    text = f"{100 * strict:.2f}%"
    if counting_ties is None or counting_ties == strict:
        return text
    return f"{text} ({100 * counting_ties:.2f}% counting ties)"


def dequantize_table(scale: float, zero_point: int, dtype) -> np.ndarray | None:
    """For 8-bit outputs: the 256 float32 values of :func:`dequantize`, indexed by the byte
    (``table[q.view(np.uint8)]`` is one numpy call instead of four). None for wider types."""
    dtype = np.dtype(dtype)
    if dtype.itemsize != 1:
        return None
    codes = np.arange(256, dtype=np.uint8).view(dtype)
    return dequantize(codes, scale, zero_point)


def to_model_input(batch: np.ndarray, input_quantization: tuple | None) -> np.ndarray:
    """``batch`` in the model's input type: quantized with ``input_quantization`` (scale, zero
    point, dtype) unless it already is of that type (pre-quantized by a pixel table); as it is
    for a float input (None)."""
    if input_quantization is not None and batch.dtype != input_quantization[2]:
        return quantize(batch, *input_quantization)
    return batch


def to_scores(out: np.ndarray, output_quantization: tuple | None,
              table: np.ndarray | None) -> np.ndarray:
    """A model's raw output as float32 scores: through ``table`` (:func:`dequantize_table`) for
    8-bit integers, dequantized with ``output_quantization`` (scale, zero point) for wider
    ones, as it is for a float output."""
    if table is not None:
        return table[out.view(np.uint8)]
    if output_quantization is not None:
        return dequantize(out, *output_quantization)
    return out.astype(np.float32, copy=False)


class Backend(ABC):
    """Open a model, read its card, ``run(batch) -> scores``, ``close()``.

    ``close()`` (also on leaving a ``with`` block) drops the backend's references to its runtime
    objects, so their memory is freed once nothing else holds them; later ``run``,
    ``input_shape`` and ``io_details`` raise :class:`BackendClosed`. ``path``, ``card``,
    ``size_bytes`` and ``warnings`` stay readable. Closing twice is allowed.
    """

    name = "backend"

    def __init__(self, path: Path, card: ModelCard | None, *, target: str = "cpu",
                 threads: int | None = None):
        self.path = Path(path)
        self.card = card
        self.target = target
        self.threads = threads
        self.warnings: list[str] = []  # e.g. a checksum mismatch; the caller shows them
        self.size_bytes: int | None = None
        self.output_is_float = True  # False when scores are dequantized from integers
        self.closed = False

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """NHWC input shape of the model (-1 for a dynamic dimension)."""

    def check_input(self, batch: np.ndarray) -> np.ndarray:
        """Refuse what every runtime silently gets wrong: wrong shape, NaN or inf."""
        batch = np.asarray(batch)
        expected = self.input_shape[1:]
        if batch.shape[1:] != expected or batch.ndim != 4:
            raise DataError(f"input batch has shape {tuple(batch.shape)}, expected (N, "
                            f"{', '.join(str(d) for d in expected)}).")
        if batch.dtype.kind == "f" and not all_finite(batch):
            raise DataError("input contains NaN or inf; every runtime would return NaN or, for "
                            "an int8 model, a plausible wrong answer.")
        return batch.astype(np.float32, copy=False)

    @property
    def input_quantization(self) -> tuple[float, int, np.dtype] | None:
        """(scale, zero point, dtype) when the model takes integers (a full-int8 TFLite model),
        else None. A caller with uint8 pixels can then build the model's integers itself, with
        one table lookup (:meth:`edgecv.preprocessing.Preprocessing.pixel_table`), and hand
        them to :meth:`run_prepared`."""
        return None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 NHWC model input -> float32 scores (N, classes); refuses non-finite input
        and output."""
        self.check_open()
        return self._checked_run(self.check_input(batch))

    def run_prepared(self, batch: np.ndarray) -> np.ndarray:
        """Input already in the model's own type -> float32 scores: the integers of
        :attr:`input_quantization` for a model that takes integers, else float32 built from a
        finite pixel table (:meth:`edgecv.preprocessing.Preprocessing.pixel_table`). :meth:`run`
        without the NaN scan and the quantization, which the table made unnecessary: the path
        of :class:`edgecv.classify.Classifier`. Shape and type are still checked."""
        self.check_open()
        quantization = self.input_quantization
        dtype = np.dtype(np.float32 if quantization is None else quantization[2])
        expected = self.input_shape[1:]
        if batch.dtype != dtype or batch.ndim != 4 or batch.shape[1:] != expected:
            raise DataError(f"prepared input batch has shape {tuple(batch.shape)} and type "
                            f"{batch.dtype}, expected (N, {', '.join(str(d) for d in expected)}) "
                            f"{dtype.name}.")
        return self._checked_run(batch)

    def _checked_run(self, batch: np.ndarray) -> np.ndarray:
        try:
            scores = self._run(batch)
        except EdgecvError:
            raise
        except Exception as exc:  # runtimes raise RuntimeError, ValueError or their own types
            raise ModelFileError(f"'{self.path}' failed to run on {self.target}: "
                                 f"{runtime_message(exc)}") from exc
        if self.output_is_float and not all_finite(scores):  # dequantized integers are finite
            raise DataError(f"'{self.path.name}' returned NaN or inf scores on {self.target}; "
                            "the model or its runtime is broken for this input.")
        return scores

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The runtime call on a checked float32 batch."""

    @abstractmethod
    def io_details(self) -> list[tuple[str, str]]:
        """(kind, description) of the model's input and output tensors."""

    def check_open(self) -> None:
        """Raise :class:`BackendClosed` if :meth:`close` was called."""
        if self.closed:
            raise BackendClosed(self.name, self.path)

    def close(self) -> None:
        """Release the runtime: drop the references to it (see the class docstring)."""
        if not self.closed:
            self.closed = True
            self._release()

    @abstractmethod
    def _release(self) -> None:
        """Drop every reference to the runtime's objects (interpreter, session, model)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
