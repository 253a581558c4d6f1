"""``edgecv info FILE``: the model card, inputs/outputs, operator counts and size of an artifact."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from edgecv.errors import ModelFileError


def describe(path: str | Path) -> str:
    """A human-readable description of a .tflite or .onnx artifact."""
    from edgecv.runtime import open_backend

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist.")
    data = path.read_bytes()
    lines = [f"file      {path}", f"size      {len(data):,} bytes ({len(data) / 1024:.1f} KiB)",
             f"sha256    {hashlib.sha256(data).hexdigest()}"]
    with open_backend(path) as backend:
        lines.append(f"runtime   {backend.name}")
        lines.extend(f"{kind:<9} {detail}" for kind, detail in backend.io_details())
        card = backend.card
    if path.suffix == ".tflite":
        from edgecv.tflite_schema import operator_types

        ops = Counter(name for name, _ in operator_types(data))
    else:
        try:
            import onnx
        except ImportError:  # the device side may have onnxruntime only
            onnx = None
        ops = Counter(node.op_type for node in onnx.load_from_string(data).graph.node) if onnx else None
    if ops is None:
        lines.append("operators (install onnx to list them)")
    else:
        lines.append("operators " + ", ".join(f"{n} x{c}" for n, c in sorted(ops.items())))
    if path.suffix == ".tflite":
        lines.extend(_standard_metadata_lines(data, card))
    if card is None:
        lines.append("card      none (not written by edgecv: preprocessing must be given by hand)")
    else:
        lines.append("card")
        lines.extend(f"  {key:<20} {json.dumps(value)}"
                     for key, value in sorted(json.loads(card.to_json()).items()))
    return "\n".join(lines)


def _standard_metadata_lines(data: bytes, card) -> list[str]:
    """The standard TFLite Metadata (what MediaPipe Tasks and the Task Library read), or why
    the file has none (the card says so when edgecv left it out)."""
    from edgecv.tflite_metadata import METADATA_NAME, read_tflite_metadata

    meta = read_tflite_metadata(data)
    if meta is None:
        why = (card.extra or {}).get("tflite_metadata") if card is not None else None
        return [f"metadata  {why or 'none (no ' + METADATA_NAME + ' entry)'}"]
    return [f"metadata  {METADATA_NAME}: {meta.summary()}",
            f"  {'name':<20} {meta.name}", f"  {'version':<20} {meta.version}",
            f"  {'author':<20} {meta.author}", f"  {'description':<20} {meta.description}",
            f"  {'labels':<20} {json.dumps(meta.labels[:20])}"
            + (f" and {len(meta.labels) - 20} more" if len(meta.labels) > 20 else "")]


# --- Keras models (training side: TensorFlow is imported only here) -------------------------------

FORMAT_NAMES = {"keras": "Keras archive (.keras)", "h5": "legacy Keras HDF5 (.h5)",
                "json": "JSON config + weights file", "savedmodel": "SavedModel directory"}


def _counts(names: list[str]) -> str:
    counts = Counter(names)
    return ", ".join(f"{name} x{count}" for name, count in sorted(counts.items()))


def _config_layers(config: dict) -> list[dict] | None:
    """Leaf layer entries of a Functional/Sequential config (nested models expanded); None for
    a subclassed model, whose layers exist only in its code."""
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list):
        return None
    leaves = []
    for layer in layers:
        nested = _config_layers(layer) if isinstance(layer, dict) else None
        leaves.extend(nested if nested is not None else [layer])
    return [layer for layer in leaves if layer.get("class_name") != "InputLayer"]


def _config_input_shape(config: dict) -> list | None:
    built = (config.get("build_config") or {}).get("input_shape")
    if built:
        return [None, *built[1:]]
    inner = config.get("config")
    for layer in (inner.get("layers") or []) if isinstance(inner, dict) else []:
        if layer.get("class_name") == "InputLayer":
            layer_config = layer.get("config", {})
            return layer_config.get("batch_shape") or layer_config.get("batch_input_shape")
    return None


def _output_shapes(model, in_shapes: list) -> str:
    try:
        return ", ".join(_shape(t.shape) for t in model.outputs)
    except (AttributeError, ValueError):  # a subclassed model: trace its call symbolically
        pass
    if not in_shapes:
        return "unknown (the model was never built)"
    import keras

    try:
        return _shape(model.compute_output_spec(keras.KerasTensor(in_shapes[0])).shape)
    except Exception as exc:  # the user's call(); report, do not fail the description
        return f"unknown ({type(exc).__name__}: {str(exc)[:80]})"


def _leaf_layers(model) -> list:
    leaves = []
    for layer in model.layers:
        nested = getattr(layer, "layers", None)
        leaves.extend(_leaf_layers(layer) if nested else [layer])
    return [layer for layer in leaves if type(layer).__name__ != "InputLayer"]


def _shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(int(d)) for d in shape) + ")"


def describe_keras(path: str | Path, weights: str | Path | None = None,
                   custom_objects: str | None = None) -> str:
    """Input/output shapes, parameter count, layers and Lambda layers of a Keras model file or
    a SavedModel. A model with a Lambda layer is described from its stored config and weights
    without being built (its code never runs); one that cannot be loaded (e.g. custom classes
    without --custom-objects) likewise, with the reason. A SavedModel whose graph has ops outside
    the classifier allow-list (files, processes, network, Python) is not loaded: those ops are
    listed with the function they sit in."""
    from edgecv.io import size_on_disk
    from edgecv.modelfile import keras_file
    from edgecv.modelfile.kinds import SAVED_MODEL_FILE, model_format
    from edgecv.modelfile.saved_model import load_saved_model
    from edgecv.modelfile.saved_model_ops import read_saved_model, refused_ops

    path = Path(path)
    if path.name == SAVED_MODEL_FILE:
        path = path.parent
    kind = model_format(path)
    size = size_on_disk(path)
    lines = [f"file        {path}", f"format      {FORMAT_NAMES[kind]}",
             f"size        {size:,} bytes ({size / 1024:.1f} KiB)"]
    if kind == "savedmodel":
        refused = refused_ops(read_saved_model(path))
        if refused:  # described from its protobuf: loading it would run its graph
            lines.append(f"loaded      no: {len(refused)} op(s) outside the ops an image "
                         "classifier needs (edgecv convert, bench and predict refuse it)")
            lines += [f"refused op  {op}" for op in refused]
            return "\n".join(lines)
        model = load_saved_model(path)
        ops = model.op_counts()
        top = sorted(ops.items(), key=lambda item: -item[1])[:8]
        lines += [f"signature   {model.signature_name}",
                  f"input       {_shape(model.input_shape)} float32",
                  f"output      {_shape(model.output_shape)}",
                  f"parameters  {model.count_params():,}",
                  f"layers      n/a: a SavedModel holds a traced graph, not layers; "
                  f"{sum(ops.values())} graph ops ({', '.join(f'{n} x{c}' for n, c in top)})",
                  "lambda      n/a: a SavedModel carries no Python code (a Lambda was traced "
                  "into graph ops when it was saved)"]
        return "\n".join(lines)

    if kind == "json" and weights is None:
        from edgecv.errors import UsageError

        raise UsageError(f"a JSON config holds no weights: pass `weights` FILE.weights.h5 with '{path}'.")
    config = keras_file.read_model_config(path)
    lambdas = keras_file.lambda_layer_names(config)
    custom = keras_file.custom_class_names(config)
    name = (config.get("config") or {}).get("name", "?")
    lines.append(f"class       {config['class_name']} '{name}'")
    model, reason = None, None
    if lambdas:
        reason = "it has a Lambda layer, whose code edgecv does not run"
    else:
        objects = keras_file.load_custom_objects(custom_objects) if custom_objects else None
        try:
            model = keras_file.load_keras_model(path, custom_objects=objects, weights=weights)
        except ModelFileError as exc:
            reason = str(exc)
    if model is not None:
        try:
            in_shapes = [tuple(t.shape) for t in model.inputs]
        except AttributeError:  # a subclassed model: the shape it was built with
            built = (model.get_build_config() or {}).get("input_shape")
            in_shapes = [(None, *built[1:])] if built else []
        leaves = _leaf_layers(model)
        lines += [f"input       {', '.join(_shape(s) for s in in_shapes) or 'unknown'}",
                  f"output      {_output_shapes(model, in_shapes)}",
                  f"parameters  {model.count_params():,}",
                  f"layers      {len(leaves)} ({_counts([type(l).__name__ for l in leaves])})"]
    else:
        in_shape = _config_input_shape(config)
        params = keras_file.weights_parameter_count(weights if kind == "json" else path)
        leaves = _config_layers(config)
        lines += [f"input       {_shape(in_shape) if in_shape else 'unknown'}",
                  f"output      unknown (not built: {reason})",
                  f"parameters  {'unknown' if params is None else f'{params:,}'} (stored weights)",
                  "layers      " + ("unknown (a subclassed model's layers exist only in its code)"
                                    if leaves is None else
                                    f"{len(leaves)} ({_counts([l['class_name'] for l in leaves])})")]
    if lambdas:
        lines.append(f"lambda      yes: {', '.join(repr(n) for n in lambdas)} (not run; edgecv "
                     "convert refuses it: replace each Lambda with a built-in or registered "
                     "custom layer)")
    else:
        lines.append("lambda      none")
    lines.append(f"custom      {', '.join(custom)} (load with `custom_objects` FILE.py)"
                 if custom else "custom      none")
    return "\n".join(lines)
