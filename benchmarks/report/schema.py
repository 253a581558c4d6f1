"""The bench.json schema: the report's validation and its JSON file (the typed row that
`edgecv bench` measures is :class:`edgecv.benchmarks.row.BenchRow`).

The report dict is what `edgecv bench` produces (``edgecv_version``, ``created``, ``machine``,
``settings``, ``warnings``, ``rows``; one row per artifact x target x threads). Every writer
validates the report first and writes its file atomically (``edgecv.io``).
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

import numpy as np

from edgecv.io import write_text_atomic

STATUSES = ("ok", "unavailable", "n/a", "failed")

_NUMERIC_FIELDS = ("size_bytes", "accuracy", "agreement", "test_images", "init_ms", "first_ms", "mean_ms",
                   "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "throughput_per_s",
                   "runs", "rounds", "preprocess_ms", "rss_delta_mb", "peak_rss_mb", "speedup_vs_fp32",
                   "arena_bytes", "arena_head_bytes", "arena_tail_bytes", "arena_reserved_bytes",
                   "agreement_litert", "agreement_litert_counting_ties", "max_diff_steps_litert",
                   "host_reference_kernels_p50_ms")
_FRACTIONS = ("accuracy", "agreement", "agreement_litert",
              "agreement_litert_counting_ties")  # within 0..1
_INTERVALS = ("p50_ci_ms", "host_reference_kernels_p50_ci_ms")  # [low, high]


# ---------------------------------------------------------------------------------------------
# Validation and JSON


def validate_report(report) -> None:
    """Raise ValueError, naming the row and the value, if ``report`` is not a benchmark report.

    Required: a dict with a ``rows`` list; each row a dict with ``artifact``, ``target`` and a
    ``status`` in STATUSES. Optional ``machine``/``settings`` (dicts) and ``warnings`` (list).
    Measurements must be None or finite numbers, ``accuracy``, ``agreement``,
    ``agreement_litert`` and ``agreement_litert_counting_ties`` within 0..1, ``threads`` None or
    a positive int, the intervals None or [low, high], ``mcu_fit`` None or a list of objects,
    ``samples_ms`` absent, None or a list of finite numbers >= 0, ``predictions`` absent, None
    or one class index (int >= 0) per test image, ``emulated`` absent or true/false.
    """
    if not isinstance(report, dict):
        raise ValueError(f"A benchmark report must be a dict. Received: {type(report).__name__}")
    if not isinstance(report.get("rows"), list):
        raise ValueError(f"A benchmark report needs a `rows` list. "
                         f"Received: rows={report.get('rows')!r}")
    for key, kind in (("machine", dict), ("settings", dict), ("warnings", list)):
        if report.get(key) is not None and not isinstance(report[key], kind):
            raise ValueError(f"Report `{key}` must be a {kind.__name__}. "
                             f"Received: {key}={report[key]!r}")
    for index, row in enumerate(report["rows"]):
        _validate_row(index, row)


def _validate_row(index: int, row) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"Report row {index} must be a dict. Received: {row!r}")
    where = f"Report row {index} ({row.get('artifact')!r})"
    for key in ("artifact", "target"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise ValueError(f"{where} needs a non-empty string `{key}`. "
                             f"Received: {key}={row.get(key)!r}")
    if row.get("status") not in STATUSES:
        raise ValueError(f"{where}: `status` must be one of {', '.join(STATUSES)}. "
                         f"Received: status={row.get('status')!r}")
    threads = row.get("threads")
    if threads is not None and (not _is_int(threads) or threads < 1):
        raise ValueError(f"{where}: `threads` must be None or an int >= 1. "
                         f"Received: threads={threads!r}")
    for key in _NUMERIC_FIELDS:
        value = row.get(key)
        if value is None:
            continue
        if not is_number(value) or not math.isfinite(value):
            raise ValueError(f"{where}: `{key}` must be None or a finite number. "
                             f"Received: {key}={value!r}")
    for key in _FRACTIONS:
        value = row.get(key)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{where}: `{key}` is a fraction in [0, 1]. "
                             f"Received: {key}={value!r}")
    if not isinstance(row.get("emulated", False), bool):
        raise ValueError(f"{where}: `emulated` must be true or false. "
                         f"Received: emulated={row['emulated']!r}")
    predictions = row.get("predictions")
    if predictions is not None and not (
            isinstance(predictions, list) and all(_is_int(p) and p >= 0 for p in predictions)
            and (row.get("test_images") is None or len(predictions) == row["test_images"])):
        shown = predictions if len(repr(predictions)) < 120 else f"{repr(predictions)[:117]}..."
        raise ValueError(f"{where}: `predictions` must be None or one class index (an int >= 0) "
                         f"per test image ({row.get('test_images')}). Received: "
                         f"predictions={shown}")
    for key in _INTERVALS:
        interval = row.get(key)
        if interval is not None and not (
                isinstance(interval, (list, tuple)) and len(interval) == 2
                and all(is_number(v) and math.isfinite(v) for v in interval)
                and interval[0] <= interval[1]):
            raise ValueError(f"{where}: `{key}` must be None or [low, high] with low <= high. "
                             f"Received: {key}={interval!r}")
    fit = row.get("mcu_fit")
    if fit is not None and not (isinstance(fit, list) and all(isinstance(f, dict) for f in fit)):
        raise ValueError(f"{where}: `mcu_fit` must be None or a list of objects. "
                         f"Received: mcu_fit={fit!r}")
    samples = row.get("samples_ms")
    if samples is not None:
        try:
            values = np.asarray(samples, dtype=np.float64)
        except (TypeError, ValueError):
            values = None
        if values is None or values.ndim != 1 or not np.isfinite(values).all() \
                or (values < 0).any():
            shown = samples if len(repr(samples)) < 120 else f"{repr(samples)[:117]}..."
            raise ValueError(f"{where}: `samples_ms` must be a list of finite numbers >= 0. "
                             f"Received: samples_ms={shown}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def write_json(report: dict, path) -> None:
    """Write the report (``samples_ms`` included) as indented JSON to ``path``, atomically.
    numpy scalars and arrays become plain numbers and lists, paths become strings."""
    validate_report(report)
    write_text_atomic(path, json.dumps(report, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalar or array
        return value.tolist()
    raise TypeError(f"Report value of type {type(value).__name__} is not JSON serializable. "
                    f"Received: {value!r}")

