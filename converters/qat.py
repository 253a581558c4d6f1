"""Quantization-aware fine-tuning (QAT) of a Keras 3 model with the TensorFlow Model
Optimization Toolkit, and its conversion to a full-int8 TFLite model with the learned ranges.

Keras 3 has no QAT for conv layers; ``tensorflow-model-optimization`` (tfmot) has, on Keras 2
(the ``tf_keras`` package). :func:`to_tf_keras` rebuilds a Keras 3 functional or Sequential
model layer by layer in ``tf_keras`` (nested models flattened, weights copied, outputs checked
equal), tfmot's ``quantize_model`` inserts fake-quantization where TFLite's int8 kernels quantize
(its default 8-bit scheme is the converter's: per-channel conv weights, per-tensor activations
after conv+BN+ReLU and adds; :func:`quantize_model` adds ``Rescaling``, which the scheme
refuses), :func:`fine_tune` trains it briefly at a low learning rate, and
:func:`to_tflite_int8_qat` converts it, the ranges coming from the fake-quant nodes.
"""

from __future__ import annotations

import inspect
import os
import time
import warnings

import numpy as np

from edgecv.errors import QatError, UsageError

QAT_EXTRA = "pip install 'edgecv[qat]'  (tensorflow-model-optimization and tf-keras)"


def import_tfmot():
    """(tf_keras, tfmot), or a one-line error naming the extra to install. tfmot sets
    ``TF_USE_LEGACY_KERAS=1`` in the environment on import; it is restored, so the rest of the
    process keeps Keras 3."""
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import tf_keras
        import tensorflow_model_optimization as tfmot
    except ImportError as exc:
        raise UsageError(f"quantization-aware training needs {QAT_EXTRA}: {exc}") from exc
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    return tf_keras, tfmot


def _legacy_object(value):
    """A Keras 3 serialized object ({module, class_name, config, registered_name}) as Keras 2
    reads it ({class_name, config}); other values unchanged."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        config = value["config"]
        if isinstance(config, dict):
            config = {k: _legacy_object(v) for k, v in config.items()}
        return {"class_name": value["class_name"], "config": config}
    return value


# Keras 3 layer options that tf_keras lacks, dropped only at these (default) values.
_DROPPABLE = {"quantization_config": (None,), "lora_rank": (None,), "lora_alpha": (None,),
              "optional": (False,), "rms_scaling": (False,)}
# Keras 3 options that tf_keras names otherwise: {layer class: {Keras 3 name: tf_keras name}}.
_RENAMED = {"LeakyReLU": {"negative_slope": "alpha"}}


def _tf_keras_layer(tf_keras, layer):
    name = type(layer).__name__
    cls = getattr(tf_keras.layers, name, None)
    if cls is None:
        raise QatError(f"layer '{layer.name}' ({name}) has no tf_keras equivalent; "
                       "quantization-aware training needs standard Keras layers.")
    config = dict(layer.get_config())
    for keras3_name, tf_keras_name in _RENAMED.get(name, {}).items():
        if keras3_name in config:
            config[tf_keras_name] = config.pop(keras3_name)
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = config["dtype"].get("config", {}).get("name", "float32")
    accepted = set(inspect.signature(cls.__init__).parameters) | {"name", "dtype", "trainable"}
    has_kwargs = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    for key in list(config):
        if key in _DROPPABLE and config[key] in _DROPPABLE[key]:
            del config[key]
        elif key not in accepted and not has_kwargs:
            raise QatError(f"layer '{layer.name}' ({name}) uses option '{key}'={config[key]!r} "
                           "that tf_keras does not have; quantization-aware training cannot "
                           "rebuild it.")
    # Initializers are moot (the weights are copied) and Keras 3 adds options to theirs.
    config = {k: _legacy_object(v) for k, v in config.items() if not k.endswith("_initializer")}
    try:
        return cls.from_config(config)
    except (TypeError, ValueError) as exc:
        raise QatError(f"layer '{layer.name}' ({name}) cannot be rebuilt in tf_keras: "
                       f"{str(exc).splitlines()[0][:200]}") from exc


def as_functional(model):
    """``model`` as a Keras 3 functional graph: itself if functional, the same layers as one if
    it is a built ``Sequential`` (what tf.keras 2 users saved most); None for anything else (a
    subclassed model, a SavedModel signature), whose layers cannot be walked."""
    import keras

    if not isinstance(model, keras.Model):
        return None
    if hasattr(model, "_run_through_graph"):
        return model
    if isinstance(model, keras.Sequential):
        try:
            return keras.Model(model.inputs, model.outputs, name=model.name)
        except (AttributeError, ValueError):  # never built with an input shape
            return None
    return None


def _split_rescaling(tf_keras, layer):
    """``Rescaling(scale, offset)`` as two layers, the multiply then the add, so that each of
    the two ops the converter makes of it gets its own fake-quantized output; one range after
    both would leave the multiply in float."""
    scale = tf_keras.layers.Rescaling(layer.scale, name=layer.name)
    offset = tf_keras.layers.Rescaling(1.0, offset=layer.offset, name=f"{layer.name}__offset")
    return lambda inputs, *args, **kwargs: offset(scale(inputs))


def to_tf_keras(model, check: np.ndarray | None = None):
    """The Keras 3 functional (or Sequential) ``model`` rebuilt in tf_keras (Keras 2) with the
    same weights; nested models are flattened into one graph (tfmot quantizes flat models only).
    With ``check`` (a few input images) the two models' outputs must agree to 1e-4."""
    import keras

    tf_keras, _tfmot = import_tfmot()
    graph = as_functional(model)
    if graph is None:
        raise QatError(f"'{getattr(model, 'name', model)}' is not a Keras functional or "
                       "Sequential model; quantization-aware training rebuilds those only.")
    copied: list[tuple] = []
    rebuilt_layers: dict[int, object] = {}  # a layer called twice (flip TTA) stays one layer

    def operation_fn(operation):
        if id(operation) in rebuilt_layers:
            return rebuilt_layers[id(operation)]
        if isinstance(operation, keras.Model):
            inner = as_functional(operation)
            if inner is None:
                raise QatError(f"nested model '{operation.name}' is not functional or Sequential.")

            def nested(*args, **kwargs):
                inputs = args[0] if len(args) == 1 else list(args)
                return inner._run_through_graph(inputs, operation_fn=operation_fn)
            return nested
        if type(operation).__name__ == "Rescaling" and operation.offset:
            rebuilt = _split_rescaling(tf_keras, operation)
        else:
            rebuilt = _tf_keras_layer(tf_keras, operation)
            copied.append((operation, rebuilt))
        rebuilt_layers[id(operation)] = rebuilt
        return rebuilt

    inputs = [tf_keras.Input(shape=tuple(t.shape[1:]), name=t.name.split(":")[0] or None,
                             dtype=str(t.dtype)) for t in graph.inputs]
    outputs = graph._run_through_graph(inputs if len(inputs) > 1 else inputs[0],
                                       operation_fn=operation_fn)
    rebuilt = tf_keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
    for source, target in copied:
        weights = source.get_weights()
        if weights:
            target.set_weights(weights)
    if check is not None:
        with warnings.catch_warnings():  # Keras 3 on a Keras 2 file: "structure of inputs"
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            reference = np.asarray(model(check, training=False))
        diff = float(np.abs(reference - rebuilt(check, training=False).numpy()).max())
        if diff > 1e-4:
            raise QatError(f"the tf_keras copy of '{model.name}' differs from it by {diff:.2g} "
                           "(more than 1e-4): a layer was not rebuilt faithfully.")
    return rebuilt


class _Unquantized:
    """A weight "quantizer" that passes the weight through unchanged (see
    :func:`leave_depthwise_weights_to_converter`)."""

    def __call__(self, inputs, training, weights=None, **kwargs):
        return inputs


def leave_depthwise_weights_to_converter(qat_model) -> int:
    """Drop the fake quantization of every depthwise kernel; returns how many.

    tfmot quantizes a depthwise kernel (kh, kw, channels, multiplier) "per axis" along its last
    axis, the multiplier (1): one range for all channels, while TFLite's converter quantizes
    depthwise weights per channel, after folding BatchNorm into them. Measured on a depthwise
    layer whose channel gains are 300 and 1: tfmot's range rounds every gain of 1 to 0, and the
    QAT model agreed with the float model on 34% of images where plain int8 did on 71%. Without
    a fake-quant node on the kernel, the converter quantizes the folded kernel per channel
    itself, as in post-training quantization; the layer's output is still fake-quantized where
    tfmot's transforms put it (after BatchNorm and ReLU). Uses tfmot's ``_weight_vars`` (pinned:
    tensorflow-model-optimization 0.8).
    """
    tf_keras, _tfmot = import_tfmot()
    changed = 0
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", None)
        if isinstance(inner, tf_keras.layers.DepthwiseConv2D) and getattr(layer, "_weight_vars", None):
            layer._weight_vars = [(weight, _Unquantized(), variables)
                                  for weight, _quantizer, variables in layer._weight_vars]
            changed += 1
    return changed


_PREPROCESSING_LAYERS = ("Rescaling",)


def _output_quantized_config(tfmot):
    """A tfmot QuantizeConfig for the ``Rescaling`` layers models trained elsewhere carry (to
    take 0..255 pixels), which tfmot's scheme refuses: no weights to fake-quantize, and the
    output fake-quantized like any activation, as the converter quantizes the MUL it becomes
    (an offset is a layer of its own, :func:`_split_rescaling`). ``Normalization`` is not
    covered: its per-channel SUB and DIV came out of the converter in float."""
    qk = tfmot.quantization.keras

    class OutputQuantized(qk.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [qk.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False,
                                                         symmetric=False, narrow_range=False)]

        def get_config(self):
            return {}

    return OutputQuantized


def _unsupported_layer_message(model_name: str, exc: Exception) -> str:
    """tfmot's "Layer x:<class '...Swish'> is not supported. You can quantize this layer by
    passing a QuantizeConfig..." as something a CLI user can act on."""
    import re

    text = str(exc).splitlines()[0]
    found = re.search(r"Layer (\S+?):<class '(?:[\w.]*\.)?(\w+)'> is not supported", text)
    if found:
        return (f"layer '{found.group(1)}' ({found.group(2)}) of '{model_name}' has no "
                "quantization-aware version in tfmot; leave out `qat` (post-training `formats=['int8']`, "
                "and `recover` for what it loses, still apply).")
    return f"tfmot cannot quantize '{model_name}': {text[:240]}"


def quantize_model(model, check: np.ndarray | None = None):
    """``model`` (Keras 3) rebuilt in tf_keras and wrapped by tfmot's default 8-bit QAT scheme,
    depthwise kernels left to the converter (:func:`leave_depthwise_weights_to_converter`),
    preprocessing layers with their output quantized (:func:`_output_quantized_config`)."""
    tf_keras, tfmot = import_tfmot()
    qk = tfmot.quantization.keras
    # tf_keras numbers unnamed layers per process ("quantize_layer", "quantize_layer_1"), and
    # with a uint8 input the QAT file keeps that name on the input QUANTIZE's output tensor: the
    # counters start afresh so the file does not depend on what the process built before
    tf_keras.backend.reset_uids()
    flat = to_tf_keras(model, check)
    config = _output_quantized_config(tfmot)

    def annotate(layer):  # wraps the layer itself: its weights stay
        if type(layer).__name__ in _PREPROCESSING_LAYERS:
            return qk.quantize_annotate_layer(layer, quantize_config=config())
        return layer

    try:
        annotated = tf_keras.models.clone_model(flat, clone_function=annotate)
        with qk.quantize_scope({"OutputQuantized": config}):
            quantized = qk.quantize_apply(qk.quantize_annotate_model(annotated))
        leave_depthwise_weights_to_converter(quantized)
        return quantized
    except (ValueError, RuntimeError, TypeError) as exc:
        raise QatError(_unsupported_layer_message(model.name, exc)) from exc


def init_ranges(qat_model, float_model, x: np.ndarray) -> int:
    """Set every activation range of the fake-quantized model to the min/max its float twin
    reaches on ``x`` (the calibration images), as post-training calibration would; returns how
    many ranges were set.

    tfmot starts each activation range at [-6, 6] and moves it by an exponential average with
    decay 0.999 per training step, so a short fine-tuning would otherwise end with ranges still
    near their start: measured on a tensor reaching 300, the QAT model then agreed with the
    float model less than plain int8 did.
    """
    tf_keras, _tfmot = import_tfmot()
    outputs, targets = [], []
    for layer in qat_model.layers:
        variables = {v.name.split("/")[-1].split(":")[0]: v for v in layer.non_trainable_weights}
        if type(layer).__name__ == "QuantizeLayer":
            pairs = [(k, k.replace("_min", "_max")) for k in variables if k.endswith("_min")]
            if pairs:
                targets.append((None, variables[pairs[0][0]], variables[pairs[0][1]]))
            continue
        pair = next(((variables[k], variables[k[:-4] + "_max"]) for k in variables
                     if k.endswith(("output_min", "post_activation_min"))
                     and k[:-4] + "_max" in variables), None)
        if pair is None or not layer.name.startswith("quant_"):
            continue
        try:
            source = float_model.get_layer(layer.name[len("quant_"):])
        except ValueError:
            continue
        outputs.append(source.output)
        targets.append((len(outputs) - 1, *pair))
    probe = tf_keras.Model(float_model.inputs, outputs) if outputs else None
    lows = [np.inf] * len(outputs)
    highs = [-np.inf] * len(outputs)
    for start in range(0, len(x), 64):
        batch = x[start:start + 64]
        values = probe(batch, training=False) if probe is not None else []
        values = values if isinstance(values, (list, tuple)) else [values]
        for i, value in enumerate(values):
            value = np.asarray(value)
            lows[i], highs[i] = min(lows[i], float(value.min())), max(highs[i], float(value.max()))
    for index, low_var, high_var in targets:
        low, high = ((float(x.min()), float(x.max())) if index is None
                     else (lows[index], highs[index]))
        low_var.assign(np.full(low_var.shape, min(0.0, low), np.float32))
        high_var.assign(np.full(high_var.shape, max(0.0, high, low + 1e-6), np.float32))
    return len(targets)


def fine_tune(qat_model, train_ds, *, epochs: int, steps_per_epoch: int, lr: float,
              val_ds=None, distill: bool = False, log=print) -> list[dict]:
    """Train the fake-quantized model for ``epochs`` at ``lr`` (cosine-decayed per step to 0):
    the float weights adapt to the int8 grid and the activation ranges settle. Returns one
    record per epoch: loss, accuracy (``agreement`` when ``distill``: the targets are the float
    model's scores), the same on ``val_ds`` when given, seconds."""
    tf_keras, _tfmot = import_tfmot()
    schedule = tf_keras.optimizers.schedules.CosineDecay(lr, max(1, epochs * steps_per_epoch))
    qat_model.compile(optimizer=tf_keras.optimizers.Adam(schedule),
                      loss="categorical_crossentropy" if distill else "sparse_categorical_crossentropy",
                      metrics=["categorical_accuracy" if distill else "accuracy"])
    history: list[dict] = []
    name = "agreement" if distill else "accuracy"

    class Progress(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k.replace("categorical_accuracy", "accuracy"): v for k, v in (logs or {}).items()}
            record = {"epoch": epoch + 1, "loss": round(float(logs["loss"]), 5),
                      name: round(float(logs["accuracy"]), 5),
                      "seconds": round(time.perf_counter() - self.start, 1)}
            if "val_accuracy" in logs:
                record[f"val_{name}"] = round(float(logs["val_accuracy"]), 5)
            history.append(record)
            val = (f"  val_{name} {record[f'val_{name}']:.4f}" if f"val_{name}" in record
                   else "")
            log(f"qat epoch {epoch + 1}/{epochs}  loss {record['loss']:.4f}  {name} "
                f"{record[name]:.4f}{val}  {record['seconds']:.0f}s")

    qat_model.fit(train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
                  validation_data=val_ds, callbacks=[Progress()], verbose=0)
    return history


def to_tflite_int8_qat(qat_model, io: str = "int8") -> bytes:
    """Full-integer TFLite from a fake-quantized model: every range comes from its fake-quant
    nodes, so no calibration data is given (the converter would otherwise re-calibrate)."""
    from edgecv.converters.tflite import INT8_IO_TYPES, _convert

    if io not in INT8_IO_TYPES:
        raise UsageError(f"`io` must be one of {', '.join(INT8_IO_TYPES)}, received '{io}'.")

    def configure(tf, converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Not supported_ops=TFLITE_BUILTINS_INT8: in TF 2.21 that demands a representative
        # dataset before the converter looks for fake-quant ops (its metrics hook validates with
        # no graph). The result is checked integer-only by the caller instead.
        if io != "float32":
            converter.inference_input_type = {"int8": tf.int8, "uint8": tf.uint8}[io]
            converter.inference_output_type = {"int8": tf.int8, "uint8": tf.uint8}[io]

    return _convert(qat_model, configure)  # the converter's error handling, one copy


QAT_EPOCHS = 2
QAT_LR = 1e-4
QAT_BATCH = 64


def freeze_batchnorm(qat_model) -> int:
    """Put every BatchNormalization of the fake-quantized model in inference mode (its moving
    statistics fixed): the converter folds BN with those statistics, so QAT must train against
    them (Krishnamoorthi 2018, "freeze BN statistics"); returns how many were frozen."""
    tf_keras, _tfmot = import_tfmot()
    frozen = 0
    for layer in qat_model.layers:
        if isinstance(getattr(layer, "layer", layer), tf_keras.layers.BatchNormalization):
            layer.trainable = False
            frozen += 1
    return frozen


def check_settings(epochs: int | None, lr: float | None) -> None:
    """Refuse ``--qat-epochs`` under 1 and a ``--qat-lr`` that is not positive (None: the
    default, fine); ``edgecv convert`` checks before minutes of loading."""
    if epochs is not None and epochs < 1:
        raise UsageError(f"`qat_epochs` must be at least 1, received {epochs}.")
    if lr is not None and not lr > 0:
        raise UsageError(f"`qat_lr` must be positive, received {lr}.")


def build_qat_int8(run, *, io: str = "int8", epochs: int = QAT_EPOCHS, lr: float = QAT_LR,
                   batch_size: int = QAT_BATCH, log=print) -> tuple[bytes, dict]:
    """Quantization-aware fine-tuning of ``run.model`` on ``run.train`` (the training split),
    then full-int8 TFLite; returns (file bytes, record for conversion.json).

    The fake-quantized copy learns from the float model's own scores on the same augmented
    batches (distillation, not the labels): the goal is an int8 model that agrees with the float
    one, and the labels would instead keep training it (on an underfit model, agreement with
    the float model fell to 89% while accuracy rose). BatchNorm statistics are frozen.
    """
    from edgecv.converters.verify import check_data_scores
    from edgecv.tf_import import deterministic_ops, import_tensorflow
    from edgecv.training.recipe import make_tf_dataset

    check_settings(epochs, lr)
    if run.train is None or len(run.train) == 0:
        raise UsageError("quantization-aware training needs the training images: convert a run "
                         "directory, or give a model file `data` with a train split.")
    if as_functional(run.model) is None:
        raise QatError("quantization-aware training needs a Keras functional or Sequential "
                       "model; a SavedModel signature or a subclassed model cannot be "
                       "fine-tuned (convert the Keras model, or leave out `qat`).")
    start = time.perf_counter()
    qat_model = quantize_model(run.model, check=run.calibration[:8])
    teacher = to_tf_keras(run.model)
    frozen = freeze_batchnorm(qat_model)
    ranges = init_ranges(qat_model, teacher, run.calibration)
    augmenter, augmentation = None, "none"
    if run.train_config:  # a run: augment as its training did
        from edgecv.training.config import TrainConfig
        from edgecv.training.recipe import build_augmenter

        config = TrainConfig.from_dict(run.train_config)
        augmenter = build_augmenter(config)
        augmentation = config.augment + ("+flip" if config.flip and augmenter else "")
    dataset = make_tf_dataset(run.train, run.preprocessing, batch_size, training=True,
                              augmenter=augmenter, seed=0)
    dataset = dataset.map(lambda x, _y: (x, teacher(x, training=False))).repeat()
    steps = max(1, len(run.train) // batch_size)
    # each epoch's agreement of the fake-quantized model with the float one, on the slice that
    # chooses settings (validation, never test): shows whether more epochs would still help
    check_x, _y, where, check_scores = check_data_scores(run)
    val_ds = import_tensorflow().data.Dataset.from_tensor_slices((check_x, check_scores)).batch(256)
    log(f"qat: {len(run.train)} training images, {epochs} epoch(s) of {steps} steps, lr {lr}, "
        f"distilling from the float model, {frozen} BatchNorm layers frozen, {ranges} "
        f"activation ranges calibrated; agreement checked on the {where}")
    # op determinism: the same QAT file from the same run whatever else the command converts
    # (without it, a verification running beside the fine-tuning changed its result)
    with deterministic_ops():
        history = fine_tune(qat_model, dataset, epochs=epochs, steps_per_epoch=steps, lr=lr,
                            val_ds=val_ds, distill=True, log=log)
    data = to_tflite_int8_qat(qat_model, io=io)
    record = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "steps": steps * epochs,
              "train_images": len(run.train), "target": "the float model's scores (distillation)",
              "augmentation": augmentation,
              "batchnorm": f"{frozen} layers frozen (inference statistics)",
              "ranges": f"{ranges} activation ranges started from calibration min/max "
                        f"({len(run.calibration)} images), then tfmot's moving average",
              "scheme": "tfmot default 8-bit (per-channel weights, per-tensor activations)",
              "history": history,
              "history_agreement": "top-1 agreement of the fake-quantized model with the float "
                                   f"model: on the augmented training batches, and (val_) on "
                                   f"the {where}", "seconds": round(time.perf_counter() - start, 1)}
    return data, record
