"""Import TensorFlow once, quietly, and keep its converters' chatter out of the terminal.

TensorFlow's C++ runtime prints absl INFO lines ("oneDNN custom operations are on", "Could not
find cuda drivers") straight to file descriptor 2 while it loads, before it reads
TF_CPP_MIN_LOG_LEVEL, and the TFLite converter prints "Saved artifact at ..." to file descriptor
1. :func:`edgecv.io.captured_output` swallows both and replays them only if the import fails.
"""

from __future__ import annotations

import os
import sys

from edgecv.io import captured_output


def import_tensorflow():
    """Return the ``tensorflow`` module, importing it (and Keras) with start-up logs suppressed."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with captured_output():
        import tensorflow as tf
        import keras  # noqa: F401  (Keras 3 initialises its backend here)
    return tf
