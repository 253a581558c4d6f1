"""edgecv.rundir: every run and export file named once, as paths, and how edgecv tells its own
folders from others (no TensorFlow)."""

import dataclasses
import json
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


def test_a_run_is_marked_by_the_config_edgecv_train_writes(tmp_path):
    """Not by any config.json: a project folder's own one (issue 31) is not a run."""
    run = RunDir(tmp_path)
    assert not run.is_run()
    run.model.write_bytes(b"")  # a model alone is not a run
    assert not run.is_run()
    for foreign in ("{}", '{"train": {"lr": 0.1}}', '{"edgecv_version": 3, "train": {}}',
                    "[1, 2]", "not json", "\xff\xfe"):
        run.config.write_text(foreign)
        assert not run.is_run(), foreign
    run.config.write_bytes(b"\xff\xfe{")  # not UTF-8
    assert not run.is_run()
    # what every edgecv version wrote (the skeleton's first config.json had both keys)
    run.config.write_text(json.dumps({"edgecv_version": "0.1.0", "train": {"model": "resnet8"}}))
    assert run.is_run()


def test_a_run_knows_the_names_edgecv_writes_in_it(tmp_path):
    run = RunDir(tmp_path)
    assert run.own_names() == {"model.keras", "config.json", "split.json", "labels.txt",
                               "history.csv", "metrics.json", "training_curves.png",
                               "confusion_matrix.png", "logs", "checkpoints", "export",
                               "bench.json", "bench.md", "report.html"}
    for name in ("model.keras", "export", ".config.123-abcdefgh.partial.json"):
        (tmp_path / name).mkdir() if name == "export" else (tmp_path / name).write_text("x")
    assert run.foreign_entries() == []
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "src").mkdir()
    assert run.foreign_entries() == ["notes.txt", "src"]


def test_an_export_folder_is_marked_by_converts_record(tmp_path):
    export = ExportDir(tmp_path)
    assert not export.is_export()
    export.conversion.write_text('{"artifacts": "mine"}')
    assert not export.is_export()
    export.conversion.write_text('{"run": "runs/x", "artifacts": []}')  # convert at work
    assert export.is_export()


def test_convert_replaces_only_files_it_wrote(tmp_path):
    """`edgecv convert --out DIR` replaces its fixed file names: in a folder that is not
    convert's (no conversion.json of its own, not a run's export/) it refuses, before anything
    is loaded or written, when one of those names is taken; free names are fine."""
    from edgecv.converters.convert import _refuse_foreign_files
    from edgecv.errors import UsageError

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "README.md").write_text("mine")
    _refuse_foreign_files(folder)  # nothing convert writes is there
    _refuse_foreign_files(tmp_path / "new")  # a folder that does not exist yet
    (folder / "model_int8.tflite").write_bytes(b"my own model")
    with pytest.raises(UsageError, match=r"refusing to write into .*'model_int8.tflite', which "
                                         r"edgecv convert would replace but did not write"):
        _refuse_foreign_files(folder)
    (folder / "model_int8.tflite").rename(folder / "kept.tflite")
    (folder / "conversion.json").write_text('{"artifacts": "my own record"}')
    with pytest.raises(UsageError, match="'conversion.json'"):
        _refuse_foreign_files(folder)
    (folder / "kept.tflite").rename(folder / "model_int8.tflite")
    # convert's record, also the one a killed conversion leaves: the folder is convert's
    (folder / "conversion.json").write_text('{"run": "runs/x", "artifacts": []}')
    _refuse_foreign_files(folder)

    run = RunDir(tmp_path / "run")  # a run's export/ written by an earlier, killed convert
    run.export.path.mkdir(parents=True)
    (run.export.path / "model_fp32.tflite").write_bytes(b"half")
    with pytest.raises(UsageError):
        _refuse_foreign_files(run.export.path)  # not yet a run: config.json missing
    run.config.write_text(json.dumps({"edgecv_version": "0.1.0", "train": {}}))
    _refuse_foreign_files(run.export.path)
