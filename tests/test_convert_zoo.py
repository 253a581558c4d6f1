"""Every registry model through every converter (registry-driven: a new model is tested for free)."""

import numpy as np
import pytest

from edgecv.models import get_model_info, list_models

pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def digits():
    from edgecv.data import load_dataset
    from edgecv.preprocessing import Preprocessing
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    data = {}
    for channels in (1, 3):
        pre = Preprocessing(32, 32, channels)
        ds = load_dataset("digits", 32, 32, channels, seed=0)
        data[channels] = (pre, pre.normalize(ds.train.x[:640]), ds.train.y[:640],
                          pre.normalize(ds.test.x[:120]))
    return data


@pytest.mark.parametrize("name", list_models())
def test_zoo_model_converts_and_matches_keras(name, digits, tmp_path):
    import cv2
    import keras

    from edgecv.card import ModelCard, embed_onnx_card, embed_tflite_card
    from edgecv.runtime import read_card
    from edgecv.converters.onnx import to_onnx
    from edgecv.converters.tflite import (integer_only_violations, to_tflite_fp16,
                                          to_tflite_fp32, to_tflite_int8)
    from edgecv.models import create_model
    from edgecv.runtime import open_backend

    channels = 3 if get_model_info(name).supports_weights else 1
    pre, x, y, test_x = digits[channels]
    keras.utils.set_random_seed(0)
    model = create_model(name, pre.input_shape, 10)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)  # a trained tiny model, not noise
    expected = model.predict(test_x, verbose=0)
    card = ModelCard(labels=[str(i) for i in range(10)], preprocessing=pre, format="test")

    artifacts = {"fp32": to_tflite_fp32(model), "fp16": to_tflite_fp16(model),
                 "int8": to_tflite_int8(model, x[:64])}
    assert integer_only_violations(artifacts["int8"]) == []
    scores = {}
    for fmt, data in artifacts.items():
        path = tmp_path / f"{fmt}.tflite"
        path.write_bytes(embed_tflite_card(data, card))
        assert read_card(path) == card
        with open_backend(path) as backend:
            scores[fmt] = backend.run(test_x)
    proto = to_onnx(model)
    embed_onnx_card(proto, card)
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(proto.SerializeToString())
    assert read_card(onnx_path) == card
    with open_backend(onnx_path) as backend:
        scores["onnx"] = backend.run(test_x)
    net = cv2.dnn.readNetFromONNX(str(onnx_path))
    net.setInput(test_x[:1])
    scores["opencv"] = net.forward()

    np.testing.assert_allclose(scores["fp32"], expected, atol=1e-4)
    np.testing.assert_allclose(scores["onnx"], expected, atol=1e-4)
    np.testing.assert_allclose(scores["opencv"], expected[:1], atol=1e-4)
    assert np.abs(scores["fp16"] - expected).max() < 0.05
    agreement = (scores["int8"].argmax(1) == expected.argmax(1)).mean()
    assert agreement >= 0.9, f"{name}: int8 top-1 agreement {agreement:.3f}"
