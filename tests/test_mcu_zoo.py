"""benchmarks/experiments/mcu_zoo.py's emulation of TFLite's requantization, with which it tells
which rounding each runtime's FULLY_CONNECTED follows (numpy only, no TensorFlow)."""

import numpy as np

from conftest import import_experiment

mcu_zoo = import_experiment("mcu_zoo")
quantize_multiplier, requantize = mcu_zoo.quantize_multiplier, mcu_zoo.requantize


def test_the_multiplier_is_a_q31_integer_and_a_power_of_two():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(0.0) == (0, 0)
    for real in (1e-3, 0.0123456, 0.999999999999):
        multiplier, shift = quantize_multiplier(real)
        assert (1 << 30) <= multiplier < (1 << 31)
        assert abs(multiplier * 2.0 ** (shift - 31) - real) <= real * 2.0 ** -31


def test_rounding_once_is_exact_and_rounding_twice_parts_from_it_by_one_near_a_half():
    # lenet5 on digits, its last FULLY_CONNECTED, channel 9 of test image 71: 4.4996 rounds
    # to 4; rounded first to the multiplier's precision it becomes 4.5 and rounds to 5 (what
    # TFLite Micro gave, LiteRT's reference kernels gave 4)
    acc, multiplier, shift = np.array([4903]), np.array([2018103659]), np.array([-10])
    assert requantize(acc, multiplier, shift, single_rounding=True)[0] == 4
    assert requantize(acc, multiplier, shift, single_rounding=False)[0] == 5
    rng = np.random.default_rng(0)
    acc = rng.integers(-(1 << 20), 1 << 20, 20_000)
    multiplier = rng.integers(1 << 30, 1 << 31, 20_000)
    shift = rng.integers(-12, -5, 20_000)  # a conv or dense layer's: 2**-12 to 2**-6
    once = requantize(acc, multiplier, shift, single_rounding=True)
    exact = [(int(a) * int(m) + (1 << (30 - int(s)))) >> (31 - int(s))  # Python's exact integers
             for a, m, s in zip(acc, multiplier, shift)]
    np.testing.assert_array_equal(once, exact)
    twice = requantize(acc, multiplier, shift, single_rounding=False)
    assert np.abs(twice - once).max() == 1 and 0 < (twice != once).mean() < 0.01
