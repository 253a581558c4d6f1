"""Test-time augmentation that the saved model computes itself (edgecv.models.tta), and
airnet's Dirac initialisation."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

CIFAR_MINI = Path(__file__).parent / "data" / "cifar10_mini"  # 600 JPEG photos, 10 classes


def photos(n=64):
    import cv2

    files = sorted(CIFAR_MINI.rglob("*.jpg"))[:n]
    images = np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])
    return images.astype(np.float32) / 255.0


@pytest.mark.tf
def test_flip_tta_averages_the_scores_of_the_image_and_its_mirror(tmp_path):
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    from edgecv.modelfile.keras_file import load_keras_model
    from edgecv.models import count_macs, create_model
    from edgecv.models.tta import flip_tta

    model = create_model("airnet", (32, 32, 3), 10, widths=(8, 16, 16), logit_scale=1.0)
    tta = flip_tta(model)
    x = photos()
    plain, mirrored = np.asarray(model(x)), np.asarray(model(x[:, :, ::-1]))
    assert np.abs(plain - mirrored).max() > 1e-3  # the mirror really is another input
    expected = (plain + mirrored) / 2
    np.testing.assert_allclose(np.asarray(tta(x)), expected, rtol=1e-5, atol=1e-6)
    assert tta.input_shape == model.input_shape and tta.output_shape == model.output_shape
    # the same trainable weights, called twice in one flat graph, plus the frozen mirror
    assert tta.count_params() == model.count_params() + 32 * 32
    assert len(tta.trainable_weights) == len(model.trainable_weights)
    assert not any(isinstance(layer, keras.Model) for layer in tta.layers)
    # a saved TTA model gives back its plain half (what tta_cifar.py scores it against)
    from edgecv.models.tta import plain_and_flip

    half, same = plain_and_flip(tta)
    assert same is tta
    np.testing.assert_allclose(np.asarray(half(x)), plain, rtol=1e-5, atol=1e-6)
    mirror_macs = 32 * 3 * 32 * 32  # a 32x32 permutation applied to each of 32 rows x 3 channels
    assert count_macs(tta) == 2 * count_macs(model) + mirror_macs
    # it saves and loads in safe mode, with edgecv's own loader of foreign files too
    path = tmp_path / "tta.keras"
    tta.save(path)
    again = load_keras_model(path)
    np.testing.assert_allclose(np.asarray(again(x)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.tf
def test_dirac_initialisation_starts_each_block_conv_as_the_identity():
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    from edgecv.models import create_model

    model = create_model("airnet", (32, 32, 3), 10)  # the default
    plain = create_model("airnet", (32, 32, 3), 10, dirac=False)  # Keras' initialisation
    for name, channels in (("block1_conv1", 24), ("block1_conv2", 64), ("block2_conv1", 64),
                           ("block3_conv2", 256)):
        conv = model.get_layer(name)
        x = np.random.default_rng(0).normal(size=(2, 8, 8, channels)).astype(np.float32)
        out = np.asarray(conv(x))
        np.testing.assert_allclose(out[..., :channels], x, atol=1e-6)  # passed through
        if out.shape[-1] > channels:  # the other filters keep Keras' random start
            assert np.abs(out[..., channels:]).mean() > 0.01
    kernel = plain.get_layer("block1_conv2").get_weights()[0]
    assert np.abs(kernel[1, 1, 0, 0] - 1.0) > 0.01  # without the option: Keras' default
    assert isinstance(model.get_layer("block1_conv2"), keras.layers.Conv2D)


@pytest.mark.tf
@pytest.mark.slow
def test_train_with_flip_tta_saves_and_converts_the_averaging_model(tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "--data", str(CIFAR_MINI), "--model", "airnet", "--epochs", "1",
                     "--batch-size", "64", "--tta", "flip", "--no-tensorboard", "--out", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())["train"]
    assert config["tta"] == "flip"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["macs"] == 2 * 118_147_360 + 32 * 3 * 32 * 32
    # one epoch on 420 photos: a barely trained model, so no accuracy budget here
    result = run_cli("convert", str(run), "--int8", "--onnx", "--max-drop", "100")
    assert result.returncode == 0, result.stderr[-3000:]
    # one copy of the weights: 1.97 M int8 parameters, not twice that
    size = (run / "export" / "model_int8.tflite").stat().st_size
    assert size < 1.25 * metrics["params"], size
    assert (run / "export" / "model_int8.onnx").stat().st_size < 1.25 * metrics["params"]
    conversion = json.loads((run / "export" / "conversion.json").read_text())
    rows = {row["format"]: row for row in conversion["artifacts"]}
    assert set(rows) >= {"int8", "onnx_int8"}
    # verified against the averaging Keras model on the test split (builtin ops only: it ran;
    # one epoch leaves scores too close for an agreement budget)
    assert rows["int8"]["agreement"] is not None and rows["onnx_int8"]["agreement"] is not None
    # each block's BatchNormalization after the pool folded into its conv, once for both calls
    assert conversion["folded"] == [f"block{b}_bn1 into block{b}_conv1 across block{b}_pool"
                                    for b in (1, 2, 3)]
    from edgecv.tflite_schema import operator_types

    ops = [name for name, _ in operator_types((run / "export" / "model_int8.tflite").read_bytes())]
    assert ops.count("CONV_2D") == 2 * 7 + 1  # stem + 6 convs, per call, and the mirror
    # no shape arithmetic (TFLite Micro has no REDUCE_PROD kernel)
    assert not {"SHAPE", "GATHER", "REDUCE_PROD", "PACK"} & set(ops), ops
    # no per-channel MUL and ADD of an unfolded BatchNormalization: only the average's add and
    # its halving (unfolded: 7 of each)
    assert (ops.count("MUL"), ops.count("ADD")) == (1, 1), ops
