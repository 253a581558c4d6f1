"""The names of the files in a run directory and its export folder, each spelled once.

``edgecv train`` writes a run directory, ``edgecv convert`` its ``export/`` folder (or another
``--out``), ``edgecv bench`` / ``pipeline`` their reports beside them. Everything that reads or
writes one of these files takes its path from :class:`RunDir` / :class:`ExportDir`. Paths only:
nothing here touches the disk but :meth:`RunDir.is_run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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


@dataclass(frozen=True)
class RunDir:
    """A training run's directory (see :mod:`edgecv.training.trainer` for what each file holds)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def is_run(self) -> bool:
        """True if ``config.json`` is there: it is written first and deleted last, so it marks
        an edgecv run even when a killed process left the rest half-done."""
        return self.config.is_file()

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
