"""The export form of a Keras model (edgecv.converters.fuse): BatchNormalization folded into the
convolution before a max pool, exactly, and only where that is exact."""

import numpy as np
import pytest

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras():
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def _chain_model(keras, *, scale=False, second_reader=False, bias=False):
    """input -> conv -> max pool -> BN -> relu -> conv -> BN -> relu -> global max -> softmax,
    with BN statistics far from 0 / 1 (channel variances from 1e-4 to 10)."""
    layers = keras.layers
    inputs = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=bias, name="conv1")(inputs)
    pooled = layers.MaxPooling2D(name="pool1")(x)
    x = layers.ReLU(name="act1")(layers.BatchNormalization(scale=scale, name="bn1")(pooled))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv2")(x)
    x = layers.ReLU(name="act2")(layers.BatchNormalization(name="bn2")(x))
    if second_reader:  # the pool's output is read by another layer too
        x = layers.Add(name="skip")([x, pooled])
    x = layers.GlobalMaxPooling2D(name="gmp")(x)
    model = keras.Model(inputs, layers.Dense(4, activation="softmax", name="scores")(x))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=8).astype(np.float32))
            layer.moving_variance.assign(np.logspace(-4, 1, 8).astype(np.float32))
            layer.beta.assign(rng.normal(size=8).astype(np.float32))
        if isinstance(layer, layers.Conv2D) and layer.use_bias:
            layer.bias.assign(rng.normal(size=8).astype(np.float32))
    return model


def _images(n=32):
    return np.random.default_rng(1).uniform(0, 1, (n, 12, 12, 3)).astype(np.float32)


@pytest.mark.parametrize("bias", [False, True])
def test_the_bn_after_a_pool_folds_into_the_conv_before_it_with_the_same_outputs(keras, bias):
    from edgecv.converters.fuse import export_form

    model = _chain_model(keras, bias=bias)
    folded, folds = export_form(model, _images())
    assert folds == ["bn1 into conv1 across pool1"]
    names = [layer.name for layer in folded.layers]
    assert "bn1" not in names and "bn2" in names  # bn2 follows its conv: the converters fold it
    assert folded.get_layer("conv1").use_bias
    x = _images(64)
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


def test_nothing_folds_where_it_would_not_be_exact(keras):
    from edgecv.converters.fuse import export_form

    negative = _chain_model(keras, scale=True)
    negative.get_layer("bn1").gamma.assign(np.array([1, -1, 1, 1, 1, 1, 1, 1], np.float32))
    for model in (negative, _chain_model(keras, second_reader=True)):
        same, folds = export_form(model, _images())
        assert same is model and folds == []


def test_a_chain_called_twice_folds_once(keras):
    """A --tta flip model calls every layer on the image and on its mirror: one fold, one conv."""
    from edgecv.converters.fuse import export_form
    from edgecv.models.tta import flip_tta

    model = flip_tta(_chain_model(keras))
    folded, folds = export_form(model, _images())
    assert folds == ["bn1 into conv1 across pool1"]
    assert len(folded.layers) == len(model.layers) - 1
    assert folded.count_params() == model.count_params() - 3 * 8 + 8  # BN's 3 vectors, a bias
    x = _images(64)
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


def test_a_sequential_model_folds_too(keras):
    from edgecv.converters.fuse import export_form

    layers = keras.layers
    model = keras.Sequential([keras.Input((12, 12, 3)), layers.Conv2D(8, 3, use_bias=False),
                              layers.MaxPooling2D(), layers.BatchNormalization(), layers.ReLU(),
                              layers.GlobalMaxPooling2D(), layers.Dense(4)], name="seq")
    bn = model.layers[2]
    bn.moving_variance.assign(np.logspace(-3, 1, 8).astype(np.float32))
    bn.moving_mean.assign(np.linspace(-1, 1, 8).astype(np.float32))
    folded, folds = export_form(model, _images())
    assert len(folds) == 1 and not any(isinstance(layer, layers.BatchNormalization)
                                       for layer in folded.layers)
    x = _images(64)
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-4)


def test_a_subclassed_model_is_left_as_it_is(keras):
    from edgecv.converters.fuse import export_form

    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(keras.ops.reshape(x, (-1, 12 * 12 * 3)))

    model = Tiny()
    model(_images(2))
    assert export_form(model, _images()) == (model, [])


@pytest.mark.parametrize("saturated", [False, True])
def test_a_wrong_fold_is_not_used(keras, monkeypatch, saturated):
    """The check on the images is what stands between a wrong fold and the files, also when a
    saturated softmax gives both models the same one-hot scores (what CI once drew at random)."""
    from edgecv.converters import fuse

    real = fuse._copy_weights

    def off_by_a_channel(model, folded, chains):
        real(model, folded, chains)
        conv = folded.get_layer("conv1")
        kernel, bias = conv.get_weights()
        conv.set_weights([kernel[..., ::-1], bias])  # output channels swapped

    monkeypatch.setattr(fuse, "_copy_weights", off_by_a_channel)
    model = _chain_model(keras)
    if saturated:
        dense = model.get_layer("scores")
        dense.kernel.assign(np.zeros((8, 4), np.float32))
        dense.bias.assign(np.array([1e4, 0, 0, 0], np.float32))  # class 0 whatever the image
    assert fuse.export_form(model, _images()) == (model, [])
    if saturated:  # the outputs alone could not tell
        folded = keras.Model.from_config(fuse._without(model.get_config(),
                                                       [("conv1", "pool1", "bn1")]))
        off_by_a_channel(model, folded, [("conv1", "pool1", "bn1")])
        assert fuse._same_outputs(model, folded, _images())
