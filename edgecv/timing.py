"""The timing code of edgecv: every latency that edgecv reports is measured here.

- :func:`time_call` / :func:`time_backend`: the benchmark loop. First call, warm-up runs, then
  timed runs until both ``runs`` and ``min_time_s`` are met, each timed with
  ``time.perf_counter_ns``, summarised by :func:`latency_percentiles`.
- :func:`timed`: one call and its duration, for the per-image ``ms`` that predict and camera
  report (not a benchmark: one sample).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one (model, input) pair, in milliseconds."""

    runs: int
    first_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    throughput_per_s: float  # inferences (batch items) per second at the mean latency

    def to_dict(self) -> dict:
        return asdict(self)


def latency_percentiles(samples_ns: np.ndarray, first_ns: int, batch_size: int) -> LatencyStats:
    """Summarise per-run durations in nanoseconds."""
    ms = np.asarray(samples_ns).astype(np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(runs=int(len(ms)), first_ms=first_ns / 1e6, mean_ms=float(ms.mean()),
                        std_ms=float(ms.std()), min_ms=float(ms.min()), p50_ms=float(p50),
                        p90_ms=float(p90), p99_ms=float(p99), max_ms=float(ms.max()),
                        throughput_per_s=float(batch_size * 1000.0 / ms.mean()))


def timed(fn: Callable, *args):
    """``(fn(*args), milliseconds)`` of one call."""
    start = time.perf_counter_ns()
    result = fn(*args)
    return result, (time.perf_counter_ns() - start) / 1e6


def time_call(fn: Callable[[], object], *, runs: int = 100, min_time_s: float = 1.0,
              warmup: int = 10, max_runs: int = 100_000, batch_size: int = 1):
    """Time ``fn()``: first call, ``warmup`` untimed calls, then at least ``runs`` timed calls and
    at least ``min_time_s`` seconds (capped at ``max_runs`` calls).
    Defaults: 100 runs, 1 s, 10 warm-up calls. Returns (LatencyStats, raw samples in ns)."""
    if runs < 1 or min_time_s < 0 or warmup < 0:
        raise ValueError(f"runs must be >= 1, min_time_s and warmup >= 0; received runs={runs}, "
                         f"min_time_s={min_time_s}, warmup={warmup}.")
    start = time.perf_counter_ns()
    fn()
    first_ns = time.perf_counter_ns() - start
    for _ in range(warmup):
        fn()
    samples = []
    append = samples.append
    clock = time.perf_counter_ns
    deadline = clock() + int(min_time_s * 1e9)
    while (len(samples) < runs or clock() < deadline) and len(samples) < max_runs:
        t0 = clock()
        fn()
        append(clock() - t0)
    raw = np.asarray(samples, np.int64)
    return latency_percentiles(raw, first_ns, batch_size), raw


def time_backend(backend, batch: np.ndarray, *, runs: int = 100, min_time_s: float = 1.0,
                 warmup: int = 10, max_runs: int = 100_000) -> LatencyStats:
    """Time ``backend.run(batch)`` with :func:`time_call` (same defaults)."""
    stats, _ = time_call(lambda: backend.run(batch), runs=runs, min_time_s=min_time_s,
                         warmup=warmup, max_runs=max_runs, batch_size=len(batch))
    return stats


class Stopwatch:
    """Seconds since construction (or :meth:`restart`), on ``time.perf_counter_ns``. The clock of
    camera timestamps, end-to-end FPS and the benchmark scripts' wall times."""

    def __init__(self) -> None:
        self._start = time.perf_counter_ns()

    def restart(self) -> None:
        self._start = time.perf_counter_ns()

    def elapsed(self) -> float:
        """Seconds since the start."""
        return (time.perf_counter_ns() - self._start) / 1e9


class FpsMeter:
    """Smoothed frames per second for a live display: an exponential moving average of the
    interval between :meth:`tick` calls (``smoothing`` 0.9 by default: about the last 10 frames
    dominate). ``fps`` is 0 until two ticks have been seen."""

    def __init__(self, smoothing: float = 0.9) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), received {smoothing}.")
        self.smoothing = smoothing
        self._last: int | None = None
        self._interval_ns: float | None = None

    def tick(self) -> float:
        """Record one frame; return the smoothed rate."""
        now = time.perf_counter_ns()
        if self._last is not None:
            interval = now - self._last
            self._interval_ns = (interval if self._interval_ns is None else
                                 self.smoothing * self._interval_ns + (1 - self.smoothing) * interval)
        self._last = now
        return self.fps

    @property
    def fps(self) -> float:
        return 1e9 / self._interval_ns if self._interval_ns else 0.0


def time_interleaved(fn_a: Callable[[], object], fn_b: Callable[[], object], *, runs: int = 2000,
                     warmup: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Time ``fn_a`` and ``fn_b`` alternately, one call each per iteration, so that both see the
    same machine (on a noisy VM, medians of separate loops differ by 10-15% between identical
    runs). Returns the two arrays of durations in ns. Defaults: 2000 pairs, 50 warm-up pairs."""
    clock = time.perf_counter_ns
    for _ in range(warmup):
        fn_a()
        fn_b()
    a, b = np.empty(runs, np.int64), np.empty(runs, np.int64)
    for i in range(runs):
        t0 = clock()
        fn_a()
        t1 = clock()
        fn_b()
        t2 = clock()
        a[i], b[i] = t1 - t0, t2 - t1
    return a, b
