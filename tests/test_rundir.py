"""edgecv.rundir: every run and export file named once, as paths (no TensorFlow, no disk)."""

import dataclasses
from pathlib import Path

import pytest

from edgecv.rundir import ExportDir, RunDir


def test_run_files_are_named_inside_the_run(tmp_path):
    run = RunDir(tmp_path / "run")
    names = {"model": "model.keras", "config": "config.json", "split": "split.json",
             "labels": "labels.txt", "history": "history.csv", "metrics": "metrics.json",
             "training_curves": "training_curves.png",
             "confusion_matrix": "confusion_matrix.png", "logs": "logs",
             "checkpoints": "checkpoints", "bench_json": "bench.json",
             "bench_markdown": "bench.md", "report_html": "report.html"}
    for attribute, name in names.items():
        assert getattr(run, attribute) == tmp_path / "run" / name, attribute
    assert run.best_weights == tmp_path / "run" / "checkpoints" / "best.weights.h5"
    assert run.backup == tmp_path / "run" / "checkpoints" / "backup"


def test_export_dir_of_a_run_and_of_any_folder(tmp_path):
    export = RunDir(tmp_path).export
    assert export == ExportDir(tmp_path / "export")
    assert export.conversion == tmp_path / "export" / "conversion.json"
    assert export.testset == tmp_path / "export" / "testset.npz"
    assert ExportDir("out").conversion == Path("out/conversion.json")  # --out: any folder


def test_strings_become_paths_and_the_dirs_are_frozen(tmp_path):
    run = RunDir(str(tmp_path))
    assert run.path == tmp_path and run == RunDir(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.path = Path("elsewhere")


def test_a_run_is_marked_by_its_config(tmp_path):
    run = RunDir(tmp_path)
    assert not run.is_run()
    run.model.write_bytes(b"")  # a model alone is not a run
    assert not run.is_run()
    run.config.write_text("{}")
    assert run.is_run()
