"""Validation of builder options, shared by the family modules.

Pure Python on purpose: builders call these before ``import keras`` so a bad option fails in
milliseconds, without TensorFlow, and the message echoes the value received.
"""

from __future__ import annotations

import numbers

from edgecv.errors import UsageError


def fraction(name: str, value) -> float:
    """A rate in [0, 1), e.g. dropout."""
    if not _is_real(value) or not 0 <= value < 1:
        raise UsageError(f"{name} must be a number in [0, 1), received {name}={value!r}.")
    return float(value)


def positive_number(name: str, value) -> float:
    """A float > 0, e.g. a width multiplier."""
    if not _is_real(value) or not value > 0:
        raise UsageError(f"{name} must be a positive number, received {name}={value!r}.")
    return float(value)


def positive_int(name: str, value) -> int:
    """An integer >= 1, e.g. a filter or block count."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{name} must be a positive integer, received {name}={value!r}.")
    return int(value)


def positive_ints(name: str, value, count: int, per: str) -> tuple[int, ...]:
    """``count`` integers >= 1, one per ``per`` (e.g. resnet8's filters per stack)."""
    try:
        items = tuple(value)
    except TypeError:
        items = ()
    if len(items) != count:
        raise UsageError(f"{name} must be {count} positive integers (one per {per}), "
                         f"received {name}={value!r}.")
    return tuple(positive_int(f"{name}[{i}]", v) for i, v in enumerate(items))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
