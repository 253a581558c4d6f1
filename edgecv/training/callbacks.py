"""The Keras callbacks that write run files, made atomic (:func:`edgecv.io.atomic_path`:
a temporary file in the same directory, then ``os.replace``, with the umask's mode).

Keras writes them in place: ``CSVLogger`` appends each epoch's row to a file it keeps open,
``ModelCheckpoint`` and ``BackupAndRestore`` overwrite their ``.weights.h5`` (and the backup's
JSON) where they are. A run killed or out of disk during such a write leaves a half row in
``history.csv`` or a truncated checkpoint that ``--resume`` then fails to load. With these, every
file is the previous complete version or the new complete one.

Importing this module imports TensorFlow (through :func:`edgecv.tf_import.import_tensorflow`,
so edgecv's TensorFlow settings apply): the training side only.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

from edgecv.io import atomic_path, write_json_atomic
from edgecv.tf_import import import_tensorflow

import_tensorflow()
import keras  # noqa: E402  (after edgecv's TensorFlow environment is set)

WEIGHTS_SUFFIX = ".weights.h5"  # Keras refuses to save weights under any other ending


class AtomicCSVLogger(keras.callbacks.CSVLogger):
    """``keras.callbacks.CSVLogger`` (same columns and format) that rewrites the whole file
    atomically at every epoch end instead of appending to an open file. ``append=True`` keeps
    the rows already in the file (a resumed run)."""

    def on_train_begin(self, logs=None):
        previous = ""
        if self.append and os.path.isfile(self.filename):
            with open(self.filename, newline="", encoding="utf-8") as handle:
                previous = handle.read()
        self.append_header = not previous
        # Keras' writer writes into this buffer; nothing touches the file until an epoch ends.
        self.csv_file = io.StringIO(newline="")
        self.csv_file.write(previous)
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        text = self.csv_file.getvalue()
        with atomic_path(self.filename) as tmp:
            tmp.write_bytes(text.encode("utf-8"))  # the csv module's own line endings


class BestWeightsCheckpoint(keras.callbacks.Callback):
    """Save the weights of the best epoch so far (lowest ``monitor``, default ``val_loss``) to
    ``path`` (a ``.weights.h5`` file), atomically: what ``ModelCheckpoint(save_best_only=True,
    save_weights_only=True)`` does. An epoch must beat ``initial_value_threshold`` (default:
    none), e.g. a resumed run's best so far; a NaN never counts as better."""

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss",
                 initial_value_threshold: float | None = None):
        super().__init__()
        self.path = Path(path)
        if not self.path.name.endswith(WEIGHTS_SUFFIX):
            raise ValueError(f"BestWeightsCheckpoint `path` must end in {WEIGHTS_SUFFIX}. "
                             f"Received: path={str(path)!r}")
        self.monitor = monitor
        self.best = math.inf if initial_value_threshold is None else float(initial_value_threshold)

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"BestWeightsCheckpoint: `{self.monitor}` is not in the epoch's logs "
                          f"({sorted(logs or {})}); no checkpoint saved.", stacklevel=2)
            return
        current = float(current)
        if not current < self.best:
            return
        self.best = current
        with atomic_path(self.path, suffix=WEIGHTS_SUFFIX) as tmp:
            self.model.save_weights(str(tmp))


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` (same files, same restore) whose backup is written
    atomically: the weights first, then the epoch record, each a complete file, so a kill
    between the two at worst repeats one epoch (the weights are newer than the record). Keras'
    ``double_checkpoint`` (a copy of the previous backup) is not needed and not offered."""

    def __init__(self, backup_dir: str | os.PathLike, save_freq="epoch",
                 delete_checkpoint: bool = True):
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=delete_checkpoint)

    def _save_model(self):  # the one method of BackupAndRestore that writes files
        with atomic_path(self._weights_path, suffix=WEIGHTS_SUFFIX) as tmp:
            self.model.save_weights(str(tmp))
        write_json_atomic(self._training_metadata_path,
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen})
