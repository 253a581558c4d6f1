"""The model registry, tested by looping over the registry itself (a new entry is tested for free).

TensorFlow tests are marked ``tf``; the int8 conversions are also ``slow``. Inputs are 32x32
(mobilenet_v2 at alpha 0.35) and training runs eagerly on 8 samples, so the file runs in about a
minute on 2 CPU cores.
"""

import dataclasses
import inspect
import subprocess
import sys

import numpy as np
import pytest

from edgecv.errors import EdgecvError, UsageError
from edgecv.models import ModelInfo, count_macs, create_model, get_model_info, list_models

MODELS = list_models()
NUM_CLASSES = 5


def default_shape(name, channels=None):
    """32x32 (or the model's minimum), 3 channels for pretrained-capable models, else 1."""
    info = get_model_info(name)
    size = max(32, info.min_img_size)
    if channels is None:
        channels = 3 if info.supports_weights else 1
    return (size, size, channels)


def random_inputs(shape, n=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


@pytest.fixture(scope="module")
def tf():
    pytest.importorskip("tensorflow")
    from edgecv.tf_import import import_tensorflow

    return import_tensorflow()


# --- the registry itself, without TensorFlow ------------------------------------------------------

def test_registry_lists_the_zoo_without_importing_tensorflow():
    code = ("import sys, edgecv.models as m; names = m.list_models(); "
            "[m.get_model_info(n) for n in names]; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'; "
            "print(','.join(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.strip().split(",")) >= {
        "seed_cnn", "lenet5", "mini_vgg", "mini_inception", "resnet8", "mobilenet_v2", "ds_cnn",
        "airnet"}


def test_bad_arguments_fail_before_tensorflow_is_imported():
    # Builder modules import Keras inside the builder, after validating their options.
    code = """
import sys
from edgecv.errors import UsageError
from edgecv.models import create_model
cases = [("resnet9", (32, 32, 1), {}), ("resnet8", (32, 32, 2), {}),
         ("mini_vgg", (32, 32, 1), {"dropout": 2.0}), ("ds_cnn", (32, 32, 1), {"blocks": 0}),
         ("mobilenet_v2", (96, 96, 1), {"weights": "imagenet"})]
for name, shape, overrides in cases:
    try:
        create_model(name, shape, 10, **overrides)
    except UsageError:
        pass
    else:
        raise SystemExit(f"{name} {shape} {overrides} was accepted")
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "imported"
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("name", MODELS)
def test_model_info_is_complete_and_matches_the_builder(name):
    from edgecv.models.registry import _REGISTRY

    info = get_model_info(name)
    assert isinstance(info, ModelInfo) and info.name == name
    assert info.description and "\n" not in info.description
    assert 1 <= info.min_img_size <= info.default_img_size
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "other"  # type: ignore[misc]
    # The overrides ModelInfo advertises are exactly the builder's keyword options.
    module_name, function_name = _REGISTRY[name][0].split(":")
    builder = getattr(__import__(f"edgecv.models.{module_name}", fromlist=["_"]), function_name)
    options = list(inspect.signature(builder).parameters)[2:]
    assert sorted(options) == sorted(info.overrides)


def test_only_mobilenet_supports_pretrained_weights():
    assert [n for n in MODELS if get_model_info(n).supports_weights] == ["mobilenet_v2"]
    assert get_model_info("mobilenet_v2").default_img_size == 96


@pytest.mark.parametrize("name, input_shape, num_classes, overrides, fragment", [
    ("resnet9", (32, 32, 1), 10, {}, "Did you mean 'resnet8'?"),
    ("resnet8", (32, 32, 2), 10, {}, "received input_shape=(32, 32, 2)"),
    ("resnet8", (32, 32), 10, {}, "received input_shape=(32, 32)"),
    ("resnet8", (32.5, 32, 1), 10, {}, "received input_shape=(32.5, 32, 1)"),
    ("resnet8", (7, 7, 1), 10, {}, "received 7x7"),
    ("lenet5", (15, 32, 1), 10, {}, "at least 16x16, received 15x32"),
    ("mobilenet_v2", (31, 31, 3), 10, {}, "at least 32x32, received 31x31"),
    ("resnet8", (32, 32, 1), 1, {}, "num_classes=1"),
    ("resnet8", (32, 32, 1), 2.5, {}, "num_classes=2.5"),
    ("resnet8", (32, 32, 1), 10, {"alpha": 0.5}, "does not accept ['alpha']; accepted options: filters"),
    ("lenet5", (32, 32, 1), 10, {"dropout": 0.1}, "accepted options: none"),
    ("resnet8", (32, 32, 1), 10, {"filters": (16, 32)}, "received filters=(16, 32)"),
    ("resnet8", (32, 32, 1), 10, {"filters": (16, 0, 64)}, "received filters[1]=0"),
    ("seed_cnn", (32, 32, 1), 10, {"dropout": 1.0}, "received dropout=1.0"),
    ("mini_vgg", (32, 32, 1), 10, {"width": -1}, "received width=-1"),
    ("mini_inception", (32, 32, 1), 10, {"width": "wide"}, "received width='wide'"),
    ("ds_cnn", (32, 32, 1), 10, {"blocks": 0}, "received blocks=0"),
    ("ds_cnn", (32, 32, 1), 10, {"filters": 8.5}, "received filters=8.5"),
    ("mobilenet_v2", (96, 96, 3), 10, {"alpha": 0}, "received alpha=0"),
    ("mobilenet_v2", (96, 96, 1), 10, {"weights": "imagenet"}, "use `channels=3`"),
    ("mobilenet_v2", (96, 96, 3), 10, {"weights": "imagenet", "alpha": 0.6},
     "received alpha=0.6"),
    ("mobilenet_v2", (96, 96, 3), 10, {"weights": "/nope/base.weights.h5"},
     "'/nope/base.weights.h5' does not exist"),
    ("mobilenet_v2", (96, 96, 3), 10, {"weights": 3}, "received weights=3"),
])
def test_invalid_arguments_are_refused_with_the_received_value(name, input_shape, num_classes,
                                                                 overrides, fragment):
    with pytest.raises(UsageError) as info:
        create_model(name, input_shape, num_classes, **overrides)
    assert fragment in str(info.value)


def test_mobilenet_weights_file_with_a_foreign_suffix_is_refused(tmp_path):
    path = tmp_path / "base.pt"
    path.write_bytes(b"not keras")
    with pytest.raises(UsageError, match=r"base\.pt' must end in \.weights\.h5"):
        create_model("mobilenet_v2", (96, 96, 3), 10, weights=str(path))


# --- every model, built, trained and converted ---------------------------------------------------

@pytest.mark.tf
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", MODELS)
def test_model_builds_a_softmax_inference_graph(tf, name, channels):
    import keras

    shape = default_shape(name, channels)
    model = create_model(name, shape, NUM_CLASSES)
    assert model.name == name
    assert tuple(model.input.shape) == (None, *shape)
    assert tuple(model.output.shape) == (None, NUM_CLASSES)
    scores = model.get_layer("scores")
    assert model.layers[-1] is scores
    assert isinstance(scores, keras.layers.Softmax) or (
        isinstance(scores, keras.layers.Dense) and scores.activation is keras.activations.softmax)
    # No augmentation anywhere, and no preprocessing of the input (a scale inside the network,
    # such as airnet's logit scale, is part of the model).
    augmentation = [layer.name for layer in model.layers
                    if layer.__class__.__name__.startswith("Random")]
    assert augmentation == [], "augmentation belongs to the trainer"
    first = model.layers[1]  # the first layer after the InputLayer
    assert not first.__class__.__name__.startswith(("Rescaling", "Normalization")), \
        "preprocessing belongs to the caller"
    probabilities = np.asarray(model(random_inputs(shape), training=False))
    assert probabilities.shape == (8, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert count_macs(model) > 0


@pytest.mark.tf
@pytest.mark.parametrize("name", MODELS)
def test_model_builds_at_its_minimum_size(tf, name):
    size = get_model_info(name).min_img_size
    shape = (size, size + 3, default_shape(name)[2])  # non-square too
    model = create_model(name, shape, NUM_CLASSES)
    assert np.asarray(model(random_inputs(shape, n=1), training=False)).shape == (1, NUM_CLASSES)


@pytest.mark.tf
@pytest.mark.parametrize("name", MODELS)
def test_model_trains_one_step(tf, name):
    import keras

    keras.utils.set_random_seed(0)
    shape = default_shape(name)
    model = create_model(name, shape, NUM_CLASSES)
    before = model.get_layer("scores").get_weights()[0].copy()
    # Eager: tracing a train function costs up to 30 s for mobilenet_v2 and proves nothing more.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    loss = model.train_on_batch(random_inputs(shape), np.arange(8) % NUM_CLASSES)
    assert np.isfinite(float(np.asarray(loss).ravel()[0]))
    assert not np.array_equal(before, model.get_layer("scores").get_weights()[0])


def to_full_int8_tflite(tf, model, samples) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([samples[i:i + 1]] for i in range(len(samples)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_model_converts_to_full_int8_tflite_with_builtin_ops(tf, name):
    # The model graph on its own; edgecv.converters is tested on the zoo in test_convert_zoo.py.
    import keras
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    keras.utils.set_random_seed(0)
    shape = default_shape(name)
    samples = random_inputs(shape)
    data = to_full_int8_tflite(tf, create_model(name, shape, NUM_CLASSES), samples)

    # No default delegate: XNNPACK would replace the builtin ops by "DELEGATE" nodes.
    interpreter = Interpreter(model_content=data, experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert (inp["dtype"], out["dtype"]) == (np.int8, np.int8)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    not_integer = []
    for op in interpreter._get_ops_details():
        assert not op["op_name"].startswith("Flex") and op["op_name"] not in ("CUSTOM", "DELEGATE"), op
        for index in [*op["inputs"], *op["outputs"]]:
            if index >= 0 and tensors[index]["dtype"] not in (np.int8, np.int32):
                not_integer.append((op["op_name"], tensors[index]["name"], tensors[index]["dtype"]))
    assert not_integer == []

    scale, zero_point = inp["quantization"]
    quantized = np.clip(np.round(samples[:1] / scale + zero_point), -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], quantized)
    interpreter.invoke()
    result = interpreter.get_tensor(out["index"])
    assert result.shape == (1, NUM_CLASSES)
    out_scale, out_zero_point = out["quantization"]
    probabilities = (result.astype(np.int64) - out_zero_point) * out_scale
    assert abs(probabilities.sum() - 1.0) < 0.05


# --- mobilenet_v2 weights -------------------------------------------------------------------------

@pytest.mark.tf
def test_mobilenet_base_is_a_nested_model_and_local_weights_load(tf, tmp_path):
    import keras

    first = create_model("mobilenet_v2", (32, 32, 3), 3)
    assert isinstance(first.get_layer("base"), keras.Model)
    path = tmp_path / "base.weights.h5"
    first.get_layer("base").save_weights(str(path))
    second = create_model("mobilenet_v2", (32, 32, 3), 3, weights=str(path))
    for a, b in zip(first.get_layer("base").weights, second.get_layer("base").weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    fresh = create_model("mobilenet_v2", (32, 32, 3), 3)
    assert not all(np.array_equal(a.numpy(), b.numpy()) for a, b in
                   zip(first.get_layer("base").weights, fresh.get_layer("base").weights))
    # A file from another width does not fit: a UsageError naming the file, not a Keras trace.
    with pytest.raises(UsageError, match="base.weights.h5"):
        create_model("mobilenet_v2", (32, 32, 3), 3, alpha=0.5, weights=str(path))


@pytest.mark.tf
def test_mobilenet_imagenet_download_failure_says_offline(tf, monkeypatch):
    from keras.src.utils import file_utils

    def offline(fname, origin, **kwargs):  # what keras.utils.get_file raises without a network
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] "
                        "Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(EdgecvError) as info:
        create_model("mobilenet_v2", (96, 96, 3), 3, weights="imagenet")
    assert not isinstance(info.value, UsageError)
    message = str(info.value)
    assert "could not download ImageNet weights for mobilenet_v2" in message
    assert "URL fetch failure" in message and "`weights` PATH" in message


# --- count_macs -----------------------------------------------------------------------------------

@pytest.mark.tf
def test_count_macs_matches_a_hand_computed_model(tf):
    import keras
    from keras import layers

    inner_in = keras.Input((5, 5, 4))
    inner = keras.Model(inner_in, layers.Conv2D(8, 1, groups=2)(inner_in), name="inner")
    inputs = keras.Input((10, 10, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)              # 10*10 * 3*3*3 * 4 = 10,800
    x = layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 5*5 * 3*3 * 4     = 900
    x = layers.BatchNormalization()(x)                           # free
    x = inner(x)                                                 # 5*5 * 1*1*2 * 8   = 400
    x = layers.SeparableConv2D(8, 3, padding="valid")(x)         # 3*3 * (3*3*8 + 8*8) = 1,224
    x = layers.Dense(6)(x)                                       # 3*3 * 8*6         = 432
    x = layers.GlobalAveragePooling2D()(x)                       # free
    outputs = layers.Dense(2, activation="softmax")(x)           # 6*2               = 12
    assert count_macs(keras.Model(inputs, outputs)) == 10_800 + 900 + 400 + 1_224 + 432 + 12


@pytest.mark.tf
@pytest.mark.parametrize("name, input_shape, params, macs", [
    # mlcommons/tiny ResNet-8 on CIFAR-10: 78,666 parameters, 12.5 M MACs.
    ("resnet8", (32, 32, 3), 78_666, 12_501_632),
    # LeNet-5 on 32x32: 156 + 2,416 + 48,120 + 10,164 + 850 parameters;
    # MACs 28*28*25*6 + 10*10*150*16 + 400*120 + 120*84 + 84*10.
    ("lenet5", (32, 32, 1), 61_706, 416_520),
    # airnet: convs 2*2*3*24 (frozen stem) + 9*(24*64 + 64*64 + 64*256 + 3*256*256), BatchNorm
    # without scale 3*(2*64 + 4*256), classifier 256*10 = 1,973,920 parameters; MACs at
    # 31, 31, 15, 15, 7, 7, 3 pixels a side: 276,768 + 13,284,864 + 8,294,400 + 33,177,600
    # + 2*28,901,376 + 5,308,416 + 2,560.
    ("airnet", (32, 32, 3), 1_973_920, 118_147_360),
])
def test_reference_models_have_their_published_size(tf, name, input_shape, params, macs):
    model = create_model(name, input_shape, 10)
    assert (model.count_params(), count_macs(model)) == (params, macs)


@pytest.mark.tf
def test_count_macs_refuses_what_is_not_a_keras_model(tf):
    with pytest.raises(UsageError, match="received str"):
        count_macs("model.keras")
