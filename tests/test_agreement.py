"""Top-1 agreement between two runtimes' scores, strict and counting ties
(edgecv.runtime.base, also importable from edgecv.converters.verify). No TensorFlow."""

import numpy as np

from edgecv.runtime.base import agreement, agreement_counting_ties

STEP = 1 / 256  # an int8 softmax's output scale


def test_a_tie_one_step_away_from_a_decision_counts_as_agreeing():
    # image 0: runtime a ties classes 1 and 2 (argmax says 1), b is a step higher on 2
    # image 1: a clear disagreement, no tie anywhere; image 2: the same clear decision
    a = np.array([[10, 120, 120, 6], [200, 40, 10, 6], [3, 3, 240, 10]]) * STEP
    b = np.array([[10, 119, 121, 6], [40, 200, 10, 6], [3, 3, 240, 10]]) * STEP
    assert agreement(a, b) == 1 / 3
    assert agreement_counting_ties(a, b) == 2 / 3
    assert agreement_counting_ties(b, a) == 2 / 3  # symmetric


def test_ties_that_share_no_class_do_not_agree():
    a = np.array([[100, 100, 20, 20]]) * STEP
    b = np.array([[20, 20, 100, 100]]) * STEP
    assert agreement_counting_ties(a, b) == 0.0


def test_counting_ties_never_lowers_an_agreement():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 8, (500, 10)) * STEP for _ in range(2))  # many ties
    assert agreement(a, b) <= agreement_counting_ties(a, b) <= 1
    assert agreement_counting_ties(a, a) == 1.0
