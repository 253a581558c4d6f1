"""The one interface the converters use on a loaded model, whatever file it came from.

A run's ``model.keras`` and a user's ``.keras`` / ``.h5`` / ``.json`` load as Keras models; a
SavedModel loads as a :class:`~edgecv.modelfile.saved_model.SavedModelReference` (its serving
signature). Both offer the Keras-like ``name``, ``input_shape``, ``output_shape`` and
``predict``; what differs (its shapes checked for an image classifier, a fixed image shape, the
TFLite converter, the tf2onnx export, the frozen graph) is asked of :func:`reference_of`, so the
converters never switch on the model's type. TensorFlow is imported inside the methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from edgecv.errors import ModelFileError, first_line


class ModelReference(ABC):
    """What conversion asks of a loaded model. ``path`` names it in error messages."""

    path: Path | str
    input_shape: tuple  # (N, H, W, C) as Keras gives it, None where not fixed
    output_shape: tuple  # (N, classes)
    description = "keras model"  # how conversion.json names the reference model

    def image_shape(self) -> tuple[int | None, int | None, int | None]:
        """(H, W, C) of the model's one input, None where the model does not fix it."""
        shape = self.input_shape
        if len(shape) != 4:
            raise ModelFileError(f"'{self.path}' takes input of shape {tuple(shape)}; edgecv "
                                 "converts image classifiers with one (N, H, W, C) input.")
        return tuple(None if d is None else int(d) for d in shape[1:])

    def num_classes(self) -> int:
        """The number of scores of the model's one (N, classes) output (2 or more)."""
        shape = self.output_shape
        if len(shape) != 2 or shape[1] is None or shape[1] < 2:
            raise ModelFileError(f"'{self.path}' outputs shape {tuple(shape)}; edgecv converts "
                                 "image classifiers whose output is (N, classes) scores with 2 or "
                                 "more classes.")
        return int(shape[1])

    @abstractmethod
    def with_image_shape(self, shape: tuple[int, int, int]):
        """The model to convert, taking exactly ``shape`` (H, W, C) images."""

    @abstractmethod
    def concrete_function(self, batch: int | None = None):
        """The model as a TensorFlow concrete function over float32 NHWC input with batch
        ``batch`` (None = dynamic)."""

    def frozen_function(self, static_batch: bool = False):
        """:meth:`concrete_function` with its variables frozen into constants, made once per
        batch kind and input shape and then reused by every TFLite conversion of this
        reference (``static_batch`` fixes the batch to 1)."""
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2)

        from edgecv.io import captured_output

        key = (static_batch, tuple(self.input_shape))
        frozen = self.__dict__.setdefault("_frozen", {})
        if key not in frozen:
            with captured_output(replay_on_error=False):
                frozen[key] = convert_variables_to_constants_v2(
                    self.concrete_function(1 if static_batch else None))
        return frozen[key]

    def tflite_converter(self, static_batch: bool = False):
        """A ``tf.lite.TFLiteConverter`` over :meth:`frozen_function`.

        Not ``from_keras_model`` (nor ``from_concrete_functions`` with the model as trackable
        object): in TF 2.21 both save a temporary SavedModel and load it back for every
        conversion, which took 10 s of the 11 s each TFLite file of a 423k-parameter
        MobileNetV2 cost; the frozen graph converts in about 1 s to the same kernels (int8
        outputs identical). The file then has no SignatureDef;
        :func:`edgecv.converters.tflite.with_serving_signature` adds TF's ``serving_default``.
        TF logs that this path is "deprecated" (it prefers the SavedModel one); it is the
        graph-freezing converter TF 2.x has always had, and that warning is kept off stderr."""
        import logging

        from edgecv.tf_import import import_tensorflow

        tf = import_tensorflow()
        absl = logging.getLogger("absl")
        level = absl.level
        absl.setLevel(logging.ERROR)
        try:
            return tf.lite.TFLiteConverter.from_concrete_functions(
                [self.frozen_function(static_batch)])
        finally:
            absl.setLevel(level)

    @abstractmethod
    def tf2onnx_proto(self, input_signature: list, opset: int, output_name: str):
        """The ONNX ModelProto tf2onnx makes of the model, its output named ``output_name``."""


class KerasReference(ModelReference):
    """A Keras model (Functional, Sequential or subclassed) behind :class:`ModelReference`."""

    def __init__(self, model, path: str | Path | None = None):
        self.model = model
        self.name = model.name
        self.path = model.name if path is None else path

    def _graph_inputs(self):
        """The symbolic inputs of a Functional/Sequential model, None for a subclassed one."""
        try:
            return self.model.inputs
        except (AttributeError, ValueError):
            return None

    @property
    def input_shape(self) -> tuple:
        inputs = self._graph_inputs()
        if inputs is not None:
            if len(inputs) != 1:
                raise ModelFileError(f"'{self.path}' has {len(inputs)} inputs; edgecv converts "
                                     "image classifiers with one (N, H, W, C) input.")
            return tuple(inputs[0].shape)
        # a subclassed model: the shape it was built with, if any
        built = (self.model.get_build_config() or {}).get("input_shape")
        return tuple(built) if built else (None, None, None, None)

    @property
    def output_shape(self) -> tuple:
        if len(self.model.outputs) != 1:
            raise ModelFileError(f"'{self.path}' has {len(self.model.outputs)} outputs; edgecv "
                                 "converts image classifiers with one (N, classes) output.")
        return tuple(self.model.outputs[0].shape)

    def with_image_shape(self, shape: tuple[int, int, int]):
        """The model itself if its input is already ``shape``, else a Functional model around
        it with that input: a subclassed model, or one whose height/width are dynamic, then
        gives every converter the same fixed shape."""
        inputs = self._graph_inputs()
        if inputs is not None and tuple(inputs[0].shape[1:]) == tuple(shape):
            return self.model
        import keras

        wrapped_input = keras.Input(shape=shape, name="input")
        try:
            outputs = self.model(wrapped_input)
        except Exception as exc:  # the user's call(): any failure means the shape does not fit
            first = first_line(exc)
            raise ModelFileError(f"'{self.path}' cannot run on a {shape} input: "
                                 f"{type(exc).__name__}: {first}") from exc
        return keras.Model(wrapped_input, outputs, name=self.model.name)

    def concrete_function(self, batch: int | None = None):
        from edgecv.tf_import import import_tensorflow

        tf = import_tensorflow()
        spec = tf.TensorSpec((batch, *self.model.input_shape[1:]), tf.float32)
        return tf.function(self.model).get_concrete_function(spec)

    def tf2onnx_proto(self, input_signature: list, opset: int, output_name: str):
        import tf2onnx

        self.model.output_names = [output_name]
        proto, _ = tf2onnx.convert.from_keras(self.model, input_signature=input_signature,
                                              opset=opset)
        return proto


def reference_of(model, path: str | Path | None = None) -> ModelReference:
    """``model`` itself if it already is a ModelReference (a SavedModel's signature), else the
    Keras model behind the interface. ``path`` (default: the model's name) names it in errors."""
    return model if isinstance(model, ModelReference) else KerasReference(model, path)
