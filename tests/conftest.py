"""Shared test helpers: run the real CLI in a child process."""

import os
import subprocess
import sys

import pytest


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
