"""`edgecv convert`: every artifact is written atomically, carries its card, and is verified."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from conftest import run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained_run(tiny_run):
    """The session's small trained run (conftest); every test here writes to its own out_dir."""
    return tiny_run


@pytest.fixture(scope="module")
def converted(trained_run, tmp_path_factory):
    from edgecv.converters.convert import convert_run
    from edgecv.converters.formats import FORMATS

    out = tmp_path_factory.mktemp("export")
    report = convert_run(trained_run, list(FORMATS), out_dir=out, calib_samples=100,
                         max_drop=100, log=lambda _: None)
    return out, report


def test_every_format_is_written_with_checksums(converted):
    from edgecv.converters.formats import FORMATS

    out, report = converted
    rows = {row.format: row for row in report.artifacts}
    assert list(rows) == list(FORMATS)
    for fmt, row in rows.items():
        data = (out / FORMATS[fmt]).read_bytes()
        assert row.sha256 == hashlib.sha256(data).hexdigest()
        assert row.size_bytes == len(data)
    assert json.loads((out / "conversion.json").read_text()) == report.to_dict()
    assert report.out_dir == out
    assert not [p.name for p in out.iterdir() if ".partial" in p.name]


def test_conversion_json_keeps_the_keys_and_order_of_the_dict_built_rows(converted):
    """Every format's row, typed from birth (ConversionRow), writes the keys the dict-built rows
    wrote, in their order (tests/data/conversion_keys.json, written by that code for this
    conversion); the typed record reads the file back to the same bytes."""
    from conversion_keys import expected_key_order, key_order

    from edgecv.converters.edgetpu import find_compiler
    from edgecv.results import Conversion

    out, _ = converted
    found, expected = key_order(out / "conversion.json"), expected_key_order("every_format")
    if find_compiler() is not None:  # a compiled Edge TPU model is not verified here
        found.pop("edgetpu"), expected.pop("edgetpu")
    assert found == expected
    text = (out / "conversion.json").read_text()
    assert json.dumps(Conversion.from_dict(json.loads(text)).to_dict(), indent=2) + "\n" == text


def test_every_tflite_file_carries_the_standard_metadata_beside_its_card(converted):
    """The mixed, QAT, Edge TPU and microcontroller files too: each describes what its card says
    (here every input is float32 or uint8 raw pixels, so none is left without)."""
    from edgecv.card import read_tflite_card
    from edgecv.tflite_metadata import classifier_metadata, read_tflite_metadata

    out, _ = converted
    files = sorted(out.rglob("*.tflite"))
    assert {"model_int8_qat.tflite", "model_edgetpu.tflite", "mcu/model.tflite"} <= {
        path.relative_to(out).as_posix() for path in files}
    for path in files:
        data = path.read_bytes()
        card = read_tflite_card(data)
        assert read_tflite_metadata(data) == classifier_metadata(card), path.name
        assert "tflite_metadata" not in card.extra


def test_artifacts_match_the_keras_model(converted):
    out, report = converted
    rows = {row.format: row for row in report.artifacts}
    assert rows["fp32"].max_abs_diff < 1e-4 and rows["fp32"].agreement == 1.0
    assert rows["onnx"].max_abs_diff < 1e-4 and rows["onnx"].agreement == 1.0
    assert rows["fp16"].max_abs_diff < 1e-2 and rows["fp16"].agreement >= 0.99
    for fmt in ("dynamic", "int8", "int16x8", "onnx_int8"):
        assert rows[fmt].agreement >= 0.95, (fmt, rows[fmt])
        assert rows[fmt].accuracy_drop_pp <= 3.0, (fmt, rows[fmt])
    assert rows["int8"].size_ratio_vs_fp32 < 0.35
    # per-class rows: every class of the test split, counts adding up, the worst one named
    per_class = rows["int8"].per_class
    assert sum(r["count"] for r in per_class) == report.test_images and len(per_class) == 10
    worst = max(per_class, key=lambda r: r["drop_pp"])
    assert rows["int8"].worst_class["drop_pp"] == worst["drop_pp"]
    assert report.keras_accuracy > 0.5  # a real, trained model (10 classes)


def test_tflite_files_carry_the_serving_signature(converted):
    """The frozen-graph conversion writes no SignatureDef; every TFLite file gets TF's
    ``serving_default`` back, and a signature runner gives the verified scores."""
    from ai_edge_litert.interpreter import Interpreter

    out, _ = converted
    for name in ("model_fp32.tflite", "model_int8.tflite", "model_int16x8.tflite"):
        interpreter = Interpreter(model_path=str(out / name))
        assert interpreter.get_signature_list() == {
            "serving_default": {"inputs": ["input"], "outputs": ["output_0"]}}, name
        assert interpreter.get_input_details()[0]["name"] == "input"
    interpreter = Interpreter(model_path=str(out / "model_fp32.tflite"))
    shape = interpreter.get_input_details()[0]["shape"]
    images = np.random.default_rng(0).random((1, *shape[1:]), dtype=np.float32)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    expected = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    scores = interpreter.get_signature_runner()(input=images)["output_0"]
    assert scores.shape == (1, 10) and np.array_equal(scores, expected)


def test_frozen_graph_is_made_once_per_conversion(tmp_path, monkeypatch):
    """Every TFLite build of one conversion reuses one frozen graph (tracing and freezing once
    is what keeps `--all` near the cost of its slowest artifact)."""
    from edgecv.converters.tflite import to_tflite_dynamic, to_tflite_fp16, to_tflite_fp32
    from edgecv.models import create_model
    from edgecv.modelfile.reference import KerasReference

    traced = []
    original = KerasReference.concrete_function

    def counting(self, batch=None):
        traced.append(batch)
        return original(self, batch)

    monkeypatch.setattr(KerasReference, "concrete_function", counting)
    reference = KerasReference(create_model("seed_cnn", input_shape=(16, 16, 1)))
    sizes = [len(build(reference)) for build in (to_tflite_fp32, to_tflite_fp16,
                                                  to_tflite_dynamic)]
    assert traced == [None] and sizes[0] > sizes[1] > sizes[2]


def test_sharded_verification_gives_the_scores_of_one_session(converted, trained_run):
    """Verification splits the test images over one session per core; each image's scores are
    the ones a single session gives (LiteRT, including the int16x8 reference kernels, and ORT)."""
    from edgecv.converters.load import load_run
    from edgecv.converters.verify import artifact_scores

    out, _ = converted
    x = load_run(trained_run, calib_samples=10).test_x[:200]
    for name in ("model_fp32.tflite", "model_int16x8.tflite", "model_int8.onnx"):
        single = artifact_scores(out / name, x, workers=1)
        assert np.array_equal(artifact_scores(out / name, x, workers=3), single), name


def test_conversion_reports_progress_and_keeps_table_order(trained_run, tmp_path):
    """Builds go on while earlier artifacts are verified on another thread; the progress
    callback says what is being built and verified, and the rows and log lines keep table
    order."""
    from edgecv.converters.convert import convert_run

    lines, status = [], []
    report = convert_run(trained_run, ["int16x8", "onnx", "fp16"], out_dir=tmp_path,
                         calib_samples=20, max_drop=100, log=lines.append,
                         progress=status.append)
    order = ["fp32", "fp16", "int16x8", "onnx"]
    assert [row.format for row in report.artifacts] == order
    logged = [line.split()[0] for line in lines if line.split()[0] in order]
    assert logged == order
    assert [text.split()[1] for text in status if text.startswith("building")] == order
    assert status[0] == "building fp32 (1 of 4)"
    assert all(row.verify_s > 0 and row.agreement > 0.9 for row in report.artifacts)


def test_int8_model_is_integer_only_with_int8_io(converted):
    from edgecv.converters.tflite import integer_only_violations
    from edgecv.runtime import open_backend

    out, _ = converted
    data = (out / "model_int8.tflite").read_bytes()
    assert integer_only_violations(data, io="uint8") == []  # --io uint8, the default
    with open_backend(out / "model_int8.tflite") as backend:
        assert backend.card.input_dtype == "uint8" and backend.card.output_dtype == "uint8"
        # the raw pixels (scale 1/255, zero point 0 for pixel / 255), not the calibrated range
        assert backend.card.input_quantization.scale == pytest.approx(1 / 255, rel=1e-6)
        assert backend.card.input_quantization.zero_point == 0
    # a float model is, of course, not integer-only: the check can fail
    assert integer_only_violations((out / "model_fp32.tflite").read_bytes())


def test_card_travels_in_every_artifact(converted, trained_run):
    from edgecv.runtime import read_card
    from edgecv.converters.formats import FORMATS
    from edgecv.preprocessing import Preprocessing

    out, _ = converted
    config = json.loads((trained_run / "config.json").read_text())
    for fmt, name in FORMATS.items():
        card = read_card(out / name)
        assert card.labels == config["labels"], fmt
        assert card.preprocessing == Preprocessing.from_dict(config["preprocessing"]), fmt
        # the microcontroller export ships the int8 file byte for byte, its card included
        assert card.format.endswith("int8" if fmt == "mcu" else fmt), (fmt, card.format)


def test_onnx_runs_in_opencv_dnn_like_keras(converted, trained_run):
    import cv2

    from edgecv.modelfile.keras_file import load_keras_model

    out, _ = converted
    model = load_keras_model(trained_run / "model.keras")
    x = np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 1)).astype(np.float32)
    net = cv2.dnn.readNetFromONNX(str(out / "model.onnx"))
    net.setInput(x)
    np.testing.assert_allclose(net.forward(), model.predict(x, verbose=0), atol=1e-4)


def test_uint8_io_for_edge_pipelines(trained_run, tmp_path):
    from edgecv.converters.convert import convert_run
    from edgecv.runtime import open_backend

    report = convert_run(trained_run, ["int8"], out_dir=tmp_path, io="uint8", calib_samples=50,
                         max_drop=100, log=lambda _: None)
    assert report.row("int8").agreement >= 0.95
    with open_backend(tmp_path / "model_int8.tflite") as backend:
        assert backend.card.input_dtype == "uint8"
        assert backend.card.input_quantization.zero_point == 0


def test_accuracy_drop_over_budget_fails_after_writing_the_report(trained_run, tmp_path, monkeypatch):
    from edgecv.converters import convert, rounding, verify
    from edgecv.errors import AccuracyDropError

    real = verify.verify_artifact

    def worse_int8(row, path, run, keras_scores):
        real(row, path, run, keras_scores)
        if path.name == "model_int8.tflite":
            row.accuracy -= 0.05
        return row

    def broken_split(*args, **kwargs):
        raise RuntimeError("the twin would not convert")

    monkeypatch.setattr(verify, "verify_artifact", worse_int8)
    # the rounding split is a diagnosis: when it fails, one line says so and the report is still
    # written, with the usual way out
    monkeypatch.setattr(rounding, "rounding_split", broken_split)
    lines = []
    with pytest.raises(AccuracyDropError, match=r"model_int8.tflite lost \d+\.\d+ pp.*`max_drop` 1.0"
                       r".*\. Next: `recover` keeps the layers that lose most in float, or `qat`"):
        convert.convert_run(trained_run, ["int8"], out_dir=tmp_path, calib_samples=50,
                            max_drop=1.0, log=lines.append)
    report = json.loads((tmp_path / "conversion.json").read_text())
    assert [r["format"] for r in report["artifacts"]] == ["fp32", "int8"]
    assert any(line.strip() == "int8 rounding apart not measured: the twin would not convert"
               for line in lines), lines
    assert "rounding" not in report["artifacts"][1]


def test_a_failing_write_leaves_nothing_behind(trained_run, tmp_path, monkeypatch):
    from pathlib import Path

    from edgecv.converters.convert import convert_run

    original = Path.write_bytes

    def dies_halfway(self, data):
        original(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", dies_halfway)
    with pytest.raises(OSError):
        convert_run(trained_run, [], out_dir=tmp_path, log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_cli_json_output_is_clean_and_errors_are_one_line(trained_run, tmp_path):
    # --max-drop 100: this test is about the output; on this small test split one image that
    # int8 flips is over 1 pp (the default budget), which a retrained fixture can do
    result = run_cli("convert", trained_run, "--int8", "--json", "--out", tmp_path / "x",
                     "--calib-samples", "50", "--max-drop", "100")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)  # nothing but JSON on stdout
    assert [r["format"] for r in report["artifacts"]] == ["fp32", "int8"]

    missing = run_cli("convert", tmp_path / "nope", "--int8")
    assert missing.returncode == 2 and "'nope' does not exist" in missing.stderr.replace(
        str(tmp_path / "nope"), "nope")
    (tmp_path / "empty").mkdir()
    not_a_run = run_cli("convert", tmp_path / "empty", "--int8")
    assert not_a_run.returncode == 2 and "not an edgecv run directory" in not_a_run.stderr
    bad_io = run_cli("convert", trained_run, "--int8", "--io", "int4", "--out", tmp_path / "y")
    assert bad_io.returncode == 2 and "--io must be one of int8, uint8, float32" in bad_io.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    no_dir = run_cli("convert", trained_run, "--out", blocker / "sub")
    assert no_dir.returncode == 2 and "cannot write to output directory" in no_dir.stderr
    bad_mix = run_cli("convert", trained_run, "--int8", "--recover", "--recover-mix", "fast",
                      "--out", tmp_path / "z")
    assert bad_mix.returncode == 2 and "--recover-mix value 'fast'" in bad_mix.stderr
    assert not (tmp_path / "z").exists()  # refused before anything loads or is written
    bad_agreement = run_cli("convert", trained_run, "--int8", "--min-agreement", "150",
                            "--out", tmp_path / "w")
    assert bad_agreement.returncode == 2
    assert "--min-agreement is a percentage in (0, 100], received 150" in bad_agreement.stderr
    assert not (tmp_path / "w").exists()
    for result in (missing, bad_io, no_dir, bad_mix, bad_agreement):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_convert_replaces_no_file_it_did_not_write(trained_run, tmp_path):
    """Issue 31's rule for convert's --out: a folder holding files under convert's names that
    convert did not write is refused in one line, before loading, with every file kept; a
    folder convert wrote is written into again (its conversion.json marks it)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "model_fp32.tflite").write_bytes(b"my own model")
    (project / "conversion.json").write_text('{"my": "notes"}')
    result = run_cli("convert", trained_run, "--out", project)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "refusing to write into" in result.stderr and "'model_fp32.tflite'" in result.stderr
    assert (project / "model_fp32.tflite").read_bytes() == b"my own model"
    assert (project / "conversion.json").read_text() == '{"my": "notes"}'

    for _ in range(2):
        again = run_cli("convert", trained_run, "--out", tmp_path / "export",
                        "--calib-samples", "20", "--max-drop", "100")
        assert again.returncode == 0, again.stderr[-2000:]


def test_info_prints_card_io_and_ops(converted):
    out, _ = converted
    result = run_cli("info", out / "model_int8.tflite")
    assert result.returncode == 0, result.stderr
    assert "CONV_2D x2" in result.stdout and "int8 scale=" in result.stdout
    assert '"tflite_int8"' in result.stdout
    corrupt = out.parent / "corrupt.tflite"
    corrupt.write_bytes((out / "model_int8.tflite").read_bytes()[:500])
    bad = run_cli("info", corrupt)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_edgetpu_static_report_passes_a_compatible_model(converted):
    from edgecv.converters.edgetpu import static_report

    out, _ = converted
    report = json.loads((out / "edgetpu_report.json").read_text())
    assert report["static"]["first_unsupported"] is None
    assert report["static"]["ops_on_cpu"] == 0
    if shutil.which("edgetpu_compiler") is None:  # where it is installed, it really compiles
        assert report["compiler"]["status"] == "absent"
        assert "not found on PATH" in report["compiler"]["reason"]
    else:
        assert report["compiler"]["status"] == "compiled"
    # the float model is not Edge TPU material: flagged at its first op
    float_report = static_report((out / "model_fp32.tflite").read_bytes())
    assert float_report["first_unsupported"] == 0
    assert "float32, not int8/uint8" in float_report["operators"][0]["problems"][0]


@pytest.mark.parametrize("io", ["int8", "uint8", "float32"])
def test_an_int8_tflite_file_carried_to_onnx_computes_what_the_file_computes(io, tmp_path):
    """from_tflite (--qat's ONNX file, --recover's carried mix): the TFLite file's own int8
    graph in ONNX, whatever its I/O type: float32 in and out under edgecv's names, scores within
    two output steps of LiteRT's (measured here: identical) and the same argmax."""
    import keras
    import onnxruntime as ort

    from edgecv.converters.onnx import INPUT_NAME, OUTPUT_NAME, from_tflite
    from edgecv.converters.tflite import to_tflite_int8
    from edgecv.converters.verify import artifact_scores

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="input")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.Add()([x, keras.layers.Conv2D(8, 1)(x)])  # a residual add, as in resnet8
    outputs = keras.layers.Dense(5, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    samples = np.random.default_rng(0).uniform(0, 1, (64, 8, 8, 3)).astype(np.float32)
    data = to_tflite_int8(keras.Model(inputs, outputs), samples[:32], io=io)
    proto = from_tflite(data)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [(v.name, v.type) for v in session.get_inputs()] == [(INPUT_NAME, "tensor(float)")]
    assert [(v.name, v.type) for v in session.get_outputs()] == [(OUTPUT_NAME, "tensor(float)")]
    (tmp_path / "model.tflite").write_bytes(data)
    (tmp_path / "model.onnx").write_bytes(proto.SerializeToString())
    litert = artifact_scores(tmp_path / "model.tflite", samples)  # dequantized by the backend
    carried = artifact_scores(tmp_path / "model.onnx", samples)
    assert np.abs(carried - litert).max() <= 2 / 256 + 1e-6
    assert (carried.argmax(1) == litert.argmax(1)).mean() >= 0.95


def test_a_uint8_input_takes_the_raw_pixels_whatever_calibration_saw():
    """Calibration images that never reach 0 or 255, and a mean and std other than 0 and 1:
    the converter's uint8 input range is theirs, so the raw pixels a phone client copies into
    the tensor would be read wrongly; with_pixel_input makes the input the pixels themselves,
    and only the QUANTIZE behind it changes its work."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from edgecv.converters.tflite import to_tflite_int8, with_pixel_input
    from edgecv.preprocessing import Preprocessing
    from edgecv.tflite_metadata import pixel_quantization

    pre = Preprocessing(8, 8, 3, mean=(0.5,), std=(0.25,))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(
        keras.layers.Flatten()(x)))
    rng = np.random.default_rng(0)
    calibration = pre.normalize(rng.integers(60, 200, (64, 8, 8, 3), dtype=np.uint8))
    plain = to_tflite_int8(model, calibration, io="uint8")
    data = with_pixel_input(plain, pre)
    pixels = rng.integers(60, 200, (32, 8, 8, 3), dtype=np.uint8)
    expected = model.predict(pre.normalize(pixels), verbose=0)

    def fed_raw_pixels(model_bytes):
        interpreter = Interpreter(model_content=model_bytes)
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        scores = []
        for image in pixels:
            interpreter.set_tensor(inp["index"], image[None])
            interpreter.invoke()
            scale, zero_point = out["quantization"]
            scores.append((interpreter.get_tensor(out["index"])[0].astype(np.int64) - zero_point)
                          * scale)
        return inp["quantization"], np.array(scores)

    quantization, scores = fed_raw_pixels(data)
    wanted = pixel_quantization(pre)  # 1 / 63.75 and 128
    assert quantization[0] == pytest.approx(wanted[0], rel=1e-6) and quantization[1] == wanted[1]
    assert np.abs(scores - expected).max() <= 0.05
    calibrated, _ = fed_raw_pixels(plain)
    assert calibrated != quantization  # what the converter chose differs: the test can fail


def test_edgetpu_static_report_finds_where_the_graph_splits():
    import keras

    from edgecv.converters.edgetpu import static_report
    from edgecv.converters.tflite import to_tflite_int8

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.LeakyReLU(name="leaky")(x)  # int8 in TFLite, but no Edge TPU kernel
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    samples = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype(np.float32)
    data = to_tflite_int8(keras.Model(inputs, outputs), samples, io="uint8", static_batch=True)
    report = static_report(data)
    first = report["operators"][report["first_unsupported"]]
    assert first["op"] == "LEAKY_RELU" and "not supported by the Edge TPU" in first["problems"][0]
    assert report["ops_on_edgetpu"] == report["first_unsupported"] >= 2  # QUANTIZE, CONV_2D
    assert "run on the CPU" in report["summary"]


FAKE_COMPILER = """#!/bin/sh
# Test double for edgetpu_compiler: same arguments, same output file name, a log in its format.
[ "$FAIL" = 1 ] && { echo "ERROR: Didn't find op for builtin opcode 'ELU'" >&2; exit 1; }
out="$3"; model="$4"; name=$(basename "$model" .tflite)
cp "$model" "$out/${name}_edgetpu.tflite"
cat <<LOG
Edge TPU Compiler version 16.0.384591198
Input: $model
Output: $out/${name}_edgetpu.tflite

Operator                       Count      Status

CONV_2D                        2          Mapped to Edge TPU
SOFTMAX                        1          Mapped to Edge TPU
Number of operations that will run on Edge TPU: 3
Number of operations that will run on CPU: 0
LOG
"""


def test_edgetpu_compiler_is_run_and_its_log_parsed(trained_run, tmp_path, monkeypatch):
    from edgecv.converters import convert
    from edgecv.errors import EdgecvError

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "edgetpu_compiler").write_text(FAKE_COMPILER)
    (bin_dir / "edgetpu_compiler").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    report = convert.convert_run(trained_run, ["edgetpu"], out_dir=tmp_path / "out",
                                 calib_samples=20, max_drop=100, log=lambda _: None)
    row = report.row("edgetpu")
    assert row.edgetpu["compiler"] == "compiled" and row.verified.startswith("no:")
    compiler = json.loads((tmp_path / "out" / "edgetpu_report.json").read_text())["compiler"]
    assert compiler["ops_on_edgetpu"] == 3 and compiler["ops_on_cpu"] == 0
    assert {"op": "CONV_2D", "count": 2, "status": "Mapped to Edge TPU"} in compiler["operators"]

    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(EdgecvError, match=r"edgetpu_compiler failed \(exit 1\): ERROR: "):
        convert.convert_run(trained_run, ["edgetpu"], out_dir=tmp_path / "out2", calib_samples=20,
                            log=lambda _: None)
    assert not (tmp_path / "out2" / "model_edgetpu.tflite").exists()


def test_recover_on_a_model_that_does_not_drop_keeps_nothing_in_float(trained_run, tmp_path):
    """--recover acts only on an int8 model over budget; the real recovery, on a model that
    really loses accuracy in int8, is tests/test_quant_real.py."""
    from edgecv.converters import convert

    report = convert.convert_run(trained_run, ["int8"], out_dir=tmp_path, calib_samples=50,
                                 max_drop=100, recover=True, log=lambda _: None)
    assert [r.format for r in report.artifacts] == ["fp32", "int8"]
    assert not (tmp_path / "model_int8_mixed.tflite").exists()


def test_calibration_is_recorded_and_calib_data_replaces_it(trained_run, tmp_path):
    """By default a stratified sample of the run's TRAIN split calibrates (never a test image);
    --calib-data calibrates on another source, recorded in conversion.json."""
    from edgecv.data import load_dataset

    result = run_cli("convert", trained_run, "--int8", "--json", "--out", tmp_path / "a",
                     "--calib-samples", "60", "--max-drop", "100")
    assert result.returncode == 0, result.stderr[-2000:]
    calibration = json.loads(result.stdout)["calibration"]
    assert calibration["source"] == "digits" and calibration["split"] == "train"
    assert calibration["count"] == 60 and sorted(calibration["per_class"].values()) == [6] * 10
    split = json.loads((trained_run / "split.json").read_text())
    assert split["train"] and not set(split["train"]) & set(split["test"])

    images = load_dataset("digits", 16, 16, 1).train.x[:40]
    npz = tmp_path / "calib.npz"
    np.savez(npz, x=images[..., 0], y=np.arange(40) % 10)
    result = run_cli("convert", trained_run, "--int8", "--json", "--out", tmp_path / "b",
                     "--calib-data", npz, "--calib-samples", "30", "--max-drop", "100")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["calibration"]["source"] == str(npz) and report["calibration"]["count"] == 30
    assert sorted(report["calibration"]["per_class"].values()) == [3] * 10
    row = [r for r in report["artifacts"] if r["format"] == "int8"][0]
    assert len(row["per_class"]) == 10 and row["worst_class"]["class"] in report_labels(trained_run)

    normalised_otherwise = tmp_path / "float.npz"
    np.savez(normalised_otherwise, x=(images.astype(np.float32) / 127.5 - 1))  # -1..1, not 0..1
    bad = run_cli("convert", trained_run, "--int8", "--out", tmp_path / "c",
                  "--calib-data", normalised_otherwise)
    assert bad.returncode == 2 and "not normalised like the model's input" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c" / "model_int8.tflite").exists()


def report_labels(run):
    return (run / "labels.txt").read_text().split()


def test_inspect_quant_writes_the_ranked_csv(trained_run, tmp_path):
    import csv

    result = run_cli("inspect", "--quant", trained_run, "--out", tmp_path, "--top", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RMSE/scale" in result.stdout
    with (tmp_path / "quant_debug.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    values = [float(r["rmse_over_scale"]) for r in rows]
    assert len(rows) >= 4 and values == sorted(values, reverse=True)
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {r["op"] for r in rows}


def test_an_op_without_builtin_kernel_is_named_with_its_layer():
    import keras
    import tensorflow as tf

    from edgecv.converters.tflite import to_tflite_fp32
    from edgecv.errors import ConversionError

    class Invert(keras.layers.Layer):
        def call(self, x):
            return tf.reshape(tf.linalg.inv(tf.reshape(x, (-1, 2, 2))), (-1, 4))

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(Invert(name="invert")(inputs)), name="odd")
    with pytest.raises(ConversionError) as info:
        to_tflite_fp32(model)
    message = str(info.value)
    assert "tf.MatrixInverse (layer 'invert') has no builtin TFLite kernel" in message
    assert "\n" not in message


@pytest.mark.parametrize("samples, fragment", [
    (np.zeros((0, 16, 16, 1), np.float32), "non-empty"),
    (np.zeros((16, 16, 1), np.float32), "received shape (16, 16, 1)"),
])
def test_bad_calibration_data_is_refused(samples, fragment):
    from edgecv.converters.onnx import CalibrationReader
    from edgecv.converters.tflite import representative_samples
    from edgecv.errors import UsageError

    with pytest.raises(UsageError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        representative_samples(samples)
    with pytest.raises(UsageError):
        CalibrationReader(samples)


def test_unknown_format_suggests_the_closest(trained_run):
    from edgecv.converters.convert import convert_run
    from edgecv.errors import UsageError

    with pytest.raises(UsageError, match="Did you mean 'int8'"):
        convert_run(trained_run, ["int9"], log=lambda _: None)


def test_onnx_int8_weights_leave_the_u8s8_int16_pair_sums_room():
    """ONNX Runtime's U8S8 kernels on x86 without VNNI (AVX2) add pairs of u8*s8 products into a
    saturating int16. With 8-bit weights a bright image under a same-sign 3x3 kernel (the resnet8
    stem on digits) came out wrong: 92.9% instead of 99.6%. A tiny model with that structure."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgecv.converters.onnx import to_onnx_int8

    rng = np.random.default_rng(0)
    weights = np.concatenate([np.ones((1, 1, 3, 3)), rng.normal(0, 0.3, (3, 1, 3, 3))])
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
         helper.make_node("Conv", ["nchw", "w", "b"], ["scores"], pads=[1, 1, 1, 1])],
        "stem", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 8, 8, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 4, 8, 8])],
        [numpy_helper.from_array(weights.astype(np.float32), "w"),
         numpy_helper.from_array(np.zeros(4, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    images = (rng.random((16, 8, 8, 1)) > 0.5).astype(np.float32)  # pixels 0 or 1 -> u8 0 or 255

    quantized = to_onnx_int8(model, images)

    def run(proto):
        session = ort.InferenceSession(proto.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, {"input": images})[0]

    expected = run(model)
    # 8-bit weights: off by ~4 (of 9) on an AVX2 CPU; the output step is ~0.05.
    assert np.abs(run(quantized) - expected).max() < 0.02 * np.ptp(expected)
    # Not only on this CPU: 2 * 255 * 64 < 2**15, so no pair sum can saturate anywhere.
    conv_weights = [numpy_helper.to_array(t) for t in quantized.graph.initializer
                    if t.data_type == TensorProto.INT8 and len(t.dims) == 4]
    assert conv_weights and all(np.abs(w.astype(int)).max() <= 64 for w in conv_weights)


def test_the_format_table_selects_in_order_and_refuses_before_loading():
    """convert_run's loop follows the table: fp32 first, table order, each format's own checks."""
    from edgecv.converters.formats import (FORMAT_TABLE, FORMATS, SELECT_TF_OPS_FORMATS, Settings,
                                           selected_formats)
    from edgecv.errors import UsageError

    assert FORMATS == {name: spec.file for name, spec in FORMAT_TABLE.items()}
    assert SELECT_TF_OPS_FORMATS == ("fp32", "fp16", "dynamic")
    chosen = selected_formats(["onnx_int8", "int8", "onnx"], Settings())
    assert [spec.name for spec in chosen] == ["fp32", "int8", "onnx", "onnx_int8"]
    with pytest.raises(UsageError, match="`qat_epochs` must be at least 1, received 0"):
        selected_formats(["int8_qat"], Settings(qat_epochs=0))
    with pytest.raises(UsageError, match="int8, edgetpu cannot use Flex ops"):
        selected_formats(["int8", "edgetpu"], Settings(select_tf_ops=True))
    with pytest.raises(UsageError, match="unknown format 'int9'"):
        selected_formats(["int9"], Settings())
