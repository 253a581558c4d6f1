"""The timing loop's interleaved rounds and the median interval (no TensorFlow)."""

import time

import numpy as np
import pytest

from edgecv.timing import median_interval, time_rounds


def busy(us: float):
    def run():
        end = time.perf_counter_ns() + int(us * 1000)
        while time.perf_counter_ns() < end:
            pass
    return run


def test_median_interval_uses_order_statistics():
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0]  # 9 values: x(2)..x(8), 96% coverage
    assert median_interval(values) == (2.0, 8.0)
    assert median_interval(values[:5]) == (1.0, 9.0)  # 5 values: only min..max reaches 90%
    assert median_interval(list(range(1, 12))) == (3.0, 9.0)
    with pytest.raises(ValueError):
        median_interval([])


def test_median_interval_covers_the_median_as_often_as_it_claims():
    rng = np.random.default_rng(0)
    hits = sum(lo <= 0.0 <= hi for lo, hi in
               (median_interval(rng.standard_normal(9)) for _ in range(4000)))
    assert 0.94 < hits / 4000 < 0.98  # exact coverage for 9 values is 96.1%


def test_rounds_rotate_and_interleave():
    calls = []
    fns = [lambda i=i: calls.append(i) for i in range(3)]
    result = time_rounds(fns, rounds=3, runs=3, min_time_s=0, warmup=0)
    # first calls in order, then per round one call each, starting one further along each round
    assert calls == [0, 1, 2, 0, 1, 2, 1, 2, 0, 2, 0, 1]
    assert [len(r.round_p50_ms) for r in result] == [3, 3, 3]
    assert [r.stats.runs for r in result] == [3, 3, 3]


def test_rounds_separate_a_slower_call():
    fast, slow = time_rounds([busy(200), busy(400)], rounds=5, runs=20, min_time_s=0.05, warmup=2)
    assert fast.p50_interval()[1] < slow.p50_interval()[0]
    assert 1.6 < slow.stats.p50_ms / fast.stats.p50_ms < 2.5
    assert fast.stats.runs >= 20 and len(fast.samples_ns) == fast.stats.runs


def test_rounds_refuse_bad_settings():
    with pytest.raises(ValueError):
        time_rounds([busy(1)], rounds=0)
