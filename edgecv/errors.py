"""Typed errors. Every message names the problem, the value received and the fix.

The CLI turns an :class:`EdgecvError` into one line on stderr and its ``exit_code``; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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


def unknown_name(kind: str, received: str, choices: Iterable[str], hint: str = "") -> UsageError:
    """Build a UsageError for an unknown ``kind`` name that suggests the closest valid choice."""
    choices = sorted(choices)
    close = difflib.get_close_matches(received, choices, n=1, cutoff=0.5)
    suggestion = f" Did you mean '{close[0]}'?" if close else ""
    message = f"unknown {kind} '{received}'.{suggestion} Choose one of: {', '.join(choices)}."
    if hint:
        message += f" {hint}"
    return UsageError(message)
