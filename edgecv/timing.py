"""The timing code of edgecv: every latency that edgecv reports is measured here.

- :func:`time_call` / :func:`time_backend`: the benchmark loop. First call, warm-up runs, then
  timed runs until both ``runs`` and ``min_time_s`` are met, each timed with
  ``time.perf_counter_ns``, summarised by :func:`latency_percentiles`.
- :func:`timed`: one call and its duration, for the per-image ``ms`` that predict and camera
  report (not a benchmark: one sample).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class RoundTiming:
    """One callable's share of :func:`time_rounds`: its stats over every timed call, the raw
    durations (ns, in call order) and the median of each round (ms)."""

    stats: LatencyStats
    samples_ns: np.ndarray
    round_p50_ms: np.ndarray

    def p50_interval(self, confidence: float = 0.9) -> tuple[float, float]:
        """A distribution-free interval for the median over rounds (:func:`median_interval`)."""
        return median_interval(self.round_p50_ms, confidence)


def time_rounds(fns: Sequence[Callable[[], object]], *, rounds: int = 9, runs: int = 100,
                min_time_s: float = 1.0, warmup: int = 10, max_runs: int = 100_000,
                batch_size: int = 1) -> list[RoundTiming]:
    """Time several callables on the same machine state: first call and ``warmup`` calls of each,
    then ``rounds`` rounds in which every callable runs a block of ``ceil(runs / rounds)`` calls
    and at least ``min_time_s / rounds`` seconds, starting each round one callable further along
    (so no callable always follows the same neighbour). A slow minute on a shared VM then lands
    on every callable alike instead of on whichever ran during it.
    Defaults: 9 rounds, 100 runs and 1 s per callable in total, 10 warm-up calls."""
    if rounds < 1 or runs < 1 or min_time_s < 0 or warmup < 0:
        raise ValueError(f"rounds and runs must be >= 1, min_time_s and warmup >= 0; received "
                         f"rounds={rounds}, runs={runs}, min_time_s={min_time_s}, warmup={warmup}.")
    clock = time.perf_counter_ns
    firsts = []
    for fn in fns:
        start = clock()
        fn()
        firsts.append(clock() - start)
        for _ in range(warmup):
            fn()
    per_round = -(-runs // rounds)
    block_ns = int(min_time_s * 1e9 / rounds)
    cap = max(per_round, max_runs // rounds)
    samples: list[list[int]] = [[] for _ in fns]
    medians: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):
        for k in range(len(fns)):
            i = (r + k) % len(fns)
            fn, block = fns[i], []
            append = block.append
            deadline = clock() + block_ns
            while (len(block) < per_round or clock() < deadline) and len(block) < cap:
                t0 = clock()
                fn()
                append(clock() - t0)
            samples[i].extend(block)
            medians[i].append(float(np.median(block)) / 1e6)
    result = []
    for first, raw, meds in zip(firsts, samples, medians):
        raw = np.asarray(raw, np.int64)
        result.append(RoundTiming(latency_percentiles(raw, first, batch_size), raw,
                                  np.asarray(meds)))
    return result


def median_interval(values: Sequence[float], confidence: float = 0.9) -> tuple[float, float]:
    """The narrowest pair of order statistics ``(x_(k), x_(n+1-k))`` of ``values`` that contains
    their population median with probability at least ``confidence`` (the binomial sign-test
    interval; no assumption about the distribution). With fewer values than that confidence
    allows (5 values reach 93.75%, 4 only 87.5%) it is the full range (min, max)."""
    x = np.sort(np.asarray(values, np.float64))
    n = len(x)
    if n == 0:
        raise ValueError("median_interval needs at least one value.")
    from math import comb

    k = 1  # 1-based: the interval [x_(k), x_(n+1-k)]
    while k + 1 <= (n + 1) // 2:
        # P(median outside [x_(k+1), x_(n-k)]) = 2 * P(Binomial(n, 1/2) <= k)
        outside = 2 * sum(comb(n, j) for j in range(k + 1)) / 2 ** n
        if 1 - outside < confidence:
            break
        k += 1
    return float(x[k - 1]), float(x[n - k])
