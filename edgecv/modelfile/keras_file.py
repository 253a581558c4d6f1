"""Loading Keras models that a user hands us, safely and with errors that say what is wrong.

Three Keras forms are read here: a ``.keras`` archive, a legacy whole-model ``.h5`` and a JSON
config (``model.to_json()``) plus a weights file; :mod:`edgecv.modelfile.kinds` tells them apart
and checks the container, :mod:`edgecv.modelfile.saved_model` opens SavedModel directories.

Keras 3 runs a Lambda layer's code when loading with ``safe_mode=False``. So the stored config
is searched for Lambda layers before anything is deserialized, and ``safe_mode`` is always on.

Keras 3 reads most legacy ``.h5`` files written by tf.keras 2.x (``batch_input_shape``,
``Functional``/``Sequential``, optimizer state) itself, but rejects a few fields that Keras 2 wrote
with a neutral value (``groups: 1`` on depthwise/separable/transposed convolutions, ...).
:func:`upgrade_keras2_config` rewrites exactly those, only where the value is the neutral one, and
the rewritten config is loaded through Keras' own legacy ``.h5`` loader; anything else Keras 3
cannot read is reported by layer and field (:func:`_load_error`). TensorFlow is imported inside
the functions that build a model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import re
import shutil
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from edgecv.errors import ModelFileError, UsageError, first_line
from edgecv.modelfile.kinds import check_model_file, model_format

LAMBDA_ADVICE = ("edgecv loads with safe_mode, and a Lambda layer is Python code stored in the "
                 "file that loading would run. Replace each Lambda with a built-in layer or a "
                 "custom Layer subclass (get_config + register_keras_serializable, passed with "
                 "`custom_objects` FILE.py), re-save the model and convert that")


def read_model_config(path: str | Path) -> dict:
    """The architecture stored in a .keras, .h5 or .json model, as a dict, without building
    anything (no TensorFlow needed)."""
    path = check_model_file(path)
    kind = model_format(path)
    try:
        if kind == "keras":
            with zipfile.ZipFile(path) as archive:
                text = archive.read("config.json").decode("utf-8")
        elif kind == "h5":
            import h5py

            with h5py.File(path, "r") as handle:
                text = handle.attrs.get("model_config")
            if text is None:
                raise ModelFileError(
                    f"'{path}' holds weights only (no model config); give the architecture too: "
                    f"edgecv convert model.json `weights` {path}, or a whole-model .keras/.h5.")
            text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        elif kind == "json":
            text = path.read_text(encoding="utf-8")
        else:
            raise ModelFileError(f"'{path}' is a SavedModel: it stores traced graphs, not a Keras config.")
        config = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot read the model config of '{path}': "
                             f"{type(exc).__name__}: {exc}"[:300]) from exc
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(f"'{path}' is not a Keras model config (no 'class_name'); expected "
                             "the output of model.to_json().")
    return config


# Keras 2 fields that Keras 3's constructors reject, with the value that makes them a no-op.
# Found by deserialising the get_config() of tf_keras 2.21 layers with Keras 3.15 (see
# tests/data/keras2/README.md). A field is dropped only when it has that value (ANY: the field
# never changes inference, e.g. the RNG of an augmentation layer, inactive when predicting);
# any other value is left for Keras to refuse and for _load_error to name.
ANY = object()
KERAS2_NEUTRAL_FIELDS = {
    **{name: {"groups": 1} for name in (
        "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
        "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")},
    **{name: {"time_major": False} for name in ("LSTM", "GRU", "SimpleRNN")},
    **{name: {"rng_type": ANY} for name in (
        "RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast", "RandomTranslation",
        "RandomCrop", "RandomHeight", "RandomWidth", "RandomBrightness")},
    **{name: {"trainable": ANY, "noise_shape": None} for name in (
        "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")},
}
TF_KERAS_ADVICE = ("load it with tf.keras 2 (pip install tf-keras; TF_USE_LEGACY_KERAS=1) and "
                   "export a SavedModel (model.export('saved_model_dir')), which edgecv converts "
                   "without deserialising Keras layers, or replace that layer and re-save the .h5")


def upgrade_keras2_config(config: dict) -> tuple[dict, list[str]]:
    """A copy of a model ``config`` with the Keras 2 fields Keras 3 rejects rewritten where that
    changes nothing at inference (see KERAS2_NEUTRAL_FIELDS; ``ThresholdedReLU(theta)``, gone in
    Keras 3, becomes ``ReLU(threshold=theta)``; a Keras 2 ``Policy`` dtype its policy name).
    Returns (config, one note per change, e.g. "dw0 (DepthwiseConv2D): groups=1 dropped").
    ``config`` itself is not modified; a Keras 3 config comes back unchanged."""
    config = json.loads(json.dumps(config))
    notes = []
    for entry in _layer_entries(config):
        inner = entry.get("config")
        if not isinstance(inner, dict):
            continue
        name, kind = _entry_name(entry), entry["class_name"]
        for field, neutral in KERAS2_NEUTRAL_FIELDS.get(kind, {}).items():
            if field in inner and (neutral is ANY or inner[field] == neutral):
                notes.append(f"{name} ({kind}): {field}={inner.pop(field)!r} dropped")
        if kind == "ThresholdedReLU":
            # Keras 2: x if x > theta else 0; Keras 3 ReLU(threshold=t): x if x >= t else 0.
            theta = inner.pop("theta", 1.0)
            inner.update(threshold=theta, negative_slope=0.0, max_value=None)
            entry["class_name"] = "ReLU"
            entry.pop("module", None)
            notes.append(f"{name} (ThresholdedReLU): became ReLU(threshold={theta})")
        dtype = inner.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") == "Policy":
            # Keras 2 mixed precision; Keras 3 builds the same policy from its name.
            inner["dtype"] = (dtype.get("config") or {}).get("name", "float32")
            notes.append(f"{name} ({kind}): dtype policy {inner['dtype']!r}")
    return config, notes


def _layer_entries(config) -> list[dict]:
    """Every serialized object in ``config`` that has a class_name (layers, nested models...)."""
    found = []
    if isinstance(config, dict):
        if isinstance(config.get("class_name"), str):
            found.append(config)
        for value in config.values():
            found.extend(_layer_entries(value))
    elif isinstance(config, list):
        for value in config:
            found.extend(_layer_entries(value))
    return found


def _entry_name(entry: dict) -> str:
    inner = entry.get("config")
    return str(inner.get("name")) if isinstance(inner, dict) and inner.get("name") else "?"


def lambda_layer_names(config: dict) -> list[str]:
    """Names of the Lambda layers anywhere in a model config (nested models included)."""
    return [_entry_name(e) for e in _layer_entries(config) if e["class_name"] == "Lambda"]


def _is_keras_class(name: str) -> bool:
    keras = _import_keras()
    return name in ("Functional", "Sequential", "Model") or any(
        hasattr(namespace, name) for namespace in
        (keras.layers, keras.initializers, keras.regularizers, keras.constraints,
         keras.activations, keras.dtype_policies))


def custom_class_names(config: dict) -> list[str]:
    """Class names in a model config that Keras does not define (they need --custom-objects).

    A Keras 3 config names each class's module; a legacy .h5 config does not, so those names
    are looked up in Keras (which imports TensorFlow)."""
    names = []
    config, _ = upgrade_keras2_config(config)  # what it rewrites is not custom (ThresholdedReLU)
    for entry in _layer_entries(config):
        name, module = entry["class_name"], entry.get("module")
        if name.startswith("__") or name in names:
            continue
        custom = (module.split(".")[0] != "keras") if isinstance(module, str) \
            else not _is_keras_class(name)
        if custom:
            names.append(name)
    return names


def refuse_lambda(path: str | Path, config: dict) -> None:
    """Raise ModelFileError naming the Lambda layers of ``config`` (nothing is executed)."""
    names = lambda_layer_names(config)
    if names:
        listed = ", ".join(f"'{n}'" for n in names)
        raise ModelFileError(f"'{path}' contains a Lambda layer ({listed}), refused: "
                             f"{LAMBDA_ADVICE}.")


def _import_keras():
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def _layers_named(config: dict | None, class_name: str, field: str | None = None) -> list[str]:
    """Names of the layers of class ``class_name`` (having ``field``, if given) in ``config``."""
    return [_entry_name(e) for e in _layer_entries(config or {})
            if e["class_name"] == class_name and
            (field is None or field in (e.get("config") if isinstance(e.get("config"), dict) else {}))]


def _load_error(path: Path, exc: Exception, config: dict | None) -> ModelFileError:
    text = str(exc)
    if "Lambda" in text or "safe_mode" in text:
        return ModelFileError(f"'{path}' contains a Lambda layer, refused: {LAMBDA_ADVICE}.")
    first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
    custom = custom_class_names(config) if config else []
    if custom and ("Could not locate" in text or "Unknown" in text or "not found" in text
                   or "could not be deserialized" in text):
        layers = [f"'{n}' ({c})" for c in custom for n in _layers_named(config, c)]
        where = f" (layer {', '.join(layers)})" if layers else ""
        legacy = " If it is a Keras 2 layer that Keras 3 no longer has, " + TF_KERAS_ADVICE \
            if path.suffix.lower() in (".h5", ".json") else ""
        return ModelFileError(
            f"cannot load '{path}': it uses the custom class(es) {', '.join(custom)}{where}, "
            f"which Keras 3 does not define and nobody registered; pass `custom_objects` "
            f"FILE.py that defines them.{legacy}"[:600])
    # A field Keras 3's constructor does not take ("Unrecognized keyword arguments passed to
    # X: {'f': v}" or "X.__init__() got an unexpected keyword argument 'f'").
    match = (re.search(r"Unrecognized keyword arguments? passed to (\w+): \{'(\w+)': ([^,}]*)", text)
             or re.search(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'()", text))
    if match:
        kind, field, value = match.groups()
        layers = _layers_named(config, kind, field)
        which = (f"layer{'s' if len(layers) > 1 else ''} {', '.join(repr(n) for n in layers)} "
                 f"({kind})") if layers else kind
        shown = f"{field}={value}" if value else field
        return ModelFileError(
            f"cannot load '{path}': {which} has the field {shown}, which Keras 3's {kind} does "
            f"not accept (a Keras 2 setting with no Keras 3 equivalent); {TF_KERAS_ADVICE}."[:600])
    if "Layer count mismatch" in text and path.suffix.lower() == ".h5" and config and \
            config.get("class_name") not in ("Functional", "Sequential", "Model"):
        return ModelFileError(
            f"cannot load '{path}': a subclassed model ({config['class_name']}) cannot be "
            "restored from a legacy .h5 (the file does not record the input shape to build it "
            "with); save it with model.save('model.keras') or model.export('saved_model_dir').")
    return ModelFileError(f"cannot load '{path}': {type(exc).__name__}: {first}"[:300])


def load_keras_model(path: str | Path, custom_objects: dict | None = None,
                     weights: str | Path | None = None):
    """Load a user's ``.keras``, ``.h5`` or ``.json`` (+ ``weights``) model with
    ``safe_mode=True`` (never runs code stored in the file); Lambda layers are refused by name
    before anything is deserialized. ``custom_objects``: name -> class (see
    :func:`load_custom_objects`), default none."""
    path = check_model_file(path)
    kind = model_format(path)
    if kind == "savedmodel":
        raise ModelFileError(f"'{path}' is a SavedModel, not a Keras model; use "
                             "load_saved_model() (edgecv convert accepts both).")
    if kind == "json" and weights is None:
        raise UsageError(f"a JSON config holds no weights: pass `weights` FILE.weights.h5 with "
                         f"'{path}'.")
    if kind != "json" and weights is not None:
        raise UsageError(f"`weights` goes with a JSON config only; '{path}' is a whole model "
                         "with its weights.")
    config = read_model_config(path)
    refuse_lambda(path, config)
    upgraded, notes = upgrade_keras2_config(config)
    keras = _import_keras()
    try:
        with warnings.catch_warnings():
            # A tf.keras 2 Sequential stores batch_input_shape on its first layer, which Keras 3
            # turns into input_shape= and warns about: advice for model code, not for a file.
            warnings.filterwarnings("ignore", message="Do not pass an `input_shape`",
                                    category=UserWarning)
            if kind == "h5" and notes:
                return _load_upgraded_h5(keras, path, upgraded, custom_objects)
            if kind != "json":
                return keras.saving.load_model(path, compile=False, safe_mode=True,
                                               custom_objects=custom_objects)
            model = keras.saving.deserialize_keras_object(upgraded, custom_objects=custom_objects,
                                                          safe_mode=True)
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
        # The upgraded config: the layers it names are those still holding the failing field.
        raise _load_error(path, exc, upgraded) from exc
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"'{path}' describes a {type(model).__name__}, not a Keras model.")
    weights = Path(weights)
    if not weights.is_file():
        raise ModelFileError(f"weights file '{weights}' does not exist.")
    try:
        model.load_weights(weights)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        first = first_line(exc)
        raise ModelFileError(f"the weights in '{weights}' do not fit the model in '{path}': "
                             f"{first}") from exc
    return model


def _load_upgraded_h5(keras, path: Path, config: dict, custom_objects: dict | None):
    """Load a legacy .h5 with its model config replaced by ``config``, through Keras' own .h5
    loader (weights by layer, as Keras reads them). The rewrite goes to a temporary copy: the
    user's file is never modified, and the public ``load_model`` takes only a path."""
    import h5py

    with tempfile.TemporaryDirectory(prefix="edgecv_h5_") as tmp:
        copy = Path(tmp) / "model.h5"  # Keras picks its loader by the (lower-case) suffix
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as handle:
            handle.attrs["model_config"] = json.dumps(config)
        return keras.saving.load_model(copy, compile=False, safe_mode=True,
                                       custom_objects=custom_objects)


def weights_parameter_count(path: str | Path) -> int | None:
    """Number of stored weight values of a .keras / .h5 / .weights.h5 file, read with h5py
    (nothing is built); optimizer state is not counted. None if the file holds no weights."""
    import h5py

    path = Path(path)
    total = 0

    def visit(name, item):
        nonlocal total
        if isinstance(item, h5py.Dataset) and not name.startswith(("optimizer", "optimizer_weights")):
            total += int(np.prod(item.shape))

    if path.suffix.lower() == ".keras":
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                return None
            with archive.open("model.weights.h5") as member, h5py.File(member, "r") as handle:
                handle.visititems(visit)
    else:
        with h5py.File(path, "r") as handle:
            group = handle["model_weights"] if "model_weights" in handle else handle
            group.visititems(visit)
    return total


# --- custom objects -------------------------------------------------------------------------------

def parse_custom_objects_spec(spec: str) -> tuple[Path, list[str]]:
    """``my_layers.py`` or ``my_layers.py:CustomDense,MyModel`` -> (path, names)."""
    text, names = spec, []
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if head.lower().endswith(".py") and "/" not in tail and "\\" not in tail:
            text, names = head, [n.strip() for n in tail.split(",") if n.strip()]
            if not names:
                raise UsageError(f"`custom_objects` '{spec}' names no class after ':'; give "
                                 "FILE.py or FILE.py:ClassA,ClassB.")
    return Path(text), names


def load_custom_objects(spec: str) -> dict:
    """Import the Python file of ``spec`` (``FILE.py`` or ``FILE.py:Name1,Name2``) and return
    the custom objects to load a model with: the named classes or, with no names, every
    Layer/Model subclass defined in the file plus everything it registers with
    ``keras.saving.register_keras_serializable``. Keys are the class name and the registered
    name (``package>Name``), so both the .keras and the legacy .h5 loader find them.

    The file is imported once per content (module name ``edgecv_custom_objects_<hash>``): importing
    it again would register its classes a second time."""
    path, names = parse_custom_objects_spec(spec)
    if not path.is_file():
        raise UsageError(f"`custom_objects` file '{path}' does not exist.")
    if path.suffix.lower() != ".py":
        raise UsageError(f"`custom_objects` expects a Python file (.py), received '{path}'.")
    keras = _import_keras()
    source = path.read_bytes()
    digest = hashlib.sha256(str(path.resolve()).encode() + b"\0" + source).hexdigest()[:12]
    module_name = f"edgecv_custom_objects_{digest}"
    before = dict(keras.saving.get_custom_objects())
    module = sys.modules.get(module_name)
    if module is None:
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        sys.path.insert(0, str(path.resolve().parent))  # so it can import its sibling modules
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # the user's code: any error means the same to them
            del sys.modules[module_name]
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise UsageError(f"`custom_objects` '{path}' failed to import: "
                             f"{type(exc).__name__}: {first}") from exc
        finally:
            sys.path.remove(str(path.resolve().parent))
    defined = {name: obj for name, obj in vars(module).items()
               if inspect.isclass(obj) and obj.__module__ == module_name
               and issubclass(obj, keras.layers.Layer)}
    if names:
        missing = [n for n in names if not callable(getattr(module, n, None))]
        if missing:
            available = sorted(n for n, obj in vars(module).items()
                               if inspect.isclass(obj) and obj.__module__ == module_name)
            raise UsageError(f"`custom_objects`: {', '.join(repr(n) for n in missing)} not "
                             f"defined in '{path}' (it defines: {', '.join(available) or 'no classes'}).")
        chosen = [getattr(module, n) for n in names]
    else:
        after = keras.saving.get_custom_objects()
        registered = [obj for key, obj in after.items()
                      if before.get(key) is not obj or getattr(obj, "__module__", None) == module_name]
        chosen = list(defined.values()) + [obj for obj in registered if obj not in defined.values()]
        if not chosen:
            raise UsageError(f"`custom_objects` '{path}' defines no Keras Layer or Model subclass "
                             "and registers nothing with keras.saving.register_keras_serializable.")
    objects = {}
    for obj in chosen:
        objects[obj.__name__] = obj
        objects[keras.saving.get_registered_name(obj)] = obj
    return objects
