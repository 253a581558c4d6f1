"""The runtime backends' shared arithmetic and input guards (numpy only), and bad model files."""

import numpy as np
import pytest

from edgecv.errors import DataError, ModelFileError
from edgecv.runtime import open_backend
from edgecv.runtime.base import dequantize, quantize, runtime_message


def test_quantize_rounds_offsets_and_clips():
    x = np.array([-2.0, -0.004, 0.0, 0.5, 0.996, 5.0], np.float32)
    q = quantize(x, 1 / 255, -128, np.int8)
    assert q.dtype == np.int8
    assert q.tolist() == [-128, -128, -128, -1, 126, 127]  # -1.02 - 128 clips to -128


def test_dequantize_uses_int64_so_uint8_never_wraps():
    q = np.array([0, 255], np.uint8)
    np.testing.assert_allclose(dequantize(q, 0.5, 128), [-64.0, 63.5])
    assert dequantize(np.array([-128, 127], np.int8), 1 / 256, -128).tolist() == [0.0, 255 / 256]


def test_runtime_message_drops_onnxruntime_source_locations():
    text = ("[ONNXRuntimeError] : 1 : FAIL : Load model failed:/onnxruntime_src/core/graph/model.cc:256 "
            "onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::Logger&) "
            "Unsupported model IR version: 14, max supported IR version: 13")
    assert runtime_message(Exception(text)) == "Unsupported model IR version: 14, max supported IR version: 13"


@pytest.mark.parametrize("name, content, fragment", [
    ("empty.tflite", b"", "not a valid TFLite model"),
    ("random.tflite", bytes(range(256)) * 4, "not a valid TFLite model"),
    ("photo.tflite", b"\x89PNG\r\n\x1a\n" + bytes(200), "not a valid TFLite model"),
    ("empty.onnx", b"", "not a valid ONNX model"),
    ("random.onnx", bytes(range(256)) * 4, "not a valid ONNX model"),
    ("model.pt", b"x", "unsupported model file type '.pt'"),
])
def test_corrupt_or_foreign_model_files_are_one_clear_error(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=fragment):
        open_backend(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        open_backend(tmp_path / "nope.tflite")


@pytest.mark.tf
def test_backends_refuse_wrong_shapes_and_nan(tmp_path):
    import keras

    from edgecv.converters.tflite import to_tflite_int8

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))
    samples = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype(np.float32)
    path = tmp_path / "m.tflite"
    path.write_bytes(to_tflite_int8(model, samples))
    with open_backend(path) as backend:
        scores = backend.run(samples[:5])  # batch 5 into a model exported with batch 1
        assert scores.shape == (5, 3) and scores.dtype == np.float32
        np.testing.assert_allclose(scores.sum(1), 1.0, atol=0.02)
        with pytest.raises(DataError, match=r"shape \(1, 28, 28, 1\), expected \(N, 8, 8, 1\)"):
            backend.run(np.zeros((1, 28, 28, 1), np.float32))
        bad = samples[:1].copy()
        bad[0, 0, 0, 0] = np.nan
        with pytest.raises(DataError, match="NaN or inf"):
            backend.run(bad)
