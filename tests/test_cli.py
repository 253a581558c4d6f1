"""The CLI through its real entry point: help, speed of import, and one-line errors."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli


def test_help_does_not_import_tensorflow():
    code = ("import sys; from typer.testing import CliRunner; from edgecv.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('tensorflow', 'keras', 'cv2', 'sklearn', 'matplotlib') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def registered_commands() -> dict:
    """Every command on the typer app, by name, as click sees it (discovered, not listed)."""
    import typer.main

    from edgecv.cli import app

    return dict(typer.main.get_command(app).commands)


def test_the_app_registers_the_commands_the_readme_describes():
    """The README's tour of the commands names each command once, and no other."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    documented = re.findall(r"^- `edgecv (\w+)`", readme, re.M)
    assert len(documented) == len(set(documented))
    assert set(registered_commands()) == set(documented)


@pytest.mark.parametrize("command", [[]] + [[name] for name in sorted(registered_commands())],
                         ids=lambda command: command[0] if command else "edgecv")
def test_every_command_has_help_with_every_option(command):
    """Help exits 0 and names the command and every option it registers."""
    result = run_cli(*command, "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert f"Usage: edgecv {' '.join(command)}".rstrip() in result.stdout
    # a flag (--fp16, --help) takes no value: Typer's "<bool>" beside it read as if it did
    assert "<bool>" not in result.stdout, result.stdout
    if not command:
        for name in registered_commands():
            assert name in result.stdout
        return
    params = registered_commands()[command[0]].params
    options = [param.opts[0] for param in params if param.param_type_name == "option"]
    assert options or command == ["models"]
    for option in options:
        assert option in result.stdout, f"{command[0]} --help does not show {option}"
    if command == ["train"]:
        assert "[default: digits]" in result.stdout and "[default: auto]" in result.stdout


def test_models_lists_the_registry():
    from edgecv.models import list_models

    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    for name in list_models():
        assert name in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["--model", "resnet9"], "unknown model 'resnet9'. Did you mean 'resnet8'?"),
    (["--data", "mnsit"], "unknown dataset 'mnsit'. Did you mean 'mnist'?"),
    (["--channels", "2"], "--channels must be 1 or 3, received 2"),
    (["--epochs", "0"], "--epochs must be at least 1, received 0"),
    (["--optimizer", "adamm"], "Did you mean 'adam'?"),
    (["--strategy", "mirror"], "Did you mean 'mirrored'?"),
    # ImageNet weights make digits 3-channel, 1,258 training images: auto's photo model
    (["--weights", "imagenet"], "apply to pretrained bases only; airnet has none. Use one of: "
                                "mobilenet_v2"),
    (["--name", "a", "--out", "b"], "either --name or --out"),
])
def test_usage_errors_are_one_line_exit_2(tmp_path, args, fragment):
    result = run_cli("train", *args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing written for a refused command


@pytest.mark.parametrize("args, fragment", [
    (["--mean", "0.5"], "--mean 0.5 looks like statistics of 0..1 pixels"),
    (["--std", "0.25"], "--std 0.25 looks like statistics of 0..1 pixels"),
    (["--std", "0"], "--std must be positive, received [0.0]"),
    (["--scale", "1/255", "--std", "-1"], "--std must be positive, received [-1.0]"),
    (["--mean", "abc"], "--mean must be a number or a comma-separated list"),
    (["--std", "nan"], "--std must be finite numbers, received 'nan'"),
])
def test_bad_normalisation_flags_are_one_line_exit_2(tmp_path, args, fragment):
    """Refused before the model is loaded (the file need not even exist yet)."""
    result = run_cli("convert", tmp_path / "model.keras", *args, "--data", "digits")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert fragment in result.stderr and "Traceback" not in result.stderr


def test_existing_output_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = run_cli("train", "--out", out, cwd=tmp_path)
    assert result.returncode == 2
    assert "already exists; pass --overwrite" in result.stderr
    result = run_cli("train", "--out", out, "--overwrite", cwd=tmp_path)
    assert result.returncode == 2
    assert "not an edgecv run" in result.stderr
    assert (out / "precious.txt").read_text() == "keep me"


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _legacy_run(folder: Path, *extra: str) -> None:
    """A run as the previous version left it (its config.json's keys, its files)."""
    import json

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "edgecv_version": "0.1.0", "created": "2026-12-01T10:00:00+00:00",
        "train": {"data": "digits", "model": "seed_cnn", "epochs": 1},
        "preprocessing": {"height": 8, "width": 8, "channels": 1}, "labels": ["0", "1"]}))
    for name in ("model.keras", "labels.txt", "split.json", "history.csv", "metrics.json",
                 "checkpoints/best.weights.h5", "logs/train/events", "export/model_fp32.tflite",
                 *extra):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")


@pytest.mark.parametrize("flag", ["--overwrite", "--resume"])
def test_a_folder_with_its_own_config_json_survives_overwrite_and_resume(tmp_path, flag):
    """Issue 31: a project folder holding a config.json of its own was wiped by
    `edgecv train --out it --overwrite` (and --resume cleared one whose config.json had a
    "train" key). Whatever the flag says, edgecv deletes only a run it wrote: one line, exit 2,
    every file as it was."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text('{"train": {"lr": 0.1}, "name": "my project"}')
    (project / "src" / "main.py").write_text("print('mine')\n")
    (project / "model.keras").write_bytes(b"my own model")
    before = _tree(project)
    result = run_cli("train", "--out", project, flag, "--model", "seed_cnn", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "not an edgecv run" in result.stderr and "Traceback" not in result.stderr
    assert _tree(project) == before


def test_overwrite_replaces_an_edgecv_run_but_not_the_files_a_user_added_to_it(tmp_path):
    """An edgecv run, also one of the previous version (recognised by its config.json, which
    always carried edgecv_version and train), is replaced; one holding a file edgecv did not
    write is refused, naming the file, and left whole."""
    from edgecv.training import TrainConfig
    from edgecv.training.trainer import prepare_run_dir

    run = tmp_path / "run"
    _legacy_run(run)
    config, run_dir = prepare_run_dir(TrainConfig(model="seed_cnn", out=str(run)),
                                      overwrite=True, resume=False)
    assert run_dir == run and list(run.iterdir()) == []

    used = tmp_path / "used"
    _legacy_run(used, "notes.txt")
    before = _tree(used)
    result = run_cli("train", "--out", used, "--overwrite", "--model", "seed_cnn", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "refusing to overwrite" in result.stderr and "'notes.txt'" in result.stderr
    assert _tree(used) == before


@pytest.mark.tf
def test_offline_keras_dataset_is_one_clear_line(tmp_path):
    # Route downloads to a closed loopback port so the test is offline even where a network exists.
    env = {"KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}
    result = run_cli("train", "--data", "fashion_mnist", "--out", tmp_path / "run", env=env,
                     cwd=tmp_path)
    assert result.returncode == 1, (result.stdout, result.stderr)
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "could not download the 'fashion_mnist' dataset" in error_lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.tf
def test_tpu_strategy_without_tpu_is_a_clear_error(tmp_path):
    from edgecv.runtime.tpu import tpu_address

    if tpu_address() is not None:
        pytest.skip("this machine has a TPU: --strategy tpu trains instead of failing")
    result = run_cli("train", "--strategy", "tpu", "--epochs", "1", "--out", tmp_path / "run",
                     cwd=tmp_path)
    assert result.returncode == 1
    assert "--strategy tpu: no TPU found" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.tf
def test_multiworker_without_tf_config_is_a_clear_error(tmp_path):
    result = run_cli("train", "--strategy", "multiworker", "--out", tmp_path / "run",
                     env={"TF_CONFIG": ""}, cwd=tmp_path)
    assert result.returncode == 1
    assert "needs the TF_CONFIG environment variable" in result.stderr


@pytest.mark.parametrize("args, fragment", [
    (["convert", "{missing}", "--int8"], "'{missing}' does not exist; give a run directory"),
    (["inspect", "--quant", "{missing}"], "'{missing}' does not exist; give a run directory"),
    (["bench", "{missing}"], "'{missing}' does not exist; give run directories"),
    (["predict", "{missing}", "{tmp}/digit.png"], "model file '{missing}' does not exist."),
    (["info", "{missing}"], "model file '{missing}' does not exist."),
    (["camera", "{missing}", "--source", "0"], "model file '{missing}' does not exist."),
    (["pipeline", "--data", "{missing}", "--out", "{tmp}/run"],
     "data folder '{missing}' does not exist"),
])
def test_a_path_that_does_not_exist_is_named_so(tmp_path, args, fragment):
    """Every command taking a path says the path does not exist, in one line, exit 2 (issue 31:
    convert said "is not an edgecv run directory"; camera without a display warned first)."""
    import cv2

    cv2.imwrite(str(tmp_path / "digit.png"), np.zeros((8, 8), np.uint8))
    missing = str(tmp_path / "nonexistent")
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}  # camera: the no-display warning must not lead
    result = run_cli(*[a.format(missing=missing, tmp=tmp_path) for a in args], cwd=tmp_path,
                     env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and fragment.format(missing=missing) in line, line
