"""edgecv: train compact image classifiers, quantize them for edge devices, prove they still work.

The Python API mirrors the commands: :func:`train`, :func:`convert`, :func:`inspect`,
:func:`bench`, :func:`predict` and :func:`pipeline` (:mod:`edgecv.api`), returning the typed
results of :mod:`edgecv.results`; every error a user can fix is an :class:`EdgecvError`.

The package is split so that a device with only numpy, OpenCV and a runtime (ai-edge-litert or
onnxruntime) can import everything on the device side. Importing ``edgecv`` imports neither
TensorFlow nor a runtime: the functions import their implementation when called, and
TensorFlow loads only for the training side (train, convert, pipeline, inspect of a Keras model,
a Keras model in bench).
"""

from edgecv.errors import (AccuracyDropError, BackendUnavailable, ConversionError, DataError,
                           DatasetUnavailable, EdgecvError, ModelFileError, UsageError)

__version__ = "0.1.0"

# name -> the module that defines it, imported on first use (PEP 562)
_LAZY = {
    "train": "edgecv.api", "convert": "edgecv.api", "inspect": "edgecv.api",
    "bench": "edgecv.api", "predict": "edgecv.api", "pipeline": "edgecv.api",
    "Run": "edgecv.results", "Conversion": "edgecv.results", "ConversionRow": "edgecv.results",
    "McuExport": "edgecv.results", "Inspection": "edgecv.results",
    "DebuggerRow": "edgecv.results", "QuantizerRow": "edgecv.results",
    "BenchReport": "edgecv.results", "Recommendation": "edgecv.results",
    "PipelineResult": "edgecv.results",
    "BenchRow": "edgecv.benchmarks.row", "Prediction": "edgecv.classify",
    "ClassScore": "edgecv.classify",
}

__all__ = ["AccuracyDropError", "BackendUnavailable", "ConversionError", "DataError",
           "DatasetUnavailable", "EdgecvError", "ModelFileError", "UsageError", "__version__",
           *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'edgecv' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
