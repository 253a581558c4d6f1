"""The backend interface and the (de)quantization arithmetic every backend shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from edgecv.card import ModelCard
from edgecv.errors import DataError, EdgecvError


class BackendUnavailable(EdgecvError):
    """A runtime or target is not available here; ``reason`` says why."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name} is not available: {reason}")
        self.name = name
        self.reason = reason


def runtime_message(exc: Exception, limit: int = 240) -> str:
    """The useful part of a runtime's exception text (ONNX Runtime prefixes C++ locations)."""
    text = " ".join(str(exc).split())
    if "onnxruntime_src" in text and ") " in text:
        text = text.rsplit(") ", 1)[1]
    return text[:limit] or type(exc).__name__


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """float -> integer tensor: round(x / scale) + zero_point, clipped to the dtype's range."""
    info = np.iinfo(dtype)
    q = np.round(x / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """integer -> float32; the subtraction is done in int64 so uint8/int8 never wrap around."""
    return ((q.astype(np.int64) - zero_point) * np.float64(scale)).astype(np.float32)


class Backend(ABC):
    """Open a model, read its card, ``run(batch) -> scores``, ``close()``."""

    name = "backend"

    def __init__(self, path: Path, card: ModelCard | None):
        self.path = Path(path)
        self.card = card

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """NHWC input shape of the model (-1 for a dynamic dimension)."""

    def check_input(self, batch: np.ndarray) -> np.ndarray:
        """Refuse what every runtime silently gets wrong: wrong shape, NaN or inf."""
        batch = np.asarray(batch)
        expected = tuple(self.input_shape[1:])
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise DataError(f"input batch has shape {tuple(batch.shape)}, expected (N, "
                            f"{', '.join(str(d) for d in expected)}).")
        if batch.dtype.kind == "f" and not np.isfinite(batch).all():
            raise DataError("input contains NaN or inf; every runtime would return NaN or, for "
                            "an int8 model, a plausible wrong answer.")
        return batch.astype(np.float32, copy=False)

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 NHWC model input -> float32 scores (N, classes)."""

    @abstractmethod
    def io_details(self) -> list[tuple[str, str]]:
        """(kind, description) of the model's input and output tensors."""

    def close(self) -> None:
        """Release the runtime's resources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
