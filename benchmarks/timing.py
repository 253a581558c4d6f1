"""The timing loop: the only code in edgecv that measures inference latency.

``time_backend`` times ``backend.run(batch)`` with ``time.perf_counter_ns``: warm-up runs, then
timed runs until both ``runs`` and ``min_time_s`` are met, and summarises them. The `edgecv
bench` issue builds targets, sweeps and reports on top of this loop.
"""

from __future__ import annotations

import time
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
    ms = samples_ns.astype(np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(runs=int(len(ms)), first_ms=first_ns / 1e6, mean_ms=float(ms.mean()),
                        std_ms=float(ms.std()), min_ms=float(ms.min()), p50_ms=float(p50),
                        p90_ms=float(p90), p99_ms=float(p99), max_ms=float(ms.max()),
                        throughput_per_s=float(batch_size * 1000.0 / ms.mean()))


def time_backend(backend, batch: np.ndarray, *, runs: int = 100, min_time_s: float = 1.0,
                 warmup: int = 10, max_runs: int = 100_000) -> LatencyStats:
    """Time ``backend.run(batch)``: first call, ``warmup`` untimed calls, then at least ``runs``
    timed calls and at least ``min_time_s`` seconds (capped at ``max_runs`` calls).
    Defaults: 100 runs, 1 s, 10 warm-up calls."""
    start = time.perf_counter_ns()
    backend.run(batch)
    first_ns = time.perf_counter_ns() - start
    for _ in range(warmup):
        backend.run(batch)
    samples = []
    deadline = time.perf_counter_ns() + int(min_time_s * 1e9)
    while (len(samples) < runs or time.perf_counter_ns() < deadline) and len(samples) < max_runs:
        t0 = time.perf_counter_ns()
        backend.run(batch)
        samples.append(time.perf_counter_ns() - t0)
    return latency_percentiles(np.asarray(samples), first_ns, len(batch))
