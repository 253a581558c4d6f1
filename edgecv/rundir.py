"""The names of the files in a run directory and its export folder, each spelled once.

``edgecv train`` writes a run directory, ``edgecv convert`` its ``export/`` folder (or another
``--out``), ``edgecv bench`` / ``pipeline`` their reports beside them. Everything that reads or
writes one of these files takes its path from :class:`RunDir` / :class:`ExportDir`. Paths only:
nothing here touches the disk but :meth:`RunDir.is_run`, :meth:`RunDir.foreign_entries` and
:meth:`ExportDir.is_export`, which tell a folder edgecv wrote from one it was merely pointed at:
edgecv deletes or replaces only the former.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgecv.io import is_temporary_name

# A run's config.json or an export's conversion.json is a few KiB; a larger file is not one
# (and is not read whole to find out).
_MAX_RECORD_BYTES = 16 * 1024**2


def _json_record(path: Path) -> dict | None:
    """The JSON object in ``path``, or None (missing, too large, not JSON, not an object)."""
    try:
        if path.stat().st_size > _MAX_RECORD_BYTES:
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return record if isinstance(record, dict) else None


# What mcu.json says to mark a folder as edgecv's microcontroller export.
MCU_EXPORT_MARK = "edgecv convert --mcu"


@dataclass(frozen=True)
class McuDir:
    """What ``edgecv convert --mcu`` writes for a microcontroller: ``RUN/export/mcu`` (an
    export's :attr:`ExportDir.mcu`), or ``<stem>_mcu`` beside a ``.tflite`` converted alone."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def model(self) -> Path:
        """The model the C array holds, byte for byte, as a .tflite file."""
        return self.path / "model.tflite"

    @property
    def model_data_cc(self) -> Path:
        return self.path / "model_data.cc"

    @property
    def model_data_h(self) -> Path:
        return self.path / "model_data.h"

    @property
    def model_ops_h(self) -> Path:
        return self.path / "model_ops.h"

    @property
    def model_settings_h(self) -> Path:
        return self.path / "model_settings.h"

    @property
    def main_cc(self) -> Path:
        return self.path / "main.cc"

    @property
    def readme(self) -> Path:
        return self.path / "README.md"

    @property
    def record(self) -> Path:
        """mcu.json: the arena, the model bytes, the ops, the verification, the fit."""
        return self.path / "mcu.json"

    def files(self) -> list[Path]:
        """Every file of the export, mcu.json last (it is written last)."""
        return [self.model, self.model_data_cc, self.model_data_h, self.model_ops_h,
                self.model_settings_h, self.main_cc, self.readme, self.record]

    def is_mcu_export(self) -> bool:
        """True if mcu.json is edgecv's (its ``export`` is :data:`MCU_EXPORT_MARK`)."""
        record = _json_record(self.record)
        return record is not None and record.get("export") == MCU_EXPORT_MARK


@dataclass(frozen=True)
class ExportDir:
    """What ``edgecv convert`` writes beside the artifacts (``RUN/export`` or ``--out``)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def conversion(self) -> Path:
        """Every artifact's figures and SHA-256 (bench and predict check files against it)."""
        return self.path / "conversion.json"

    @property
    def testset(self) -> Path:
        """The held-out test split as uint8 images (:mod:`edgecv.testset`)."""
        return self.path / "testset.npz"

    @property
    def mcu(self) -> McuDir:
        """The microcontroller export (``--mcu``)."""
        return McuDir(self.path / "mcu")

    def is_export(self) -> bool:
        """True if ``conversion.json`` is ``edgecv convert``'s: a JSON object with its ``run``
        and its ``artifacts`` list (while convert writes, a record with no artifacts yet)."""
        record = _json_record(self.conversion)
        return record is not None and "run" in record and isinstance(record.get("artifacts"), list)


@dataclass(frozen=True)
class RunDir:
    """A training run's directory (see :mod:`edgecv.training.trainer` for what each file holds)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def is_run(self) -> bool:
        """True if ``config.json`` is the one ``edgecv train`` writes: a JSON object with
        ``edgecv_version`` and the ``train`` options (every edgecv version wrote both). It is
        written first and deleted last, so it marks an edgecv run even when a killed process
        left the rest half-done; a folder's own config.json (any other content) does not."""
        record = _json_record(self.config)
        return (record is not None and isinstance(record.get("edgecv_version"), str)
                and isinstance(record.get("train"), dict))

    def own_names(self) -> frozenset[str]:
        """The names of the files and folders edgecv writes at the top of a run (train,
        convert's default ``export/``, bench's and pipeline's reports): every path property of
        this class that lies directly in the run."""
        names = set()
        for attribute, value in vars(RunDir).items():
            if isinstance(value, property):
                path = getattr(self, attribute)
                path = path.path if isinstance(path, ExportDir) else path
                if path.parent == self.path:
                    names.add(path.name)
        return frozenset(names)

    def foreign_entries(self) -> list[str]:
        """The names at the top of the run folder that edgecv did not write there (sorted),
        atomic writes' temporaries aside: what makes ``--overwrite`` / ``--resume`` refuse to
        clear it."""
        own = self.own_names()
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return sorted(name for name in names if name not in own and not is_temporary_name(name))

    @property
    def model(self) -> Path:
        return self.path / "model.keras"

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def split(self) -> Path:
        return self.path / "split.json"

    @property
    def labels(self) -> Path:
        return self.path / "labels.txt"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def training_curves(self) -> Path:
        return self.path / "training_curves.png"

    @property
    def confusion_matrix(self) -> Path:
        return self.path / "confusion_matrix.png"

    @property
    def logs(self) -> Path:
        """TensorBoard logs (``--tensorboard``)."""
        return self.path / "logs"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best_weights(self) -> Path:
        return self.checkpoints / "best.weights.h5"

    @property
    def backup(self) -> Path:
        """Keras' BackupAndRestore folder: there while a run is in progress (``--resume``)."""
        return self.checkpoints / "backup"

    @property
    def export(self) -> ExportDir:
        """Where ``edgecv convert RUN`` writes by default."""
        return ExportDir(self.path / "export")

    @property
    def bench_json(self) -> Path:
        return self.path / "bench.json"

    @property
    def bench_markdown(self) -> Path:
        return self.path / "bench.md"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"
