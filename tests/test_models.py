"""The model registry, tested by looping over the registry itself (a new entry is tested for free)."""

import subprocess
import sys

import numpy as np
import pytest

from edgecv.errors import UsageError
from edgecv.models import count_macs, create_model, get_model_info, list_models

MODELS = list_models()


def small_shape(name):
    info = get_model_info(name)
    size = max(32, info.min_img_size)
    return (size, size, 3) if name == "mobilenet_v2" else (size, size, 1)


def test_registry_lists_the_zoo_without_importing_tensorflow():
    code = ("import sys, edgecv.models as m; names = m.list_models(); "
            "[m.get_model_info(n) for n in names]; "
            "print(','.join(names), 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, tf_loaded, keras_loaded = out.stdout.split()
    assert set(names.split(",")) >= {"seed_cnn", "lenet5", "mini_vgg", "mini_inception", "resnet8",
                                     "mobilenet_v2", "ds_cnn"}
    assert (tf_loaded, keras_loaded) == ("False", "False")


@pytest.fixture(scope="module")
def built():
    pytest.importorskip("tensorflow")
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    return {name: create_model(name, small_shape(name), 5) for name in MODELS}


@pytest.mark.tf
@pytest.mark.parametrize("name", MODELS)
def test_model_builds_softmax_and_trains_one_step(built, name):
    model = built[name]
    assert model.name == name
    assert tuple(model.output.shape) == (None, 5)
    assert not [layer for layer in model.layers if layer.__class__.__name__.startswith(("Random", "Rescaling"))]
    x = np.random.default_rng(0).normal(size=(8, *small_shape(name))).astype(np.float32)
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    loss = model.train_on_batch(x, np.arange(8) % 5)
    assert np.isfinite(float(np.asarray(loss).ravel()[0]))
    assert count_macs(model) > 0


# Conversion of every registry model (fp32, fp16, full int8 with builtin int8 ops only, ONNX,
# OpenCV DNN) is tested through edgecv.converters in tests/test_convert_zoo.py.


@pytest.mark.parametrize("kwargs, fragment", [
    ({"name": "resnet9"}, "Did you mean 'resnet8'?"),
    ({"name": "resnet8", "input_shape": (32, 32, 2)}, "received input_shape=(32, 32, 2)"),
    ({"name": "resnet8", "input_shape": (8, 8, 1)}, "received 8x8"),
    ({"name": "resnet8", "num_classes": 1}, "num_classes=1"),
    ({"name": "resnet8", "alpha": 0.5}, "does not accept ['alpha']; accepted options: filters"),
    ({"name": "mobilenet_v2", "input_shape": (96, 96, 1), "weights": "imagenet"}, "need 3 channels"),
    ({"name": "mobilenet_v2", "input_shape": (96, 96, 3), "weights": "/nope/base.weights.h5"},
     "'/nope/base.weights.h5' does not exist"),
])
def test_invalid_arguments_are_refused_with_the_received_value(kwargs, fragment):
    kwargs = {"input_shape": (32, 32, 1), "num_classes": 10, **kwargs}
    with pytest.raises(UsageError) as info:
        create_model(kwargs.pop("name"), **kwargs)
    assert fragment in str(info.value)


@pytest.mark.tf
def test_mobilenet_local_base_weights_are_loaded(tmp_path):
    first = create_model("mobilenet_v2", (32, 32, 3), 3)
    path = tmp_path / "base.weights.h5"
    first.get_layer("base").save_weights(str(path))
    second = create_model("mobilenet_v2", (32, 32, 3), 3, weights=str(path))
    for a, b in zip(first.get_layer("base").weights, second.get_layer("base").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    fresh = create_model("mobilenet_v2", (32, 32, 3), 3)
    assert not all(np.array_equal(a.numpy(), b.numpy()) for a, b in
                   zip(first.get_layer("base").weights, fresh.get_layer("base").weights))


@pytest.mark.tf
def test_count_macs_matches_a_hand_computed_model():
    import keras
    from keras import layers

    inputs = keras.Input((10, 10, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)           # 10*10 * 3*3*3 * 4 = 10,800
    x = layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 5*5 * 3*3 * 4  = 900
    x = layers.SeparableConv2D(8, 3, padding="valid")(x)       # 3*3 * (3*3*4 + 4*8) = 612
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(2)(x)                                # 8 * 2 = 16
    assert count_macs(keras.Model(inputs, outputs)) == 10_800 + 900 + 612 + 16
