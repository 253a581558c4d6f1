"""A SavedModel directory opened by its serving signature, behind the converters' interface.

A SavedModel holds traced graphs, not Python code, but loading it runs parts of its graph
(resource initializers; a TF1 SavedModel's restore and init ops) and every signature call runs the
rest: :func:`~edgecv.modelfile.saved_model_ops.check_saved_model_ops` reads ``saved_model.pb``
first and refuses ops outside a classifier's allow-list (file, process or network access, Python)
before TensorFlow loads anything. It is not a Keras model either, so it is wrapped in
:class:`SavedModelReference`. TensorFlow is imported when one is opened.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgecv.errors import ModelFileError, first_line
from edgecv.modelfile.kinds import SAVED_MODEL_FILE, check_model_file
from edgecv.modelfile.reference import ModelReference
from edgecv.modelfile.saved_model_ops import check_saved_model_ops


class SavedModelReference(ModelReference):
    """The serving signature of a SavedModel directory, with the parts of the Keras model
    interface that conversion and verification use: ``name``, ``input_shape``,
    ``output_shape``, ``predict``, ``count_params``.

    Conversion goes through :meth:`concrete_function` (``TFLiteConverter.from_concrete_functions``,
    tf2onnx ``from_function``) rather than ``from_saved_model``: measured with TF 2.21, a
    ``tf.saved_model.save`` export of a Keras 3 model converts with ``from_saved_model`` to a
    model that keeps VAR_HANDLE / READ_VARIABLE ops, and int8 calibration of it fails;
    a concrete function over the same signature freezes the variables.
    """

    def __init__(self, path: str | Path, signature: str = "serving_default"):
        from edgecv.io import captured_output
        from edgecv.tf_import import import_tensorflow

        tf = import_tensorflow()
        self.path = check_model_file(path)
        self.name = self.path.resolve().name
        check_saved_model_ops(self.path)  # before tf.saved_model.load, which runs graph code
        try:
            with captured_output(replay_on_error=False):
                self.trackable = tf.saved_model.load(str(self.path))
        except Exception as exc:  # TF raises many kinds for a corrupt or foreign directory
            first = first_line(exc)
            raise ModelFileError(f"cannot load SavedModel '{self.path}': {first}") from exc
        signatures = dict(self.trackable.signatures)
        if signature not in signatures:
            if len(signatures) != 1:
                raise ModelFileError(
                    f"SavedModel '{self.path}' has no '{signature}' signature (it has: "
                    f"{', '.join(signatures) or 'none'}); re-export it with model.export().")
            signature = next(iter(signatures))
        self.signature_name = signature
        self._function = signatures[signature]
        args, kwargs = self._function.structured_input_signature
        outputs = self._function.structured_outputs
        if args or len(kwargs) != 1 or not isinstance(outputs, dict) or len(outputs) != 1:
            raise ModelFileError(
                f"SavedModel '{self.path}': signature '{signature}' has {len(args) + len(kwargs)} "
                f"input(s) and {len(outputs) if isinstance(outputs, dict) else '?'} output(s); "
                "edgecv converts image classifiers with one input and one output.")
        (self._input_name, spec), = kwargs.items()
        (self._output_name, out_spec), = outputs.items()
        shape = [None if d is None else int(d) for d in spec.shape]
        if spec.dtype != tf.float32 or len(shape) != 4:
            raise ModelFileError(
                f"SavedModel '{self.path}': input '{self._input_name}' is {spec.dtype.name} "
                f"{shape}; expected float32 (N, H, W, C).")
        if shape[0] is not None:
            raise ModelFileError(
                f"SavedModel '{self.path}': signature '{signature}' has a fixed batch of "
                f"{shape[0]} ({shape}); re-export it with model.export(path), which keeps the "
                "batch dimension dynamic.")
        self.input_shape = tuple(shape)
        self.output_shape = tuple(None if d is None else int(d) for d in out_spec.shape)

    @property
    def description(self) -> str:
        return f"SavedModel signature '{self.signature_name}'"

    def with_image_shape(self, shape: tuple[int, int, int]) -> "SavedModelReference":
        """Fix a dynamic height/width of the input to ``shape``'s (the channels stay the
        signature's; the signature itself stays polymorphic)."""
        self.input_shape = (None, shape[0], shape[1], self.input_shape[3])
        return self

    def call(self, x):
        """TensorFlow-level call of the serving signature: (N, H, W, C) -> scores tensor."""
        return self._function(**{self._input_name: x})[self._output_name]

    def concrete_function(self, batch: int | None = None):
        """The signature as a concrete function over float32 input named ``input`` with batch
        ``batch`` (None = dynamic)."""
        tf = sys.modules["tensorflow"]
        spec = tf.TensorSpec((batch, *self.input_shape[1:]), tf.float32, name="input")
        return tf.function(self.call, input_signature=[spec]).get_concrete_function()

    def tf2onnx_proto(self, input_signature: list, opset: int, output_name: str):
        import tf2onnx

        tf = sys.modules["tensorflow"]
        function = tf.function(lambda x: {output_name: self.call(x)})
        proto, _ = tf2onnx.convert.from_function(function, input_signature=input_signature,
                                                 opset=opset)
        return proto

    def predict(self, x: np.ndarray, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        """Scores for a float32 NHWC batch, in slices of ``batch_size`` (Keras-like)."""
        tf = sys.modules["tensorflow"]
        return np.concatenate([self.call(tf.constant(x[i:i + batch_size], tf.float32)).numpy()
                               for i in range(0, len(x), batch_size)])

    def count_params(self) -> int:
        """Number of values in the variables the signature reads."""
        return int(sum(np.prod(v.shape) for v in self._function.variables))

    def op_counts(self) -> dict[str, int]:
        """Compute op types of the signature with its variables frozen and its calls inlined
        (the SavedModel's equivalent of a layer list); plumbing ops are left out."""
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2)

        plumbing = {"Placeholder", "Const", "Identity", "NoOp"}
        counts: dict[str, int] = {}
        for op in convert_variables_to_constants_v2(self.concrete_function()).graph.get_operations():
            if op.type not in plumbing:
                counts[op.type] = counts.get(op.type, 0) + 1
        return counts


def load_saved_model(path: str | Path) -> SavedModelReference:
    """Open a SavedModel directory (``path`` or its ``saved_model.pb``) by its serving signature."""
    path = Path(path)
    if path.name == SAVED_MODEL_FILE and path.is_file():
        path = path.parent
    return SavedModelReference(path)
