"""Import TensorFlow once, quietly (training and conversion side only).

TensorFlow's C++ runtime prints absl INFO lines ("oneDNN custom operations are on", "Could not
find cuda drivers") straight to file descriptor 2 while it loads, before it reads
TF_CPP_MIN_LOG_LEVEL. They are noise in a CLI, so stderr is captured during the import and
replayed only if the import fails.
"""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow():
    """Return the ``tensorflow`` module, importing it with its start-up log lines suppressed."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            import keras  # noqa: F401  (Keras 3 initialises its backend here)
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf
