"""What kind of model file is this: suffixes, SavedModel directories, the format name and the
runtime that opens a file. Reads headers only (no TensorFlow, no h5py): the device side uses it.

Keras 3 reports a truncated or zero-byte ``.keras`` file, or an ``.h5`` renamed ``.keras``, as
"File not found" (shared/RUNTIME_FACTS.md), so :func:`check_model_file` looks at the container
first and says what is wrong.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from edgecv.errors import ModelFileError, unknown_name
from edgecv.rundir import ExportDir, RunDir

KERAS_SUFFIXES = (".keras", ".h5", ".json")  # .json: a config, with its weights file
SAVED_MODEL_FILE = "saved_model.pb"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MODEL_FORMATS = ("keras", "h5", "json", "savedmodel")


def check_model_file(path: str | Path) -> Path:
    """Check that ``path`` is a plausible ``.keras`` zip, ``.h5`` or ``.json`` file, or a
    SavedModel directory; return it as a Path."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file '{path}' does not exist.")
    if path.is_dir():
        if not (path / SAVED_MODEL_FILE).is_file():
            raise ModelFileError(f"'{path}' is a directory but not a SavedModel (no "
                                 f"{SAVED_MODEL_FILE}); expected a .keras, .h5 or .json model file.")
        return path
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"model file '{path}' is empty (0 bytes); it was not saved completely.")
    with path.open("rb") as handle:
        head = handle.read(8)
    suffix = path.suffix.lower()
    if suffix == ".keras":
        if head == HDF5_SIGNATURE:
            raise ModelFileError(
                f"'{path}' is an HDF5 (.h5) file named .keras; rename it to .h5 and load that."
            )
        if not zipfile.is_zipfile(path):
            raise ModelFileError(
                f"'{path}' is not a valid .keras file (not a complete zip archive, {size} bytes): "
                "it is truncated or not a Keras model. Re-save it with model.save()."
            )
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
        if "config.json" not in names:
            raise ModelFileError(f"'{path}' is a zip archive but not a Keras model (no config.json).")
        if bad is not None:
            raise ModelFileError(f"'{path}' is corrupt: member '{bad}' fails its CRC check.")
    elif suffix == ".h5":
        if head != HDF5_SIGNATURE:
            raise ModelFileError(f"'{path}' is not an HDF5 file (wrong signature); expected a Keras .h5.")
    elif suffix != ".json":
        raise ModelFileError(
            f"unsupported model file type '{suffix}' for '{path}'; expected .keras, .h5, a .json "
            "config (with `weights`) or a SavedModel directory."
        )
    return path


def model_format(path: str | Path) -> str:
    """'keras', 'h5', 'json' or 'savedmodel' for a checked model path (see check_model_file)."""
    path = check_model_file(path)
    if path.is_dir():
        return "savedmodel"
    return path.suffix.lower().lstrip(".")


def is_saved_model(path: Path) -> bool:
    """A SavedModel directory (``saved_model.pb`` inside, and not an edgecv run directory)."""
    path = Path(path)
    return (path.is_dir() and (path / SAVED_MODEL_FILE).is_file()
            and not RunDir(path).config.is_file())


def is_keras_source(path: Path) -> bool:
    """A model for the Keras side: a .keras / .h5 / .json file, a SavedModel directory or its
    ``saved_model.pb``. The one test used by convert, info, bench and the runtime."""
    path = Path(path)
    return (path.suffix.lower() in KERAS_SUFFIXES or path.name == SAVED_MODEL_FILE
            or is_saved_model(path))


def runtime_for(path: Path) -> str:
    """The runtime that executes ``path``: litert, onnxruntime or keras (a .keras/.h5 file, a
    .json config with its weights, or a SavedModel directory)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".tflite":
        return "litert"
    if suffix == ".onnx":
        return "onnxruntime"
    if is_keras_source(path):
        return "keras"
    raise unknown_name("model file type", suffix or str(path),
                       (".tflite", ".onnx", *KERAS_SUFFIXES, "SavedModel directory"))


def model_export_dir(model: str | Path) -> ExportDir:
    """Where ``edgecv convert MODEL`` writes for a model file edgecv did not train:
    ``<model stem>_export`` beside it (for a SavedModel: beside its directory)."""
    path = Path(model)
    if path.name == SAVED_MODEL_FILE:
        path = path.parent
    path = path.resolve()
    stem = path.name if path.is_dir() else path.stem
    return ExportDir(path.parent / f"{stem}_export")
