"""Typed errors. Every message names the problem, the value received and the fix.

The CLI turns an :class:`EdgecvError` into one line on stderr and its ``exit_code``; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class EdgecvError(Exception):
    """A failure the user can fix. ``exit_code`` 1 = the job failed, 2 = the command was misused."""

    exit_code = 1


class UsageError(EdgecvError):
    """Bad arguments: an unknown name, a value out of range, an existing output directory."""

    exit_code = 2


class DataError(EdgecvError):
    """The data cannot be used: empty folder, one class, a class with no valid image, wrong shape."""

    exit_code = 2


class DatasetUnavailable(EdgecvError):
    """A dataset that must be downloaded could not be (offline, blocked, missing cache)."""


class ModelFileError(EdgecvError):
    """A model file is missing, truncated, of a foreign format, or refused for safety."""

    exit_code = 2


class StrategyUnavailable(EdgecvError):
    """The requested distribution strategy cannot run here (no TPU, no TF_CONFIG, ...)."""


# --- conversion (edgecv.converters) ----------------------------------------------------------------

class ConversionError(EdgecvError):
    """The converter failed, or its output breaks a promise (e.g. a float op in an int8 model)."""


class QatError(EdgecvError):
    """The model cannot be quantization-aware trained (a layer tfmot or tf_keras lacks)."""


class AccuracyDropError(EdgecvError):
    """An artifact lost more accuracy than ``max_drop`` allows. The files and conversion.json
    are still written: ``conversion`` is the :class:`edgecv.results.Conversion` (None where
    unknown); ``result``, from :func:`edgecv.pipeline`, the whole
    :class:`edgecv.results.PipelineResult`."""

    def __init__(self, message: str, *, conversion=None, result=None):
        super().__init__(message)
        self.conversion = conversion
        self.result = result


# --- runtimes (edgecv.runtime) ---------------------------------------------------------------------

class BackendUnavailable(EdgecvError):
    """A runtime or target is not available here; ``reason`` says why."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name} is not available: {reason}")
        self.name = name
        self.reason = reason


class BackendClosed(RuntimeError):
    """A closed backend was used: its runtime (interpreter, session, model) has been released.
    A programming error, not a user's, so it is not an EdgecvError and keeps its traceback."""

    def __init__(self, name: str, path: Path):
        super().__init__(f"the {name} backend of '{path}' is closed (its runtime was released); "
                         "open the model again with open_backend().")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message, cut to ``limit`` characters; its type's name when the
    message is empty: what a one-line error quotes of a library's exception."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def unknown_name(kind: str, received: str, choices: Iterable[str], hint: str = "") -> UsageError:
    """Build a UsageError for an unknown ``kind`` name that suggests the closest valid choice."""
    choices = sorted(choices)
    close = difflib.get_close_matches(received, choices, n=1, cutoff=0.5)
    suggestion = f" Did you mean '{close[0]}'?" if close else ""
    message = f"unknown {kind} '{received}'.{suggestion} Choose one of: {', '.join(choices)}."
    if hint:
        message += f" {hint}"
    return UsageError(message)


class SourceUnavailable(EdgecvError):
    """The video source cannot be opened or read (no camera, unreachable URL, not a video)."""


class RecordingError(EdgecvError):
    """The recording could not be written, or does not hold the frames written to it."""
