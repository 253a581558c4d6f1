"""Import TensorFlow once, quietly, and keep its converters' chatter out of the terminal.

TensorFlow's C++ runtime prints absl INFO lines ("oneDNN custom operations are on", "Could not
find cuda drivers") straight to file descriptor 2 while it loads, before it reads
TF_CPP_MIN_LOG_LEVEL, and the TFLite converter prints "Saved artifact at ..." to file descriptor
1. :func:`captured_output` swallows both at the descriptor level and replays them only if the
wrapped code fails, so a user sees them exactly when they help.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def captured_output():
    """Redirect file descriptors 1 and 2 to a temporary file; replay it on stderr on error."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as captured:
        for fd in (1, 2):
            os.dup2(captured.fileno(), fd)
        try:
            yield
        except BaseException:
            _restore(saved)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace")[-20000:])
            raise
        finally:
            _restore(saved)


def _restore(saved: dict[int, int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in list(saved.items()):
        os.dup2(copy, fd)
        os.close(copy)
        del saved[fd]


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
