"""Top-k decoding and the Classifier (numpy only; a real LiteRT model built without TensorFlow)."""

import numpy as np
import pytest

from edgecv.classify import Classifier, top_k
from edgecv.errors import UsageError
from edgecv.runtime import open_backend
from tiny_tflite import tiny_tflite, with_card

LABELS = ["cat", "dog", "owl", "fox"]


def test_top_k_orders_best_first_and_keeps_class_order_on_ties():
    scores = np.array([0.1, 0.4, 0.1, 0.4])
    assert top_k(scores, LABELS, 3) == [{"label": "dog", "score": 0.4}, {"label": "fox", "score": 0.4},
                                        {"label": "cat", "score": 0.1}]


def test_top_k_threshold_and_k_larger_than_classes():
    scores = np.array([0.05, 0.7, 0.2, 0.05])
    assert [c["label"] for c in top_k(scores, LABELS, 10, threshold=0.1)] == ["dog", "owl"]
    assert top_k(scores, LABELS, 10, threshold=0.9) == []


def test_top_k_label_count_mismatch():
    with pytest.raises(UsageError, match="the model has 4 outputs but 3 labels"):
        top_k(np.zeros(4), LABELS[:3])


@pytest.fixture
def flat_model(tmp_path):
    """input (1, 1, 1, 4) + 0: the 'scores' are the normalised input pixels themselves, so
    the expected class of a synthetic image is known exactly."""
    path = tmp_path / "flat.tflite"
    path.write_bytes(with_card(tiny_tflite(shape=(1, 1, 1, 4), constant=0.0), LABELS,
                               height=8, width=8, channels=1))
    return path


def test_classifier_uses_the_card_and_reports_time(flat_model, tmp_path):
    # The model's real input is (1, 1, 1, 4); the card says 8x8x1, so prepare would mismatch:
    # this checks the shape guard names both shapes instead of running garbage.
    with open_backend(flat_model) as backend:
        classifier = Classifier(backend, k=2)
        assert classifier.labels == LABELS
        with pytest.raises(Exception, match=r"expected \(N, 1, 1, 4\)"):
            classifier.classify(np.zeros((8, 8), np.uint8))
        prediction = classifier.decode(np.array([0.1, 0.2, 0.6, 0.1]), ms=1.23456)
    assert prediction.label == "owl" and prediction.score == 0.6 and prediction.ms == 1.2346
    assert [c.label for c in prediction.top_k] == ["owl", "dog"]


def test_classifier_without_card_needs_labels(tmp_path):
    path = tmp_path / "bare.tflite"
    path.write_bytes(tiny_tflite())
    with open_backend(path) as backend, pytest.raises(UsageError, match="carries no edgecv model card"):
        Classifier(backend)


@pytest.mark.parametrize("kwargs, fragment", [({"k": 0}, "`top_k` must be at least 1"),
                                              ({"threshold": 1.5}, "`threshold` must be between 0 and 1")])
def test_classifier_validates_options(flat_model, kwargs, fragment):
    with open_backend(flat_model) as backend, pytest.raises(UsageError, match=fragment):
        Classifier(backend, **kwargs)


def test_classify_end_to_end_finds_the_bright_pixel(tmp_path):
    """An 8x8 'model' whose 64 scores are its input pixels: a 64x64 BGR frame with one bright
    8x8 block must come back as the label of that block's position, through crop, colour
    conversion, resize, normalisation and the LiteRT runtime."""
    labels = [f"p{i}" for i in range(64)]
    path = tmp_path / "pixels.tflite"
    path.write_bytes(with_card(tiny_tflite(shape=(1, 8, 8, 1), constant=0.0), labels))
    frame = np.zeros((64, 96, 3), np.uint8)  # wider than the model: crop keeps x 16..80
    frame[24:32, 16 + 40:16 + 48] = 255  # block at row 3, column 5 of the cropped 64x64
    with open_backend(path) as backend:
        prediction = Classifier(backend, k=1).classify(frame)
    assert prediction.label == "p29" and prediction.score == pytest.approx(1.0, abs=1e-3)
    assert prediction.ms > 0
