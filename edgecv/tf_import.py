"""Import TensorFlow once, quietly, and keep its converters' chatter out of the terminal.

TensorFlow's C++ runtime prints absl INFO lines ("oneDNN custom operations are on", "Could not
find cuda drivers") straight to file descriptor 2 while it loads, before it reads
TF_CPP_MIN_LOG_LEVEL, and the TFLite converter prints "Saved artifact at ..." to file descriptor
1. :func:`edgecv.io.captured_output` swallows both and replays them only if the import fails.

oneDNN: TensorFlow turns its oneDNN kernels on by default only on x86 CPUs with AVX-512 VNNI,
AVX-VNNI or AMX. On this project's AMD AVX2 machine they made a plain resnet8 ``model.fit`` on
CIFAR-10 1.46x faster (``benchmarks/results/train_throughput_cifar.json``). So edgecv asks for
them on every x86-64 machine, unless the user set ``TF_ENABLE_ONEDNN_OPTS`` (``=0`` restores
TensorFlow's choice).
"""

from __future__ import annotations

import os
import platform
import sys
from contextlib import contextmanager

from edgecv.io import captured_output


def tensorflow_environment(machine: str | None = None) -> dict[str, str]:
    """The environment defaults edgecv sets before importing TensorFlow on ``machine`` (default:
    this one, ``platform.machine()``); a variable the user already set is never overridden."""
    defaults = {"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    if (machine or platform.machine()).lower() in ("x86_64", "amd64"):
        defaults["TF_ENABLE_ONEDNN_OPTS"] = "1"
    return defaults


def import_tensorflow():
    """Return the ``tensorflow`` module, importing it (and Keras) with start-up logs suppressed."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    for name, value in tensorflow_environment().items():
        os.environ.setdefault(name, value)
    with captured_output():
        import tensorflow as tf
        import keras  # noqa: F401  (Keras 3 initialises its backend here)
    return tf


def set_op_determinism(tf, on: bool) -> None:
    """TensorFlow's op determinism (same seed -> same losses on CPU; costs some speed, the manual)
    is process-wide and has no public switch back: a --no-deterministic run after a
    deterministic one in the same process (the Python API, a notebook) would otherwise stay
    deterministic, and Keras would then refuse --xla on without saying so."""
    if on:
        tf.config.experimental.enable_op_determinism()
        return
    try:
        from tensorflow.python.framework.config import disable_op_determinism
    except ImportError:  # a TensorFlow without it: the setting stays what the process had
        return
    disable_op_determinism()


@contextmanager
def deterministic_ops():
    """Op determinism inside the block, then the process's own setting back (a library call
    must not change it for the caller)."""
    tf = import_tensorflow()
    try:
        from tensorflow.python.framework.config import is_op_determinism_enabled
        was = is_op_determinism_enabled()
    except ImportError:  # cannot tell: leave it on afterwards rather than guess
        was = True
    set_op_determinism(tf, True)
    try:
        yield
    finally:
        if not was:
            set_op_determinism(tf, False)
