"""`edgecv convert RUN --int8 --mcu` on a real trained run, verified in TFLite Micro, and the
bench of what it wrote; a real op TFLite Micro lacks (GELU, which the TFLite converter emits
for a Keras gelu activation in an int8 model), named with its Keras layer."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="the mcu extra (tflite-micro) is not installed")

pytestmark = [pytest.mark.tf, pytest.mark.slow]
CXX = shutil.which("g++") or shutil.which("c++")


@pytest.fixture(scope="module")
def mcu_export(tiny_run, tmp_path_factory):
    """tiny_run converted with --int8 --mcu --mcu-profile pico --mcu-profile 8K,64K."""
    from edgecv.converters.convert import convert_run

    out = tmp_path_factory.mktemp("mcu-convert") / "export"
    lines = []
    report = convert_run(tiny_run, ["int8", "mcu"], out_dir=out, calib_samples=100,
                         max_drop=100, mcu_profiles=["pico", "8K,64K"], log=lines.append)
    return report, out, lines


def test_the_mcu_row_is_verified_in_tflm_against_keras_and_litert(mcu_export):
    report, out, lines = mcu_export
    mcu, int8 = report.row("mcu"), report.row("int8")
    assert mcu.file == "model.tflite" and mcu.from_file == "model_int8.tflite"
    assert (out / "mcu" / "model.tflite").read_bytes() == (out / "model_int8.tflite").read_bytes()
    assert mcu.sha256 == int8.sha256 and mcu.plan["chosen"] == "tflm"
    assert mcu.plan["verified_on"] == {"inputs": report.test_images, "source": "given"}
    # against the Keras model, as every row is (the same figures, the same functions)
    assert mcu.accuracy is not None and mcu.accuracy_drop_pp is not None
    assert abs(mcu.agreement - int8.agreement) <= 0.02 and mcu.per_class
    tflm = mcu.tflm
    assert tflm["images"] == report.test_images and tflm["inputs"] == "test-split images"
    assert tflm["agreement_vs_litert"] >= 0.99
    assert tflm["agreement_vs_litert"] <= tflm["agreement_vs_litert_counting_ties"] <= 1
    # TFLM's reference kernels against LiteRT's: bit-exact, or a step apart on a few outputs
    assert tflm["max_diff_steps_vs_reference_kernels"] <= 1
    assert tflm["outputs_differing_from_reference_kernels"] <= tflm["outputs"] // 100
    assert tflm["bit_exact_vs_reference_kernels"] == (
        tflm["outputs_differing_from_reference_kernels"] == 0)
    assert any(line.startswith("mcu ") and "arena" in line for line in lines)
    assert any("TFLite Micro on" in line and "test-split images" in line for line in lines)


def test_the_export_s_arena_and_fit_are_what_tflm_measures(mcu_export):
    from edgecv.runtime.tflm import MicroInterpreter, reserved_arena

    report, out, _ = mcu_export
    record = json.loads((out / "mcu" / "mcu.json").read_text())
    arena = MicroInterpreter((out / "mcu" / "model.tflite").read_bytes()).arena
    assert {k: record["arena"][k] for k in ("total", "head", "tail")} == arena.to_dict()
    mcu = report.row("mcu")
    assert mcu.arena == record["arena"] and mcu.fit == record["fit"]
    pico, small = record["fit"]
    reserved = reserved_arena(arena.total)
    assert pico["ram_margin_bytes"] == 264 * 1024 - reserved and pico["fits"]
    assert small["ram_margin_bytes"] == 8 * 1024 - reserved and not small["fits_ram"]
    assert record["verification"]["reference_accuracy"] == report.keras_accuracy
    conversion = json.loads((out / "conversion.json").read_text())
    assert [row["format"] for row in conversion["artifacts"]] == ["fp32", "int8", "mcu"]


def test_the_resolver_lists_exactly_the_model_s_operators(mcu_export):
    from edgecv.runtime.tflm import RESOLVER_METHODS
    from edgecv.tflite_schema import operators

    _, out, _ = mcu_export
    ops = list(dict.fromkeys(op.name for op in operators((out / "mcu" / "model.tflite").read_bytes())))
    header = (out / "mcu" / "model_ops.h").read_text()
    assert re.findall(r"resolver\.(Add\w+)\(\)", header) == [RESOLVER_METHODS[op] for op in ops]
    assert f"constexpr int kModelOpCount = {len(ops)};" in header


@pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++/c++) on PATH")
def test_the_c_array_of_a_converted_run_holds_its_int8_file(mcu_export, tmp_path):
    _, out, _ = mcu_export
    program = tmp_path / "dump.cc"
    program.write_text('#include <cstdio>\n#include "model_data.h"\nint main() { '
                       "std::fwrite(g_model_data, 1, g_model_data_len, stdout); return 0; }\n")
    subprocess.run([CXX, "-std=c++17", "-I", str(out / "mcu"), str(program),
                    str(out / "mcu" / "model_data.cc"), "-o", str(tmp_path / "dump")], check=True)
    dumped = subprocess.run([str(tmp_path / "dump")], check=True, capture_output=True).stdout
    assert dumped == (out / "model_int8.tflite").read_bytes()


def test_bench_of_the_export_runs_the_same_tflm_path(mcu_export):
    """bench --targets mcu on what convert wrote: the accuracy TFLM gives through the one
    inference path (uint8 test images, the card's pixel table) is what convert verified."""
    from edgecv.benchmarks.suite import BenchSettings, discover, find_testset, run_benchmark

    report, out, _ = mcu_export
    artifacts = discover([out])
    bench = run_benchmark(artifacts, BenchSettings(targets=["mcu"], runs=5, min_time_s=0,
                                                   warmup=1, rounds=3), find_testset(artifacts))
    rows = {row["artifact"]: row for row in bench["rows"]}
    mcu = report.row("mcu")
    int8 = rows["model_int8.tflite"]
    assert int8["status"] == "ok" and int8["test_images"] == report.test_images
    assert abs(int8["accuracy"] - mcu.accuracy) <= 1 / report.test_images
    assert int8["arena_bytes"] == mcu.arena["total"]
    assert rows["model_fp32.tflite"]["status"] == "n/a"
    assert "uses float32 tensors" in rows["model_fp32.tflite"]["reason"]
    assert bench["recommendations"] == []


@pytest.fixture(scope="module")
def gelu_run():
    """A small CNN with a gelu activation (layer 'gelu_act') as a RunData: the TFLite converter
    writes a GELU op into its int8 file, and TFLite Micro has no GELU kernel."""
    import keras

    from edgecv.converters.rundata import RunData
    from edgecv.preprocessing import Preprocessing
    from pathlib import Path

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(8, 3, name="conv1")(inputs)
    h = keras.layers.Activation("gelu", name="gelu_act")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="head")(h))
    x = np.random.default_rng(0).random((40, 16, 16, 1), dtype=np.float32)
    return RunData(Path("gelu-model"), model, ["a", "b", "c", "d"], Preprocessing(16, 16, 1),
                   x[:20], x[20:], None)


def test_an_op_tflm_lacks_fails_the_mcu_export_naming_op_and_layer(gelu_run, tmp_path):
    from edgecv.converters.convert import convert_run
    from edgecv.errors import ConversionError

    with pytest.raises(ConversionError) as info:
        convert_run(gelu_run, ["int8", "mcu"], out_dir=tmp_path / "out", max_drop=100,
                    log=lambda _: None)
    message = str(info.value)
    assert "GELU (layer 'gelu_act') has no TFLite Micro kernel" in message and "\n" not in message
    assert not (tmp_path / "out" / "mcu").exists()


def test_an_op_tflm_lacks_is_an_n_a_bench_row_naming_op_and_layer(gelu_run, tmp_path):
    from edgecv.benchmarks.suite import BenchSettings, run_benchmark
    from edgecv.converters.tflite import to_tflite_int8

    path = tmp_path / "gelu_int8.tflite"
    path.write_bytes(to_tflite_int8(gelu_run.model, gelu_run.calibration))
    report = run_benchmark([path], BenchSettings(targets=["mcu"], runs=3, min_time_s=0))
    [row] = report["rows"]
    assert (row["status"], row["target"]) == ("n/a", "mcu")
    assert row["reason"] == "GELU (layer 'gelu_act') has no TFLite Micro kernel"
