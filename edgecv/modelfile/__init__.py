"""Model files users and runs hand us, below both training and the runtime.

- :mod:`~edgecv.modelfile.kinds`: what kind of file a path is (suffixes, SavedModel directories,
  the format name, the runtime that opens it), from headers only; no TensorFlow.
- :mod:`~edgecv.modelfile.keras_file`: loading ``.keras``, ``.h5`` (Keras 2 too) and ``.json`` +
  weights safely, custom objects.
- :mod:`~edgecv.modelfile.saved_model`: a SavedModel directory by its serving signature.
- :mod:`~edgecv.modelfile.saved_model_ops`: the ops a SavedModel's graph may hold, checked in
  ``saved_model.pb`` before TensorFlow loads (and runs) any of it.
- :mod:`~edgecv.modelfile.reference`: the one interface the converters use on a loaded model.
"""
