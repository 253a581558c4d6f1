"""The Python API (edgecv.train / convert / inspect / bench / predict / pipeline): the whole job from
Python with typed results equal to the files the CLI writes, every CLI option as a keyword,
a light `import edgecv`, and library errors in the library's terms (the CLI shows its flags)."""

import ast
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


# --- the names ---------------------------------------------------------------------------------------
# (`import edgecv` importing no TensorFlow: tests/test_layers.py)

def test_the_public_names_resolve_and_errors_share_one_base():
    import edgecv
    from edgecv import api, errors

    assert edgecv.convert is api.convert and edgecv.pipeline is api.pipeline
    assert edgecv.predict is api.predict and edgecv.inspect is api.inspect
    for name in ("UsageError", "DataError", "ModelFileError", "ConversionError",
                 "AccuracyDropError", "BackendUnavailable", "DatasetUnavailable"):
        assert issubclass(getattr(edgecv, name), edgecv.EdgecvError)
        assert getattr(edgecv, name) is getattr(errors, name)
    with pytest.raises(AttributeError):
        edgecv.no_such_function  # noqa: B018


def test_api_functions_stay_functions_after_their_implementation_is_imported():
    """`edgecv.predict` and `edgecv.pipeline` were modules as well; importing a submodule of that
    name would replace the function on the package."""
    import edgecv
    import edgecv.api  # noqa: F401
    import edgecv.classify  # noqa: F401
    import edgecv.run_report  # noqa: F401

    assert callable(edgecv.predict) and callable(edgecv.pipeline)
    assert not (ROOT / "edgecv" / "predict.py").exists()
    assert not (ROOT / "edgecv" / "pipeline.py").exists()


# --- every CLI option has its keyword --------------------------------------------------------------

# CLI parameters that are not keywords of the same name, and what stands for them in Python.
NOT_KEYWORDS = {
    "convert": {"fp16": "formats", "dynamic": "formats", "int8": "formats",
                "int16x8": "formats", "onnx": "formats", "edgetpu": "formats", "mcu": "formats",
                "all_formats": "formats", "json_out": "the returned Conversion's to_dict()"},
    "predict": {"json_out": "each Prediction's to_dict()"},
    "inspect": {"top": "the returned Inspection's rows, all of them, worst first",
                "json_out": "the returned Inspection's to_dict()"},
}
API_COMMANDS = ["train", "convert", "inspect", "bench", "predict", "pipeline"]


@pytest.mark.parametrize("command", API_COMMANDS)
def test_every_cli_option_has_its_keyword(command):
    import typer

    import edgecv
    from edgecv.cli import app

    click_command = typer.main.get_command(app).commands[command]
    keywords = inspect.signature(getattr(edgecv, command)).parameters
    missing = []
    for param in click_command.params:
        stand_in = NOT_KEYWORDS.get(command, {}).get(param.name)
        if stand_in is not None:
            assert stand_in in keywords or not stand_in.isidentifier(), (param.name, stand_in)
            continue
        if param.name not in keywords:
            missing.append(param.name)
            continue
        default = keywords[param.name].default
        if param.param_type_name == "option" and default is not inspect.Parameter.empty:
            # the same default, in Python's form (a flag list may be a tuple, a count an int)
            cli_default = param.default
            assert default == cli_default or str(default) == str(cli_default) \
                or (cli_default is None and default in ((), [])), (param.name, default,
                                                                   cli_default)
    assert missing == []


# --- library errors speak in the library's terms ---------------------------------------------------

FLAG = re.compile(r"(?<![\w`-])--[a-z][a-z0-9-]*(?![\w-])")
# Strings that name a flag on purpose: records written into files for people using the CLI
# (provenance fields read back by the CLI's report), and command lines to run in a shell.
FLAG_ALLOWED = {
    ("edgecv/rundir.py", "edgecv convert --mcu"),  # the mark in an export's README
    ("converters/mcu.py", "(`edgecv convert --mcu`)"),
    ("edgecv/deploy.py", " --json "),  # a shell command
    ("edgecv/runtime/boards.py", "--mcu-profile"),  # a profile's "source" field
    ("edgecv/training/precision.py", "--precision "),  # metrics.json's precision source
    ("converters/formats.py", "--onnx-calibration"),  # conversion.json's chosen_by
    ("converters/sources.py", "--labels"),  # conversion.json's labels source
    ("benchmarks/report/tables.py", "--max-drop"),  # bench.json's max_drop_from
    ("benchmarks/suite.py", "--max-drop"),
    ("benchmarks/remote/fleet.py", "--force-reinstall"),  # pip's own flags on a device
    ("benchmarks/remote/ssh.py", "--now"),
    ("edgecv/data/folder.py", "--notest"),  # a shell command in a hint
    ("edgecv/tflite_metadata.py", "--io uint8"),  # the card's tflite_metadata reason
    ("edgecv/runtime/targets.py", "edgecv convert --edgetpu"),  # a bench row's reason: a command
}


def _string_constants(tree: ast.AST):
    """Every string constant that is not a docstring."""
    documented = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                documented.add(id(first.value))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in documented):
            yield node


def test_no_library_message_names_a_cli_flag():
    """Errors, warnings and way-outs name keyword arguments (`max_drop`); edgecv.cli shows them
    as flags (--max-drop). 130 strings named flags before."""
    found = []
    for folder in ("edgecv", "converters", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative == "edgecv/cli.py" or "experiments" in path.parts:
                continue
            for node in _string_constants(ast.parse(path.read_text())):
                for flag in FLAG.findall(node.value):
                    if not any(relative == f and fragment in node.value
                               for f, fragment in FLAG_ALLOWED):
                        found.append(f"{relative}:{node.lineno}: {flag}")
    assert found == []


def test_the_commands_over_the_api_raise_no_error_of_their_own():
    """A command with an API function only maps its flags and prints: a check it made itself
    would be missing from Python and would speak in flags (inspect's --activations check was
    in the CLI). Re-raising the library's error (`raise`, `raise drop_error`) is fine."""
    from edgecv import errors

    own = {name for name, value in vars(errors).items()
           if isinstance(value, type) and issubclass(value, errors.EdgecvError)}
    tree = ast.parse((ROOT / "edgecv" / "cli.py").read_text())
    commands = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    found = []
    for command in API_COMMANDS:
        for node in ast.walk(commands[f"{command}_command"]):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and getattr(node.exc.func, "id", None) in own):
                found.append(f"{command}: line {node.lineno}")
    assert found == []


def test_the_cli_shows_keyword_arguments_as_its_flags():
    from edgecv.cli import cli_terms

    assert cli_terms("`max_drop` must be 0 or more") == "--max-drop must be 0 or more"
    assert cli_terms("`xla='on'` needs `deterministic=False`") == "--xla on needs --no-deterministic"
    assert cli_terms("add `formats=['mcu']` or `formats=['int8', 'onnx_int8']`") == \
        "add --mcu or --int8 --onnx --int8"
    assert cli_terms("`recover` `recover_mix='float'`") == "--recover --recover-mix float"
    assert cli_terms("`json_path`", "bench") == "--json"
    assert cli_terms("`source` is empty", "camera") == "--source is empty"
    assert cli_terms("`source` is empty", "convert") == "SOURCE is empty"  # its argument
    assert cli_terms("run `edgecv bench x` first, `not_a_keyword`") == \
        "run `edgecv bench x` first, `not_a_keyword`"


def test_one_error_in_python_terms_and_in_cli_terms(tmp_path, cli):
    import edgecv

    (tmp_path / "model.tflite").write_bytes(b"")
    with pytest.raises(edgecv.UsageError, match=r"^`runs` must be at least 1, received 0\.$"):
        edgecv.bench(tmp_path / "model.tflite", runs=0)
    result = cli("bench", tmp_path / "model.tflite", "--runs", "0")
    assert result.returncode == 2
    assert result.stderr == "error: --runs must be at least 1, received 0.\n"
    with pytest.raises(edgecv.UsageError, match="give either `name` or `out`"):
        edgecv.train(name="a", out=tmp_path / "b")
    with pytest.raises(edgecv.UsageError, match=r"^`activations` must be 8 or 16, received 12\.$"):
        edgecv.inspect(tmp_path / "model.tflite", activations=12)
    result = cli("inspect", tmp_path / "model.tflite", "--activations", "12")
    assert result.returncode == 2
    assert result.stderr == "error: --activations must be 8 or 16, received 12.\n"


# --- typed conversion rows (no TensorFlow) -----------------------------------------------------------

def test_a_conversion_json_written_by_the_dict_built_rows_reads_back_to_the_same_bytes():
    """tests/data/conversion_dict_rows.json was written while the conversion still built its
    rows as dicts (int8 over budget with its rounding split, QAT, both mixed recoveries with
    their alternatives, data without labels): every key has its field, and the typed record
    writes the same file."""
    from edgecv.results import Conversion

    text = (ROOT / "tests" / "data" / "conversion_dict_rows.json").read_text()
    conversion = Conversion.from_dict(json.loads(text))
    assert [row.extra for row in conversion.artifacts] == [{}] * 6
    assert conversion.row("int8_mixed").alternative["mix"]
    assert conversion.row("int8").accuracy is None and conversion.row("int8").rounding
    assert json.dumps(conversion.to_dict(), indent=2) + "\n" == text


def test_a_misspelt_conversion_row_field_is_an_error_not_a_new_key():
    """A row is typed from where the conversion makes it to conversion.json: a field it does
    not have fails where it is written, instead of becoming a JSON key (or vanishing)."""
    from edgecv.results import ConversionRow

    row = ConversionRow(format="int8", file="model_int8.tflite", size_bytes=10)
    with pytest.raises(AttributeError):
        row.recoverd_by = "model_int8_mixed.tflite"
    with pytest.raises(TypeError):
        ConversionRow(format="int8", file="model_int8.tflite", size_bytes=10, acuracy=0.9)
    assert row.to_dict() == {"format": "int8", "file": "model_int8.tflite", "size_bytes": 10}


# --- the whole job from Python ---------------------------------------------------------------------

@pytest.mark.tf
@pytest.mark.slow
def test_the_whole_job_from_python(tmp_path):
    import cv2

    import edgecv
    from edgecv.benchmarks.row import BenchRow
    from edgecv.classify import ClassScore, Prediction
    from edgecv.results import BenchReport, Conversion, ConversionRow, Recommendation, Run

    lines = []
    run = edgecv.train(model="seed_cnn", img_size=16, epochs=2, tensorboard=False,
                       out=tmp_path / "run", log=lines.append)
    assert isinstance(run, Run) and run.path == tmp_path / "run" and lines
    assert run.to_dict() == json.loads((run.path / "metrics.json").read_text())

    conversion = edgecv.convert(run, ["int8", "onnx"], calib_samples=50, max_drop=100, log=None)
    assert isinstance(conversion, Conversion)
    assert [row.format for row in conversion.artifacts] == ["fp32", "int8", "onnx", "onnx_int8"]
    assert all(isinstance(row, ConversionRow) and row.extra == {} for row in conversion.artifacts)
    assert conversion.to_dict() == json.loads((run.path / "export" / "conversion.json").read_text())
    int8 = conversion.row("int8")
    assert int8.agreement > 0.5 and int8.onnx_calibration is None
    assert conversion.row("onnx_int8").onnx_calibration["method"]
    assert conversion.path("int8") == run.path / "export" / "model_int8.tflite"

    rows = []
    report = edgecv.bench(conversion, targets="cpu", threads=[1], runs=3, min_time=0,
                          rounds=1, warmup=1, keras=False, json_path=tmp_path / "bench.json",
                          progress=rows.append)
    assert isinstance(report, BenchReport) and not report.failed
    assert all(isinstance(row, BenchRow) for row in report.rows + rows)
    assert {row.artifact for row in report.rows} == {row.file for row in conversion.artifacts}
    assert report.to_dict() == json.loads((tmp_path / "bench.json").read_text())
    choice = report.recommendation("cpu")
    assert isinstance(choice, Recommendation)
    assert choice.artifact in {row.artifact for row in report.rows}

    images = sorted((ROOT / "tests" / "data" / "cifar10_mini")
                    .rglob("*.jpg"))[:2]
    array = cv2.imread(str(images[0]), cv2.IMREAD_GRAYSCALE)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    predictions = edgecv.predict(report, [images[1], array, broken], top_k=2)
    assert [type(p) for p in predictions] == [Prediction] * 3
    by_path, by_array, failed = predictions
    assert by_path.path == str(images[1]) and len(by_path.top_k) == 2
    assert all(isinstance(c, ClassScore) for c in by_array.top_k) and by_array.path is None
    assert by_array.to_dict()["top_k"][0] == {"label": by_array.label, "score": by_array.score}
    assert failed.error and failed.label is None
    assert failed.to_dict() == {"path": str(broken), "error": failed.error}
    # the same file through the CLI: the same JSON lines
    result = subprocess.run([sys.executable, "-m", "edgecv", "predict", choice.path,
                             str(images[1]), "--top-k", "2", "--json"],
                            capture_output=True, text=True)
    assert json.loads(result.stdout)["top_k"] == by_path.to_dict()["top_k"]


@pytest.mark.tf
@pytest.mark.slow
def test_inspect_from_python_is_what_the_cli_prints(tiny_run, tmp_path, cli):
    """edgecv.inspect on a trained run: typed rows worst first, the CSVs written, and its
    to_dict() the record `edgecv inspect --json` prints for the same run (but the rounding
    split's time and the CSVs' folder)."""
    import csv

    import edgecv
    from edgecv.results import DebuggerRow, Inspection, QuantizerRow

    lines = []
    result = edgecv.inspect(tiny_run, samples=16, out=tmp_path / "py", log=lines.append)
    assert isinstance(result, Inspection) and result.skipped == {} and result.activations == 8
    assert result.debugger and {type(row) for row in result.debugger} == {DebuggerRow}
    assert result.quantizer and {type(row) for row in result.quantizer} == {QuantizerRow}
    errors = [row.rmse_over_scale for row in result.debugger]
    assert errors == sorted(errors, reverse=True)
    assert {"weights", "activations"} <= set(result.rounding) and result.rounding_on
    assert result.files == {"debugger": tmp_path / "py" / "quant_debug.csv",
                            "quantizer": tmp_path / "py" / "quant_validate.csv"}
    with open(result.files["quantizer"], newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [row["tensor"] for row in written] == [row.tensor for row in result.quantizer]
    assert list(written[0]) == list(result.quantizer[0].to_dict())

    printed = cli("inspect", tiny_run, "--samples", "16", "--out", tmp_path / "cli", "--json")
    assert printed.returncode == 0, printed.stderr[-2000:]
    record, ours = json.loads(printed.stdout), result.to_dict()
    assert record["files"] == {"debugger": str(tmp_path / "cli" / "quant_debug.csv"),
                               "quantizer": str(tmp_path / "cli" / "quant_validate.csv")}
    for each in (record, ours):
        del each["files"], each["rounding"]["seconds"]
    assert record == ours


@pytest.mark.tf
def test_an_over_budget_conversion_raises_with_the_conversion_attached(tiny_run, tmp_path,
                                                                       monkeypatch):
    import edgecv
    from edgecv.converters import rounding, verify
    from edgecv.results import Conversion

    real = verify.verify_artifact

    def worse_int8(row, path, run, keras_scores):
        real(row, path, run, keras_scores)
        if path.name == "model_int8.tflite":
            row.accuracy -= 0.05
        return row

    monkeypatch.setattr(verify, "verify_artifact", worse_int8)
    monkeypatch.setattr(rounding, "rounding_split", lambda *args, **kwargs: None)
    with pytest.raises(edgecv.AccuracyDropError, match=r"lost .* more than `max_drop` 1.0") \
            as info:
        edgecv.convert(tiny_run, ["int8"], out=tmp_path, calib_samples=50, log=None)
    conversion = info.value.conversion
    assert isinstance(conversion, Conversion) and conversion.out_dir == tmp_path
    assert conversion.to_dict() == json.loads((tmp_path / "conversion.json").read_text())
    assert conversion.row("int8").accuracy_drop_pp > 1.0


@pytest.mark.tf
def test_convert_refuses_before_loading(tiny_run, tmp_path):
    import edgecv

    with pytest.raises(edgecv.UsageError, match="unknown format 'int9'"):
        edgecv.convert(tiny_run, ["int9"], out=tmp_path)
    tflite = tiny_run / "export" / "model_int8.tflite"
    with pytest.raises(edgecv.UsageError, match=r"add `formats=\['mcu'\]`"):
        edgecv.convert(tflite, ["fp16"])
    with pytest.raises(edgecv.UsageError, match=r"`formats=\['fp16'\]`: not for a .tflite"):
        edgecv.convert(tflite, ["fp16", "mcu"])
    assert not any(tmp_path.iterdir())


def test_predict_takes_arrays_without_tensorflow(tiny_run):
    code = (
        "import sys, numpy as np, edgecv; "
        f"p = edgecv.predict({str(tiny_run / 'export' / 'model_int8.tflite')!r}, "
        "[np.full((16, 16), 200, np.uint8)], top_k=1); "
        "print(len(p), len(p[0].top_k), p[0].path, "
        "[m for m in ('tensorflow', 'keras') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "1 1 None []"


@pytest.mark.tf
@pytest.mark.slow
def test_the_pipeline_from_python(tmp_path):
    import edgecv
    from edgecv.results import BenchReport, Conversion, PipelineResult, Run

    rows = []
    result = edgecv.pipeline(model="seed_cnn", img_size=16, epochs=1, out=tmp_path / "run",
                             targets=["cpu"], min_time=0, max_drop=100, log=None,
                             progress=rows.append)
    assert isinstance(result, PipelineResult) and isinstance(result.run, Run)
    assert isinstance(result.conversion, Conversion) and isinstance(result.bench, BenchReport)
    run = tmp_path / "run"
    assert result.report_html == run / "report.html" and result.report_html.is_file()
    assert result.conversion.to_dict() == json.loads((run / "export" / "conversion.json")
                                                     .read_text())
    assert result.to_dict() == json.loads((run / "bench.json").read_text())
    assert [row.format for row in result.conversion.artifacts] == list(edgecv.api.PIPELINE_FORMATS)
    assert rows and {row.target for row in result.bench.rows} == {"cpu"}
