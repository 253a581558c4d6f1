"""The int8 form (edgecv.converters.stem): a convolution on the image gets the int8 rounding that
suits its input, not rounding to nearest."""

from pathlib import Path

import numpy as np
import pytest

CIFAR_MINI = Path(__file__).parent / "data" / "cifar10_mini"


def _whitening(patches: np.ndarray) -> np.ndarray:
    """airnet's stem for these patches: eigenvectors / sqrt(eigenvalue), both signs, (d, 2d)."""
    centred = patches - patches.mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred / len(patches))
    filters = vectors / np.sqrt(values + 5e-4)
    return np.concatenate([filters, -filters], axis=1)


def test_the_rounding_chosen_for_the_data_lowers_the_error_and_keeps_the_grid():
    from edgecv.converters.stem import rounded_kernel

    rng = np.random.default_rng(0)
    # pixel patches: a large common level, a little detail (what a stem on photos reads)
    patches = 0.5 + 0.2 * rng.normal(size=(20_000, 1)) + 0.02 * rng.normal(size=(20_000, 12))
    kernel = _whitening(patches).reshape(2, 2, 3, 24).astype(np.float32)
    rounded, before, after = rounded_kernel(kernel, patches)
    assert after < before / 5
    w, r = kernel.reshape(12, 24), rounded.reshape(12, 24)
    scale = np.abs(w).max(0) / 127
    np.testing.assert_allclose(np.abs(r).max(0) / 127, scale, rtol=1e-6)  # the same scale
    k = r / scale
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)  # integers: the converter keeps them
    assert np.abs(np.round(k)).max() <= 127
    # each output's error, measured directly, is what the function says it is
    errors = lambda weights: (((patches @ (w - weights)) ** 2).mean(0)).mean()  # noqa: E731
    assert errors(r) == pytest.approx(after, rel=1e-3)
    assert errors(np.round(w / scale) * scale) == pytest.approx(before, rel=1e-3)


def test_a_kernel_already_on_its_grid_with_nothing_to_gain_is_left_as_it_is():
    from edgecv.converters.stem import rounded_kernel

    rng = np.random.default_rng(1)
    kernel = (rng.integers(-127, 128, (3, 3, 1, 4)) / 127 * 0.3).astype(np.float32)
    kernel[0, 0, 0, :] = 0.3  # the largest weight of each channel: exactly 127 steps
    rounded, before, after = rounded_kernel(kernel, rng.normal(size=(5000, 9)))
    assert before == pytest.approx(0, abs=1e-12) and after == pytest.approx(0, abs=1e-12)
    np.testing.assert_allclose(rounded, kernel, rtol=1e-6)


@pytest.mark.tf
def test_the_int8_file_of_a_whitening_stem_follows_the_float_model_closer(tmp_path):
    """Real photos, airnet's whitening stem, the TFLite converter: the int8 form's file is
    nearer the float model, and holds the integers chosen."""
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    from edgecv.converters.stem import int8_form
    from edgecv.converters.tflite import to_tflite_int8
    from edgecv.data import load_dataset
    from edgecv.models.airnet import init_whitening
    from edgecv.runtime.litert import LiteRTBackend

    data = load_dataset(str(CIFAR_MINI), 32, 32, 3, seed=0)
    x = data.train.x.astype(np.float32) / 255
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(24, 2, use_bias=False, trainable=False, name="whiten")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(h))
    model = keras.Model(inputs, keras.layers.Dense(10, name="scores")(h))
    init_whitening(model.get_layer("whiten"), x)
    calibration, test = x[:200], np.concatenate([data.val.x, data.test.x]) / np.float32(255)

    form, lines = int8_form(model, calibration)
    assert len(lines) == 1 and lines[0].startswith("whiten: int8 weights rounded for the data")
    kernel = model.get_layer("whiten").get_weights()[0]
    chosen = form.get_layer("whiten").get_weights()[0]
    assert form is not model and not np.array_equal(kernel, chosen)
    np.testing.assert_array_equal(  # every other weight as it was
        model.get_layer("scores").get_weights()[0], form.get_layer("scores").get_weights()[0])

    reference = model.predict(test, verbose=0)
    errors = {}
    for name, source in (("nearest", model), ("chosen", form)):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(to_tflite_int8(source, calibration, io="float32"))
        with LiteRTBackend(path, checksum="off") as backend:
            scores = np.concatenate([backend.run_prepared(test[i:i + 1])
                                     for i in range(len(test))])
        errors[name] = np.abs(scores - reference).mean()
    assert errors["chosen"] < errors["nearest"] / 2, errors


@pytest.mark.tf
def test_models_without_a_convolution_on_the_image_are_returned_as_they_are():
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    from edgecv.converters.stem import int8_form

    inputs = keras.Input((8, 8, 16))  # 16 channels: a feature map, not an image
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    assert int8_form(model, np.zeros((4, 8, 8, 16), np.float32)) == (model, [])
    reference = object()  # not a Keras model (a SavedModel's signature)
    assert int8_form(reference, np.zeros((1, 8, 8, 3))) == (reference, [])
