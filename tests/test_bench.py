"""`edgecv bench`, `predict` and `pipeline` on a real trained and converted run.

The accuracy bench measures must equal what `convert` verified (same images, same runtimes,
one inference path); absent targets are rows with reasons and no numbers; bad files are rows
that failed, not crashes.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]

FORMATS = ["tflite_fp32", "tflite_fp16", "tflite_int8", "onnx", "onnx_int8", "keras"]
MEASURED = ("p50_ms", "p90_ms", "throughput_per_s", "init_ms", "accuracy", "size_bytes")


@pytest.fixture(scope="module")
def bench_report(tiny_run):
    from edgecv.benchmarks.suite import BenchSettings, discover, find_testset, run_benchmark

    artifacts = discover([tiny_run])
    settings = BenchSettings(threads=[1, 2], runs=20, min_time_s=0, warmup=2)
    return run_benchmark(artifacts, settings, find_testset(artifacts))


def test_every_artifact_is_measured_on_cpu_in_format_order(bench_report):
    cpu = [r for r in bench_report["rows"] if r["target"] == "cpu"]
    assert [r["format"] for r in cpu] == [f for f in FORMATS for _ in ((1, 2) if f != "keras" else (None,))]
    assert [r["threads"] for r in cpu] == [1, 2] * 5 + [None]
    for row in cpu:
        assert row["status"] == "ok", row
        assert row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["runs"] >= 20 and len(row["samples_ms"]) == row["runs"]
        assert row["throughput_per_s"] == pytest.approx(1000 / row["mean_ms"])
        assert row["init_ms"] > 0 and row["first_ms"] > 0 and row["preprocess_ms"] > 0
        assert row["peak_rss_mb"] > 50


def test_bench_accuracy_equals_what_convert_verified(bench_report, tiny_run):
    conversion = json.loads((tiny_run / "export" / "conversion.json").read_text())
    verified = {row["file"]: row["accuracy"] for row in conversion["artifacts"]}
    verified["model.keras"] = conversion["keras_accuracy"]
    images = conversion["test_images"]
    for row in bench_report["rows"]:
        if row["status"] == "ok":
            assert row["test_images"] == images
            assert abs(row["accuracy"] - verified[row["artifact"]]) <= 1 / images, row["artifact"]


def test_speedup_is_against_the_same_family_fp32(bench_report):
    rows = {(r["format"], r["threads"]): r for r in bench_report["rows"] if r["target"] == "cpu"}
    for threads in (1, 2):
        fp32, int8 = rows["tflite_fp32", threads], rows["tflite_int8", threads]
        assert fp32["speedup_vs_fp32"] == 1.0
        assert int8["speedup_vs_fp32"] == round(fp32["p50_ms"] / int8["p50_ms"], 3)
        onnx, onnx_int8 = rows["onnx", threads], rows["onnx_int8", threads]
        assert onnx_int8["baseline"] == "model.onnx"
        assert onnx_int8["speedup_vs_fp32"] == round(onnx["p50_ms"] / onnx_int8["p50_ms"], 3)
    assert rows["keras", None]["speedup_vs_fp32"] is None


def test_absent_targets_are_one_row_each_with_reasons_and_no_numbers(bench_report):
    # Judge only the targets this machine really lacks: on a machine with the hardware the
    # target's rows are measured instead, and that is right too.
    absent = [t for t in ("gpu", "tpu", "edgetpu") if _target_absent(t)]
    others = [r for r in bench_report["rows"] if r["target"] in absent]
    assert [r["target"] for r in others] == absent  # one row per absent target
    reasons = {r["target"]: r["reason"] for r in others}
    fragments = {"gpu": ["no CUDA/TensorRT provider"], "tpu": ["no TPU found"],
                 "edgetpu": ["libedgetpu", "not compiled for the Edge TPU"]}
    for row in others:
        assert all(f in reasons[row["target"]] for f in fragments[row["target"]])
        assert row["status"] == "unavailable"
        assert all(row[key] is None for key in MEASURED) and row["samples_ms"] == []


def test_rows_are_timed_in_rounds_with_an_interval(bench_report):
    assert bench_report["settings"]["rounds"] == 9
    for row in bench_report["rows"]:
        if row["status"] == "ok":
            low, high = row["p50_ci_ms"]
            # the interval is kept to 5 decimals, min and max are not
            assert row["rounds"] == 9
            assert round(row["min_ms"], 5) <= low <= high <= round(row["max_ms"], 5)
        else:
            assert row["p50_ci_ms"] is None and row["rounds"] is None


def test_the_report_opens_with_the_fastest_row_within_budget(bench_report, tiny_run):
    (choice,) = bench_report["recommendations"]  # only the cpu target was measured here
    assert choice["max_drop_from"].endswith("conversion.json")  # convert's budget: 100 pp
    cpu = [r for r in bench_report["rows"] if r["target"] == "cpu" and r["status"] == "ok"]
    fastest = min(cpu, key=lambda r: r["p50_ms"])
    tied = [r for r in cpu if r["tied_with_best"]]
    assert fastest in tied
    for row in tied:  # every tied row's interval overlaps the fastest one's
        assert row["p50_ci_ms"][0] <= fastest["p50_ci_ms"][1]
        assert fastest["p50_ci_ms"][0] <= row["p50_ci_ms"][1]
    chosen = next(r for r in tied if r["artifact"] == choice["artifact"]
                  and r["threads"] == choice["threads"])
    assert chosen["size_bytes"] == min(r["size_bytes"] for r in tied)
    assert choice["fps"] == round(1000 / chosen["p50_ms"], 1)  # the report's own rounding


def test_a_tight_budget_excludes_what_lost_accuracy(tiny_run):
    from edgecv.benchmarks.suite import BenchSettings, discover, find_testset, run_benchmark

    artifacts = discover([tiny_run])
    settings = BenchSettings(targets=["cpu"], runs=5, min_time_s=0, warmup=1, rounds=3,
                             max_drop=0.0)
    report = run_benchmark(artifacts, settings, find_testset(artifacts))
    (choice,) = report["recommendations"]
    keras = next(r for r in report["rows"] if r["format"] == "keras")
    assert choice["max_drop_from"] == "--max-drop"
    assert choice["accuracy"] >= keras["accuracy"]
    lost = [r["artifact"] for r in report["rows"] if r["accuracy"] < keras["accuracy"]]
    assert all(f"{name} x" in choice["reason"] for name in lost if name != "model.keras")


def test_batch_rows_report_images_per_second(tiny_run):
    from edgecv.benchmarks.suite import BenchSettings, discover, find_testset, run_benchmark

    artifacts = [p for p in discover([tiny_run], include_keras=False)
                 if p.name in ("model_int8.tflite", "model.onnx")]
    settings = BenchSettings(targets=["cpu"], batches=[1, 4], runs=10, min_time_s=0, warmup=1,
                             rounds=3)
    report = run_benchmark(artifacts, settings, find_testset(artifacts))
    rows = {(r["artifact"], r["batch"]): r for r in report["rows"]}
    assert set(rows) == {(a.name, b) for a in artifacts for b in (1, 4)}
    for artifact in artifacts:
        one, four = rows[artifact.name, 1], rows[artifact.name, 4]
        assert four["p50_ms"] > one["p50_ms"]  # four images take longer than one
        assert four["throughput_per_s"] == pytest.approx(4000 / four["mean_ms"])
        assert four["accuracy"] == one["accuracy"]
    (choice,) = report["recommendations"]
    assert rows[choice["artifact"], 1]["tied_with_best"] is True  # chosen among batch-1 rows
    assert all(rows[a.name, 4]["tied_with_best"] is None for a in artifacts)
    assert report["settings"]["batches"] == [1, 4]


def test_onnx_int8_rows_say_how_many_convolutions_run_in_integers(bench_report):
    rows = {r["format"]: r for r in bench_report["rows"] if r["target"] == "cpu"}
    kernels = rows["onnx_int8"]["integer_kernels"]
    assert kernels["quantized"] >= 2 and kernels["integer"] + kernels["float"] == kernels["quantized"]
    assert "QLinearConv" in kernels["ops"] or kernels["float"] == kernels["quantized"]
    assert rows["onnx"]["integer_kernels"] is None and rows["tflite_int8"]["integer_kernels"] is None
    assert bench_report["machine"]["int8"]["outlook"]


def test_machine_and_settings_are_recorded(bench_report):
    assert bench_report["machine"]["cores"] >= 1 and "ai-edge-litert" in bench_report["machine"]["versions"]
    assert bench_report["settings"]["threads"] == [1, 2]
    assert bench_report["settings"]["input"] == "test images"


def test_cli_writes_every_report_format(tiny_run, tmp_path):
    out = {name: tmp_path / f"bench.{name}" for name in ("json", "md", "html")}
    result = run_cli("bench", tiny_run, "--targets", "cpu,edgetpu", "--runs", "10", "--min-time", "0",
                     "--no-keras", "--json", out["json"], "--md", out["md"], "--html", out["html"])
    assert result.returncode == 0, result.stderr
    rows = json.loads(out["json"].read_text())["rows"]
    if not _target_absent("edgetpu"):
        pytest.skip("this machine has an Edge TPU: the row is measured, not explained")
    assert [r["status"] for r in rows] == ["ok"] * 5 + ["unavailable"]
    assert "model_int8.tflite" in result.stdout and "[1] the Edge TPU runtime" in result.stdout
    assert result.stdout.startswith("deploy ") and "\n  why: the fastest within" in result.stdout
    assert "int8 on this CPU" in result.stdout
    assert out["md"].read_text().startswith(f"# edgecv bench: {tiny_run}\n\n**deploy ")
    assert "| model_int8.tflite | tflite_int8 | cpu | 1 | 1 | ok |" in out["md"].read_text()
    html = out["html"].read_text()
    assert html.count("data:image/png;base64,") >= 2 and "unavailable" in html
    assert f"<title>edgecv bench: {tiny_run}</title>" in html


def test_a_corrupt_file_is_a_failed_row_and_the_rest_go_on(tiny_run, tmp_path):
    corrupt = tmp_path / "broken.tflite"
    corrupt.write_bytes((tiny_run / "export" / "model_int8.tflite").read_bytes()[:5000])
    result = run_cli("bench", tiny_run / "export" / "model_int8.tflite", corrupt, "--targets", "cpu",
                     "--runs", "5", "--min-time", "0", "--json", tmp_path / "b.json")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: 1 row(s) failed: broken.tflite on cpu" in result.stderr
    rows = {r["artifact"]: r for r in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert rows["model_int8.tflite"]["status"] == "ok" and rows["model_int8.tflite"]["accuracy"] > 0.5
    assert rows["broken.tflite"]["status"] == "failed"
    assert "not a valid TFLite model" in rows["broken.tflite"]["reason"]


def test_a_changed_artifact_warns_or_is_refused(tiny_run, tmp_path):
    from edgecv.card import embed_tflite_card, read_tflite_card

    export = tmp_path / "export"
    shutil.copytree(tiny_run / "export", export)
    path = export / "model_int8.tflite"
    card = read_tflite_card(path.read_bytes())
    card.labels = list(reversed(card.labels))  # a plausible, silent tampering
    path.write_bytes(embed_tflite_card(path.read_bytes(), card))
    warned = run_cli("bench", path, "--targets", "cpu", "--runs", "5", "--min-time", "0")
    assert warned.returncode == 0, warned.stderr
    assert "warning: " in warned.stderr and "does not match the SHA-256 recorded" in warned.stderr
    refused = run_cli("bench", path, "--targets", "cpu", "--runs", "5", "--min-time", "0",
                      "--checksum", "refuse")
    assert refused.returncode == 1 and "does not match the SHA-256" in refused.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--targets", "cpu,npu"], "unknown target 'npu'"),
    (["--threads", "1,x"], "--threads takes counts like 1,2,4"),
    (["--threads", "0"], "--threads must list counts of at least 1"),
    (["--runs", "0"], "--runs must be at least 1"),
    (["--checksum", "maybe"], "--checksum must be one of warn, refuse, off"),
    (["--batch", "0,8"], "--batch must list sizes of at least 1"),
    (["--batch", "8,x"], "--batch takes counts like 1,8,32"),
    (["--rounds", "0"], "--rounds must be at least 1"),
    (["--max-drop", "-1"], "--max-drop must be 0 or more"),
])
def test_bench_usage_errors_are_one_line_exit_2(tiny_run, args, fragment):
    result = run_cli("bench", tiny_run, *args)
    assert result.returncode == 2 and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bench_of_a_missing_path_or_empty_folder(tmp_path):
    missing = run_cli("bench", tmp_path / "nope")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    empty = run_cli("bench", tmp_path)
    assert empty.returncode == 2 and "no .tflite, .onnx or .keras model found" in empty.stderr


# --- predict ------------------------------------------------------------------------------------

def test_predict_folder_matches_labels_and_reports_bad_images(tiny_run, tmp_path):
    import cv2

    from edgecv.runtime import open_backend
    from edgecv.testset import load_testset

    model = tiny_run / "export" / "model_int8.tflite"
    testset = load_testset(tiny_run / "export" / "testset.npz")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(testset.x[:40]):
        big = cv2.resize(image[..., 0], (48, 48), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((48, 64), np.uint8)
        canvas[:, 8:56] = big  # a wider photo: the centre crop must find the digit
        cv2.imwrite(str(folder / f"{i:03d}_{testset.labels[testset.y[i]]}.png"), canvas)
    (folder / "zzz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(30))
    result = run_cli("predict", model, folder, "--json", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 41
    assert "error" in records[-1] and "zzz_broken.png" in records[-1]["path"]
    good = records[:-1]
    assert all(len(r["top_k"]) == 2 and r["top_k"][0]["score"] >= r["top_k"][1]["score"] for r in good)
    assert all(r["ms"] > 0 and r["label"] == r["top_k"][0]["label"] for r in good)
    with open_backend(model) as backend:  # the same images straight into the model
        direct = backend.run(np.stack([testset.x[i] / np.float32(255) for i in range(40)])).argmax(1)
    predicted = [r["label"] for r in good]
    agreement = np.mean([p == testset.labels[d] for p, d in zip(predicted, direct)])
    assert agreement >= 0.95
    accuracy = np.mean([r["label"] == r["path"].rsplit("_", 1)[1][:-4] for r in good])
    assert accuracy >= np.mean(direct == testset.y[:40]) - 0.05


def test_predict_on_a_run_deploys_what_its_bench_recommends(tiny_run, tmp_path):
    import cv2

    from edgecv.testset import load_testset

    benched = tmp_path / "benched"
    shutil.copytree(tiny_run, benched)
    bench = run_cli("bench", benched, "--targets", "cpu", "--threads", "1,2", "--runs", "10",
                    "--min-time", "0", "--no-keras", "--json", benched / "bench.json")
    assert bench.returncode == 0, bench.stderr
    run = benched.rename(tmp_path / "run")  # copied to the device: the recorded paths are stale
    choice = json.loads((run / "bench.json").read_text())["recommendations"][0]
    image = tmp_path / "digit.png"
    cv2.imwrite(str(image), load_testset(run / "export" / "testset.npz").x[0])
    result = run_cli("predict", run, image, "--json")
    assert result.returncode == 0, result.stderr
    expected = f"using {run / 'export' / choice['artifact']} with {choice['threads']} thread(s)"
    assert expected in result.stderr and choice["summary"] in result.stderr
    assert json.loads(result.stdout)["top_k"]
    missing = run_cli("predict", tmp_path, image)  # a folder no bench has seen
    assert missing.returncode == 2 and "no bench.json" in missing.stderr


def test_an_int8_model_gets_its_integers_from_one_table_lookup(tiny_run):
    """Normalise-then-quantize of a uint8 pixel is one affine map of 256 values: the deployed
    path builds the int8 batch with a table and skips the float step, with identical scores."""
    from edgecv.classify import Classifier
    from edgecv.errors import DataError
    from edgecv.preprocessing import model_pixels_to_bgr, prepare_image
    from edgecv.runtime import open_backend
    from edgecv.testset import load_testset

    testset = load_testset(tiny_run / "export" / "testset.npz")
    with open_backend(tiny_run / "export" / "model_int8.tflite") as backend:
        classifier = Classifier(backend)
        assert backend.input_quantization is not None and classifier.infer == backend.run_prepared
        for pixels in testset.x[:20]:
            image = model_pixels_to_bgr(pixels)
            batch = classifier.prepare(image)
            assert batch.dtype == np.uint8  # --io uint8, the default
            float_path = backend.run(prepare_image(image, classifier.preprocessing)[None])
            assert np.array_equal(classifier.infer(batch), float_path)
        with pytest.raises(DataError, match="expected"):
            backend.run_prepared(batch.astype(np.float32))
    with open_backend(tiny_run / "export" / "model_fp32.tflite") as backend:
        classifier = Classifier(backend)
        assert backend.input_quantization is None
        image = model_pixels_to_bgr(testset.x[0])
        batch = classifier.prepare(image)
        assert np.array_equal(batch, prepare_image(image, classifier.preprocessing)[None])
        assert np.array_equal(classifier.infer(batch), backend.run(batch))
        with pytest.raises(DataError, match="expected"):
            backend.run_prepared(batch.astype(np.float64))


def test_predict_table_mode_and_errors(tiny_run, tmp_path):
    model = tiny_run / "export" / "model.onnx"
    image = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((20, 20), np.uint8))
    table = run_cli("predict", model, image)
    assert table.returncode == 0 and str(image) in table.stdout and " ms)" in table.stdout
    only_bad = tmp_path / "bad.jpg"
    only_bad.write_bytes(b"not a jpeg")
    failed = run_cli("predict", model, only_bad)
    assert failed.returncode == 1 and "error:" in failed.stdout
    for args, fragment in (([tmp_path / "nope.png"], "does not exist"),
                           ([image, "--fit", "zoom"], "--fit must be one of"),
                           ([image, "--target", "tpuu"], "unknown target 'tpuu'")):
        result = run_cli("predict", model, *args)
        assert result.returncode == 2 and fragment in result.stderr, result.stderr


# --- pipeline -----------------------------------------------------------------------------------

def test_pipeline_trains_converts_benchmarks_and_reports(tmp_path):
    """With --qat, the quantization-aware int8 files (TFLite, and its graph in ONNX) sit beside
    the post-training ones in the conversion table, the bench and the report."""
    from edgecv.converters.verify import disagreements_text

    run = tmp_path / "run"
    result = run_cli("pipeline", "--model", "seed_cnn", "--img-size", "16", "--epochs", "2",
                     "--out", run, "--targets", "cpu,gpu", "--min-time", "0", "--max-drop", "100",
                     "--qat", "--qat-epochs", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("model.keras", "export/model_int8.tflite", "export/model_int8.onnx",
                 "export/model_int8_qat.tflite", "export/model_int8_qat.onnx",
                 "export/conversion.json", "export/testset.npz",
                 "bench.json", "bench.md", "report.html"):
        assert (run / name).is_file(), name
    conversion = json.loads((run / "export" / "conversion.json").read_text())
    qat = next(row for row in conversion["artifacts"] if row["format"] == "int8_qat")
    assert qat["qat"]["epochs"] == 1 and qat["agreement"] > 0.5
    rows = json.loads((run / "bench.json").read_text())["rows"]
    assert (sorted(r["format"] for r in rows if r["status"] == "ok")
            == sorted(FORMATS + ["tflite_int8_qat", "onnx_int8_qat"]))
    gpu = [r["status"] for r in rows if r["target"] == "gpu"]
    assert gpu == ["unavailable"] if _target_absent("gpu") else "unavailable" not in gpu
    html = (run / "report.html").read_text()
    for heading in ("Training", "Conversion and verification"):
        assert heading in html
    assert "worst<br>class" in html and " pp (n=" in html  # the class that lost most, per artifact
    # what each artifact's disagreements are, in words (a 2-epoch model's int8 has some)
    flipped = [r for r in conversion["artifacts"] if (r.get("disagreements") or {}).get("count")]
    assert flipped and all(disagreements_text(r["disagreements"]) in html for r in flipped)
    assert html.count("data:image/png;base64,") >= 4  # curves, confusion matrix, 2 bench plots
    assert "model_int8_qat.tflite" in html and "model_int8_qat.onnx" in html
    assert "report: " in result.stdout


def test_pipeline_recovers_to_min_agreement(tmp_path):
    """--recover with --min-agreement 100: each int8 file that changes an answer is followed by a
    mixed one (chosen on the validation split), which the bench measures and the report lists;
    the exit code says whether the mixed files held on the test split."""
    run = tmp_path / "run"
    result = run_cli("pipeline", "--model", "seed_cnn", "--img-size", "16", "--epochs", "2",
                     "--out", run, "--targets", "cpu", "--min-time", "0", "--max-drop", "100",
                     "--min-agreement", "100", "--recover")
    assert result.returncode in (0, 1), result.stderr[-2000:]
    rows = {r["format"]: r for r in
            json.loads((run / "export" / "conversion.json").read_text())["artifacts"]}
    over = [f for f in ("int8", "onnx_int8") if rows[f]["agreement"] < 1]
    if not over:
        pytest.skip("int8 agreed with Keras on every test image on this CPU: nothing to recover")
    mixed = {"int8": "int8_mixed", "onnx_int8": "onnx_int8_mixed"}
    bench_format = {"int8": "tflite_int8_mixed", "onnx_int8": "onnx_int8_mixed"}
    for name in over:
        row = rows[mixed[name]]
        # kept out of int8: in float, or in int16 (--recover-mix auto may choose either)
        assert (run / "export" / row["file"]).is_file()
        assert row["float_layers"] or row.get("int16_layers")
        assert row["chosen_on"].startswith("validation split")
    for name in {"int8", "onnx_int8"} - set(over):
        assert mixed[name] not in rows  # within budget: nothing to recover
    recovered = all("recovered_by" in rows[name] for name in over)
    assert result.returncode == (0 if recovered else 1)
    if not recovered:
        assert "--min-agreement 100" in result.stderr
    bench = {r["format"] for r in json.loads((run / "bench.json").read_text())["rows"]
             if r["status"] == "ok"}
    html = (run / "report.html").read_text()
    for name in over:
        assert bench_format[name] in bench
        assert rows[mixed[name]]["file"] in html


@pytest.mark.parametrize("flags, fragment", [
    (("--qat", "--qat-epochs", "0"), "--qat-epochs must be at least 1"),
    (("--max-drop", "-1"), "--max-drop must be 0 or more"),
    (("--min-agreement", "0"), "--min-agreement is a percentage in (0, 100]"),
])
def test_pipeline_checks_settings_before_training(tmp_path, flags, fragment):
    result = run_cli("pipeline", "--out", tmp_path / "run", *flags)
    assert result.returncode == 2 and fragment in result.stderr, result.stderr[-500:]
    assert not (tmp_path / "run").exists()  # refused before any training


# --- the device side ----------------------------------------------------------------------------

def test_device_side_imports_no_tensorflow(tiny_run):
    code = ("import sys; from edgecv.runtime import open_backend; import edgecv, edgecv.api, "
            "edgecv.classify, edgecv.benchmarks.suite, edgecv.benchmarks.report; "
            f"b = open_backend({str(tiny_run / 'export' / 'model_int8.tflite')!r}); "
            "print([m for m in ('tensorflow', 'keras', 'sklearn', 'tf2onnx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_device_side_bench_on_every_target_imports_no_tensorflow(tiny_run):
    """What a Raspberry Pi runs: bench the exported files on all targets (every probe included)."""
    code = ("import sys; from edgecv.benchmarks.suite import BenchSettings, discover, find_testset, "
            "run_benchmark; "
            f"a = discover([{str(tiny_run / 'export')!r}], include_keras=False); "
            "r = run_benchmark(a, BenchSettings(runs=3, min_time_s=0, warmup=0), find_testset(a)); "
            "print(sorted({row['status'] for row in r['rows']})); "
            "print([m for m in ('tensorflow', 'keras', 'sklearn', 'tf2onnx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    statuses, imported = out.stdout.strip().splitlines()[-2:]
    assert statuses == "['ok', 'unavailable']" and imported == "[]"


# --- real hardware: these run only where the target exists ---------------------------------------

def _absent(target, runtime):
    from edgecv.runtime.targets import probe

    return probe(target, runtime)


def _target_absent(target):
    """True when no runtime can use ``target`` on this machine (bench then writes one row)."""
    from edgecv.runtime.targets import RUNTIMES

    runtimes = {"gpu": RUNTIMES, "tpu": ("keras",), "edgetpu": ("litert",)}[target]
    return all(_absent(target, runtime) for runtime in runtimes)


@pytest.mark.gpu
@pytest.mark.skipif(bool(_absent("gpu", "onnxruntime")), reason="no ONNX Runtime GPU provider here")
def test_onnx_on_gpu_matches_cpu(tiny_run):
    from edgecv.runtime import open_backend
    from edgecv.testset import load_testset

    x = load_testset(tiny_run / "export" / "testset.npz").x[:32] / np.float32(255)
    with open_backend(tiny_run / "export" / "model.onnx") as cpu, \
            open_backend(tiny_run / "export" / "model.onnx", target="gpu") as gpu:
        assert any(p != "CPUExecutionProvider" for p in gpu.providers)
        np.testing.assert_allclose(gpu.run(x), cpu.run(x), atol=1e-3)


@pytest.mark.tpu
@pytest.mark.skipif(bool(_absent("tpu", "keras")), reason="no TPU here")
def test_keras_on_tpu_matches_cpu(tiny_run):
    from edgecv.runtime import open_backend
    from edgecv.testset import load_testset

    x = load_testset(tiny_run / "export" / "testset.npz").x[:8] / np.float32(255)
    with open_backend(tiny_run / "model.keras") as cpu, \
            open_backend(tiny_run / "model.keras", target="tpu") as tpu:
        np.testing.assert_allclose(tpu.run(x), cpu.run(x), atol=1e-2)


@pytest.mark.edgetpu
@pytest.mark.skipif(bool(_absent("edgetpu", "litert")) or shutil.which("edgetpu_compiler") is None,
                    reason="no Edge TPU (libedgetpu + device) and edgetpu_compiler here")
def test_compiled_model_on_edgetpu_agrees_with_int8(tiny_run, tmp_path):
    from edgecv.converters.convert import convert_run
    from edgecv.runtime import open_backend
    from edgecv.testset import load_testset

    convert_run(tiny_run, ["edgetpu"], out_dir=tmp_path, log=lambda _: None)
    x = load_testset(tiny_run / "export" / "testset.npz").x / np.float32(255)
    with open_backend(tmp_path / "model_edgetpu.tflite", target="edgetpu") as tpu, \
            open_backend(tiny_run / "export" / "model_int8.tflite") as cpu:
        assert (tpu.run(x).argmax(1) == cpu.run(x).argmax(1)).mean() >= 0.98
