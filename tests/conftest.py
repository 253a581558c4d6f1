"""Shared test helpers: run the real CLI in a child process; a trained tiny run; a model built to
quantize badly."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sshd import sshd  # noqa: F401  (the fixture: a real OpenSSH server on 127.0.0.1)


# The research scripts are not installed: they run from a checkout as
# `python benchmarks/experiments/NAME.py`, with their folder first on sys.path.
EXPERIMENTS = Path(__file__).resolve().parent.parent / "benchmarks" / "experiments"


def import_experiment(name: str):
    """benchmarks/experiments/NAME.py as the module NAME, its folder on sys.path as when the
    script runs (it imports its neighbour ``_common``); appended, so no script can shadow an
    installed module."""
    import importlib

    if str(EXPERIMENTS) not in sys.path:
        sys.path.append(str(EXPERIMENTS))
    return importlib.import_module(name)


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run `python -m edgecv ARGS` (the console script's code path) and capture its output."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgecv", *map(str, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A small trained run (seed_cnn, 16x16x1 digits, 4 epochs) converted to fp32, fp16, int8,
    ONNX and ONNX int8 in RUN/export, shared by the bench, predict and pipeline tests."""
    from edgecv.converters.convert import convert_run
    from edgecv.training import TrainConfig, train

    run = tmp_path_factory.mktemp("tiny") / "run"
    train(TrainConfig(model="seed_cnn", img_size=16, epochs=4, tensorboard=False, out=str(run)),
          log=lambda _: None)
    convert_run(run, ["fp16", "int8", "onnx", "onnx_int8"], calib_samples=100, max_drop=100,
                log=lambda _: None)
    return run


# --- a model built to quantize badly (tests/test_quant_real.py, tests/test_qat.py) -----------------

def _small_cnn_run(name: str, *, gain_outlier: bool = False, after_training=None):
    """conv1 -> (with ``gain_outlier``: a fixed 1x1 depthwise gain, channel 0 x300) -> conv2 ->
    global pooling -> softmax head, trained 5 epochs on the CIFAR fixture, then edited by
    ``after_training(model)``. Returned as a RunData whose verification data has no labels:
    --max-drop then judges agreement, the figure that moves most."""
    import keras

    from edgecv.converters.rundata import RunData
    from edgecv.data import load_dataset
    from edgecv.preprocessing import Preprocessing

    pre = Preprocessing(32, 32, 3)
    data = load_dataset(str(Path(__file__).parent / "data" / "cifar10_mini"), 32, 32, 3, seed=0)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv1")(inputs)
    if gain_outlier:
        h = keras.layers.DepthwiseConv2D(1, use_bias=False, trainable=False, name="outlier")(h)
    h = keras.layers.Conv2D(32, 3, strides=2, activation="relu", name="conv2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(h))
    if gain_outlier:
        gain = np.ones((1, 1, 16, 1), np.float32)
        gain[0, 0, 0, 0] = 300.0
        model.get_layer("outlier").set_weights([gain])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    train_x = pre.normalize(data.train.x)
    model.fit(train_x, data.train.y, epochs=5, batch_size=32, verbose=0)
    if after_training is not None:
        after_training(model)
    check_x = pre.normalize(np.concatenate([data.val.x, data.test.x]))
    return RunData(Path(name), model, list(data.labels), pre, train_x[:200],
                   check_x, None, val_x=train_x[200:], train=data.train)


@pytest.fixture(scope="module")
def outlier_run():
    """A small CNN with one activation whose channel 0 is 300x the others (a fixed 1x1
    depthwise gain): int8 quantizes activations per tensor, so channels 1..15 fall under one
    step and read as 0."""
    return _small_cnn_run("outlier-model", gain_outlier=True)


@pytest.fixture(scope="module")
def weight_outlier_run():
    """A small CNN given, after training, one 300.0 weight per output channel of conv2, on an
    input channel that conv1 no longer feeds (its kernel and bias 0, so ReLU gives exactly 0):
    the float model computes the same, but int8 weights are per channel, so every other weight
    of conv2 rounds to 0. 16-bit activations keep int8 weights and cannot help; only float for
    conv2 can."""
    def plant_weight_outlier(model):
        kernel, bias = model.get_layer("conv1").get_weights()
        kernel[..., 0], bias[0] = 0.0, 0.0
        model.get_layer("conv1").set_weights([kernel, bias])
        kernel, bias = model.get_layer("conv2").get_weights()
        kernel[1, 1, 0, :] = 300.0
        model.get_layer("conv2").set_weights([kernel, bias])

    return _small_cnn_run("weight-outlier-model", after_training=plant_weight_outlier)
