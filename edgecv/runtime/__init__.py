"""Runtime backends: one small interface (:class:`~edgecv.runtime.base.Backend`), one module per
runtime, and :func:`~edgecv.runtime.backends.open_backend`, which picks the backend from the
file type (:mod:`edgecv.runtime.backends`). numpy-only: no TensorFlow, except the Keras
reference backend when a Keras model is opened."""

from edgecv.runtime.backends import (Backend, TARGETS, cpu_flags, open_backend, read_card,
                                     read_onnx_card, usable_cores)

__all__ = ["Backend", "TARGETS", "cpu_flags", "open_backend", "read_card", "read_onnx_card",
           "usable_cores"]
