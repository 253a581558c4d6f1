"""Loading Keras model files that a user hands us, safely and with errors that say what is wrong.

Keras 3 reports a truncated or zero-byte ``.keras`` file, or an ``.h5`` renamed ``.keras``, as
"File not found" (shared/RUNTIME_FACTS.md), and runs a Lambda layer's code when loading with
``safe_mode=False``. So the container is checked first and ``safe_mode`` is always on.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from edgecv.errors import ModelFileError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_model_file(path: str | Path) -> Path:
    """Check that ``path`` is a plausible ``.keras`` zip or ``.h5`` file; return it as a Path."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file '{path}' does not exist.")
    if path.is_dir():
        raise ModelFileError(f"'{path}' is a directory; expected a .keras or .h5 model file.")
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
    else:
        raise ModelFileError(
            f"unsupported model file type '{suffix}' for '{path}'; expected .keras or .h5."
        )
    return path


def load_keras_model(path: str | Path, custom_objects: dict | None = None):
    """Load a user's model file with ``safe_mode=True`` (never runs code stored in the file)."""
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    path = check_model_file(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True,
                                       custom_objects=custom_objects)
    except ValueError as exc:
        text = str(exc)
        if "Lambda" in text or "safe_mode" in text:
            raise ModelFileError(
                f"'{path}' contains a Lambda layer, whose Python code edgecv will not run "
                "(safe_mode). Replace the Lambda with a built-in or a registered custom layer."
            ) from exc
        first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
        raise ModelFileError(f"cannot load '{path}': {first}") from exc
    except (OSError, KeyError, TypeError) as exc:
        raise ModelFileError(f"cannot load '{path}': {type(exc).__name__}: {exc}"[:300]) from exc
