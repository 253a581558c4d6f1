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


# --- integrity: what the flatbuffer verifier does not catch (no TensorFlow needed) ---------------

import hashlib  # noqa: E402
import json  # noqa: E402

from tiny_tflite import tiny_tflite, with_card  # noqa: E402


def test_tiny_model_runs_through_the_backend(tmp_path):
    path = tmp_path / "add.tflite"
    path.write_bytes(tiny_tflite(constant=0.25))
    with open_backend(path, threads=1) as backend:
        out = backend.run(np.ones((2, 8, 8, 1), np.float32))
    assert out.shape == (2, 8, 8, 1) and np.allclose(out, 1.25)
    assert backend.card is None and backend.size_bytes == path.stat().st_size


def test_absurd_declared_tensor_is_refused_before_allocation(tmp_path):
    """The verifier accepts a tensor declared 4 x 10^10 floats; allocating it would take 160 GB."""
    path = tmp_path / "huge.tflite"
    path.write_bytes(tiny_tflite(declared_shape=(1, 200_000, 200_000, 1)))
    with pytest.raises(ModelFileError, match=r"tensor 'scores' declares shape \[1, 200000, 200000, 1\]"):
        open_backend(path)


def test_constant_buffer_that_disagrees_with_its_shape_is_refused(tmp_path):
    """LiteRT refuses a buffer shorter than its shape; a longer one (a shape whose dimension
    was corrupted downwards) it accepts, and edgecv's check refuses."""
    path = tmp_path / "long.tflite"
    path.write_bytes(tiny_tflite(constant_shape=(16, 16, 1)))  # 1024 bytes stored, 256 declared
    with pytest.raises(ModelFileError, match="declares shape .* but its buffer holds 1024 bytes"):
        open_backend(path)
    path.write_bytes(tiny_tflite(constant_shape=(4, 4, 1)))  # 64 bytes stored: LiteRT's own check
    with pytest.raises(ModelFileError, match="not a valid TFLite model"):
        open_backend(path)


def _manifest(folder, name, data):
    (folder / "conversion.json").write_text(json.dumps(
        {"artifacts": [{"file": name, "sha256": hashlib.sha256(data).hexdigest()}]}))


@pytest.mark.parametrize("policy", ["warn", "refuse", "off"])
def test_checksum_recorded_at_convert_time_is_checked_on_load(tmp_path, policy):
    good = tiny_tflite(constant=0.5)
    path = tmp_path / "model.tflite"
    _manifest(tmp_path, path.name, good)
    path.write_bytes(good)
    with open_backend(path, checksum=policy) as backend:
        assert backend.warnings == []
    path.write_bytes(tiny_tflite(constant=0.75))  # same structure, changed weights: loads fine
    if policy == "refuse":
        with pytest.raises(ModelFileError, match="does not match the SHA-256 recorded"):
            open_backend(path, checksum=policy)
        return
    with open_backend(path, checksum=policy) as backend:
        assert np.allclose(backend.run(np.zeros((1, 8, 8, 1), np.float32)), 0.75)
        if policy == "warn":
            assert len(backend.warnings) == 1 and "`checksum='refuse'`" in backend.warnings[0]
        else:
            assert backend.warnings == []


def test_unknown_checksum_policy(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(tiny_tflite())
    from edgecv.errors import UsageError

    with pytest.raises(UsageError, match="`checksum` must be one of warn, refuse, off, received 'yes'"):
        open_backend(path, checksum="yes")


def test_non_finite_output_is_refused(tmp_path):
    path = tmp_path / "inf.tflite"
    path.write_bytes(tiny_tflite(constant=float("inf")))
    with open_backend(path) as backend, pytest.raises(DataError, match="returned NaN or inf"):
        backend.run(np.zeros((1, 8, 8, 1), np.float32))


def test_card_survives_and_is_read_without_tensorflow(tmp_path):
    path = tmp_path / "carded.tflite"
    path.write_bytes(with_card(tiny_tflite(), ["a", "b"]))
    with open_backend(path) as backend:
        assert backend.card.labels == ["a", "b"] and backend.card.preprocessing.height == 8


def test_all_finite_is_exact_even_when_the_sum_overflows():
    from edgecv.runtime.base import all_finite

    big = np.full(8, 3e38, np.float32)  # finite values whose float32 sum is inf
    assert all_finite(big)
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros(8, np.float32)
        x[5] = bad
        assert not all_finite(x)


@pytest.mark.parametrize("dtype, zero_point", [(np.int8, -128), (np.int8, 3), (np.uint8, 0), (np.uint8, 128)])
def test_dequantize_table_equals_dequantize_for_every_byte(dtype, zero_point):
    from edgecv.runtime.base import dequantize_table

    codes = np.arange(256, dtype=np.uint8).view(dtype).reshape(16, 16)
    table = dequantize_table(0.00390625, zero_point, dtype)
    np.testing.assert_array_equal(table[codes.view(np.uint8)], dequantize(codes, 0.00390625, zero_point))
    assert dequantize_table(0.1, 0, np.int16) is None


# --- close(): the runtime is released, and a closed backend says so -----------------------------

def _tiny_onnx(path):
    """A reshape (N, 2, 2, 1) -> (N, 4), written with the onnx package (no TensorFlow)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 2, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _assert_close_releases(backend, runtime_object, batch):
    """``runtime_object`` (the interpreter/session/model) is freed once the backend is closed,
    and every later use of the runtime raises BackendClosed naming the file."""
    import gc
    import weakref

    from edgecv.errors import BackendClosed

    assert backend.run(batch).shape[0] == len(batch)
    released = weakref.ref(runtime_object)
    del runtime_object
    gc.collect()
    assert released() is not None  # held by the open backend
    with backend:
        pass  # leaving the with block closes it
    gc.collect()
    assert released() is None, "close() left the runtime alive"
    for use in (lambda: backend.run(batch), lambda: backend.input_shape, backend.io_details):
        with pytest.raises(BackendClosed, match=rf"backend of '.*{backend.path.name}' is closed"):
            use()
    backend.close()  # a second close is harmless
    assert backend.size_bytes == backend.path.stat().st_size  # metadata stays readable


def test_close_releases_the_litert_interpreter(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(with_card(tiny_tflite(), ["a"]))
    backend = open_backend(path)
    _assert_close_releases(backend, backend.interpreter, np.zeros((2, 8, 8, 1), np.float32))
    assert backend.card.labels == ["a"]


def test_close_releases_the_onnxruntime_session(tmp_path):
    path = tmp_path / "m.onnx"
    _tiny_onnx(path)
    backend = open_backend(path)
    _assert_close_releases(backend, backend.session, np.ones((3, 2, 2, 1), np.float32))


@pytest.mark.tf
def test_close_releases_the_keras_model(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(
        keras.layers.Flatten()(inputs)))
    path = tmp_path / "m.keras"
    model.save(path)
    del model
    backend = open_backend(path)
    _assert_close_releases(backend, backend.model, np.zeros((2, 8, 8, 1), np.float32))


@pytest.mark.tf
def test_the_keras_backend_traces_once_for_every_batch_size(tmp_path):
    """The bench calls a Keras model with batch 1, the test set in chunks of 64 and a remainder,
    then 1 again: one graph serves them all, and TensorFlow does not warn about retracing even
    in a process whose other Keras models have traced their own predict steps, as a pipeline's
    training and conversion have (issue 31: the pipeline printed the warning four times)."""
    import logging

    import keras

    warnings = []

    class Collect(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(
        keras.layers.Flatten()(inputs)))
    model.save(tmp_path / "m.keras")
    handler = Collect()
    logging.getLogger("tensorflow").addHandler(handler)
    try:
        for _ in range(3):  # what training and verification did earlier in the process
            keras.models.clone_model(model).predict(np.zeros((10, 8, 8, 1), np.float32),
                                                    verbose=0)
        backend = open_backend(tmp_path / "m.keras")
        traced = []
        model_call = backend.model.call

        def counting_call(*args, **kwargs):  # Python runs it only while TF traces a graph
            traced.append(tuple(args[0].shape))
            return model_call(*args, **kwargs)

        backend.model.call = counting_call
        for size in (1, 64, 64, 64, 64, 13, *[1] * 10):
            assert backend.run(np.zeros((size, 8, 8, 1), np.float32)).shape == (size, 3)
    finally:
        logging.getLogger("tensorflow").removeHandler(handler)
    assert traced == [(None, 8, 8, 1)]
    assert not [w for w in warnings if "retracing" in w], warnings
