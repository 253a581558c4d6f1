"""The microcontroller target without TensorFlow: the export of a full-int8 .tflite made
elsewhere (`edgecv convert FILE.tflite --mcu`), compiled with the system's C++ compiler; the
resolver table against the kernels the installed TFLite Micro registers; bench rows on the mcu
target and their labels; the fit arithmetic; a file TFLite Micro aborts on; a missing
tflite-micro. The models are built with the TFLite schema (tests/tiny_tflite.py) and run in the
real TFLite Micro interpreter."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from tiny_tflite import tiny_int8_tflite, tiny_tflite, with_card, with_int8_card

pytest.importorskip("tflite_micro", reason="the mcu extra (tflite-micro) is not installed")

# Labels a user's data may carry, each of which would break (or inject into) a C file written
# naively: quotes, backslashes, a newline, a trigraph, a comment end, non-ASCII, a directive.
HOSTILE_LABELS = ['say "hi"', "back\\slash", "two\nlines", "what??=", "*/ int x; /*", "été ☃",
                  '#include "x.h"', "\t tab"]
LABELS = HOSTILE_LABELS + [f"class_{i}" for i in range(64 - len(HOSTILE_LABELS))]
CXX = shutil.which("g++") or shutil.which("c++")


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """A full-int8 .tflite with a card naming its outputs with HOSTILE_LABELS, exported by
    ``edgecv convert FILE.tflite --mcu --mcu-profile nano33ble --mcu-profile 1K,4K``."""
    folder = tmp_path_factory.mktemp("tiny-mcu")
    model = folder / "tiny.tflite"
    model.write_bytes(with_int8_card(tiny_int8_tflite(), LABELS))
    result = run_cli("convert", model, "--mcu", "--mcu-profile", "nano33ble",
                     "--mcu-profile", "1K,4K")
    assert result.returncode == 0, result.stderr
    return model, folder / "tiny_mcu", result


def _compile_and_run(tmp_path: Path, source: str, folder: Path, *files: Path) -> bytes:
    """Compile ``source`` with the export's ``folder`` on the include path (and ``files``),
    warnings as errors, and run it; its stdout."""
    program = tmp_path / "check.cc"
    program.write_text(source)
    binary = tmp_path / "check"
    subprocess.run([CXX, "-std=c++17", "-Wall", "-Werror", "-I", str(folder), str(program),
                    *map(str, files), "-o", str(binary)], check=True, capture_output=True,
                   text=True)
    return subprocess.run([str(binary)], check=True, capture_output=True).stdout


@pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++/c++) on PATH")
def test_the_c_array_holds_the_file_byte_for_byte_16_byte_aligned(tiny_export, tmp_path):
    model, folder, _ = tiny_export
    out = _compile_and_run(tmp_path, """
#include <cstdint>
#include <cstdio>
#include "model_data.h"
int main() {
  std::fwrite(g_model_data, 1, g_model_data_len, stdout);
  std::fprintf(stderr, "%d", static_cast<int>(reinterpret_cast<std::uintptr_t>(g_model_data) % 16));
  return reinterpret_cast<std::uintptr_t>(g_model_data) % 16 != 0;
}""", folder, folder / "model_data.cc")
    assert out == model.read_bytes() == (folder / "model.tflite").read_bytes()


@pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++/c++) on PATH")
def test_the_settings_header_compiles_with_the_labels_and_the_preprocessing(tiny_export,
                                                                           tmp_path):
    from edgecv.card import read_tflite_card
    from edgecv.runtime.base import quantize

    model, folder, _ = tiny_export
    out = _compile_and_run(tmp_path, """
#include <cstdio>
#include <cstring>
#include "model_settings.h"
int main() {
  for (int i = 0; i < kCategoryCount; ++i) std::fwrite(kCategoryLabels[i], 1, std::strlen(kCategoryLabels[i]) + 1, stdout);
  std::printf("|%d %d %d %d %d %zu", kInputHeight, kInputWidth, kInputChannels, kInputZeroPoint,
              kOutputSize, kTensorArenaSize);
  for (int c = 0; c < kInputChannels; ++c)
    for (int v = 0; v < 256; ++v) std::printf(" %d", kPixelToInput[c][v]);
  return 0;
}""", folder)
    *labels, rest = out.split(b"\0")
    assert [label.decode() for label in labels] == LABELS  # every hostile label, intact
    numbers = [int(n) for n in rest.decode().lstrip("|").split()]
    record = json.loads((folder / "mcu.json").read_text())
    assert numbers[:6] == [8, 8, 1, 0, 64, record["arena"]["reserved"]]
    card = read_tflite_card(model.read_bytes())
    expected = card.preprocessing.pixel_table(lambda x: quantize(x, 1 / 16, 0, np.int8))
    assert numbers[6:] == expected[0].tolist()


def test_the_resolver_registers_exactly_the_model_s_operators(tiny_export):
    from edgecv.runtime.tflm import RESOLVER_METHODS

    _, folder, _ = tiny_export
    header = (folder / "model_ops.h").read_text()
    assert "constexpr int kModelOpCount = 2;" in header
    assert "tflite::MicroMutableOpResolver<kModelOpCount>" in header
    assert re.findall(r"resolver\.(Add\w+)\(\)", header) == [RESOLVER_METHODS["RESHAPE"],
                                                             RESOLVER_METHODS["SOFTMAX"]]
    record = json.loads((folder / "mcu.json").read_text())
    assert [(op["op"], op["count"], op["resolver"]) for op in record["ops"]] == [
        ("RESHAPE", 1, "AddReshape"), ("SOFTMAX", 1, "AddSoftmax")]


def test_the_resolver_table_matches_the_kernels_the_installed_tflm_registers():
    """Every operator of the table has a kernel in the installed TFLite Micro, and every builtin
    operator it has a kernel for is in the table (read from the Register_<OP> symbols of its
    library)."""
    from tflite_micro.python.tflite_micro import _runtime

    from edgecv.runtime.tflm import RESOLVER_METHODS
    from edgecv.tflite_schema import builtin_op_names

    library = Path(_runtime.__file__).read_bytes()
    registered = {name.decode() for name in re.findall(rb"Register_([A-Z0-9_]+)Ev", library)}
    builtins = set(builtin_op_names().values())
    assert set(RESOLVER_METHODS) == registered & builtins
    # the method names follow TFLM's spelling of the op: CONV_2D -> AddConv2D
    for op, method in RESOLVER_METHODS.items():
        assert method.lower() == "add" + op.replace("_", "").lower(), op


def test_the_arena_in_mcu_json_is_the_interpreter_s_and_the_verification_is_recorded(tiny_export):
    from edgecv.runtime.tflm import MicroInterpreter, reserved_arena

    _, folder, result = tiny_export
    record = json.loads((folder / "mcu.json").read_text())
    arena = MicroInterpreter((folder / "model.tflite").read_bytes()).arena
    assert {k: record["arena"][k] for k in ("total", "head", "tail")} == arena.to_dict()
    assert record["arena"]["reserved"] == reserved_arena(arena.total) >= arena.total + 1024
    settings = (folder / "model_settings.h").read_text()
    assert f"constexpr size_t kTensorArenaSize = {record['arena']['reserved']};" in settings
    verification = record["verification"]
    assert verification["images"] == 16 and "no test data" in verification["inputs"]
    assert verification["bit_exact_vs_reference_kernels"] is True
    assert verification["agreement_vs_litert"] == 1.0
    assert record["model_bytes"] == (folder / "model.tflite").stat().st_size
    # the tiny model's own plan is already at the bound: the file ships unchanged, and says so
    assert record["plan"]["chosen"] == "tflm" and record["plan"]["saving_bytes"] == 0
    assert record["plan"]["head"] == record["arena"]["head"] >= record["plan"]["lower_bound"]
    assert f"arena {arena.total / 1024:.1f} KiB" in result.stdout


def test_the_fit_says_fits_or_not_with_the_margins(tiny_export):
    _, folder, result = tiny_export
    record = json.loads((folder / "mcu.json").read_text())
    arena, size = record["arena"]["reserved"], record["model_bytes"]
    nano, tiny = record["fit"]
    assert nano["profile"] == "nano33ble" and "nRF52840" in nano["source"]
    assert nano["ram_margin_bytes"] == 256 * 1024 - arena and nano["fits"] is True
    assert nano["flash_margin_bytes"] == 1024 * 1024 - size
    assert tiny["profile"] == "1K,4K" and tiny["ram_bytes"] == 1024 and tiny["flash_bytes"] == 4096
    assert tiny["fits_ram"] is False and tiny["ram_margin_bytes"] == 1024 - arena
    assert tiny["fits"] is False and "not measured" in tiny["not_counted"]
    assert "1K,4K: does not fit" in result.stdout and "nano33ble: fits" in result.stdout
    readme = (folder / "README.md").read_text()
    assert all(word in readme for word in ("Arduino", "Zephyr", "ESP-IDF", "ran nothing on a board"))


def test_fit_arithmetic_and_profile_parsing():
    from edgecv.errors import UsageError
    from edgecv.runtime.boards import BOARDS, fit, fit_text, parse_profile, parse_size

    assert parse_size("256K", "RAM", "x") == parse_size("256kib", "RAM", "x") == 262144
    assert parse_size("1.5M", "flash", "x") == 1572864 and parse_size("100", "RAM", "x") == 100
    record = fit(parse_profile("100K,1M"), 102401, 1048576)
    assert (record["fits_ram"], record["fits_flash"], record["fits"]) == (False, True, False)
    assert record["ram_margin_bytes"] == -1 and record["flash_margin_bytes"] == 0
    assert fit_text(record).startswith("100K,1M: does not fit (arena 100.0 of 100.0 KiB RAM, "
                                       "0.0 KiB short")
    assert all(board.source and board.ram_bytes and board.flash_bytes for board in BOARDS.values())
    for bad in ("", "256K", "abc", "256K,", "0,1M", "1,2,3", "-5K,1M"):
        with pytest.raises(UsageError, match="`mcu_profile`"):
            parse_profile(bad)


@pytest.mark.parametrize("args, fragment", [
    (["--mcu-profile", "256Q,1M"], "the RAM '256Q' is not a size"),
    (["--mcu-profile", "nano33"], "Did you mean 'nano33ble'"),
])
def test_bad_profile_values_are_one_line_exit_2(tiny_export, args, fragment):
    model, _, _ = tiny_export
    for command in (["convert", model, "--mcu"], ["bench", model, "--targets", "mcu"]):
        result = run_cli(*command, *args)
        assert result.returncode == 2 and fragment in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_tflite_is_exported_only_for_a_microcontroller_and_only_into_its_own_folder(
        tiny_export, tmp_path):
    model, _, _ = tiny_export
    result = run_cli("convert", model)
    assert result.returncode == 2 and "add --mcu" in result.stderr
    result = run_cli("convert", model, "--mcu", "--onnx", "--data", "digits")
    assert result.returncode == 2 and "--onnx, --data: not for a .tflite" in result.stderr
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "model_data.cc").write_text("// my own code\n")
    result = run_cli("convert", model, "--mcu", "--out", foreign)
    assert result.returncode == 2 and "refusing to write into" in result.stderr
    assert (foreign / "model_data.cc").read_text() == "// my own code\n"
    assert sorted(p.name for p in foreign.iterdir()) == ["model_data.cc"]


def test_a_file_tflm_aborts_on_is_one_line_and_the_process_survives(tmp_path):
    """A softmax input scale under 2^-26 makes TFLM abort() the process in its Prepare; the
    child process takes the blow."""
    from edgecv.errors import ModelFileError
    from edgecv.runtime.tflm import MicroInterpreter

    bad = tiny_int8_tflite(input_scale=1e-9)
    with pytest.raises(ModelFileError, match=r"aborted \(SIGABRT\)"):
        MicroInterpreter(bad)
    path = tmp_path / "bad.tflite"
    path.write_bytes(bad)
    result = run_cli("convert", path, "--mcu")
    assert result.returncode == 2 and "aborted (SIGABRT)" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "bad_mcu").exists()  # checked before anything was written


def test_an_op_tflm_lacks_and_a_float_model_are_refused_naming_op_and_layer(tmp_path):
    lacking = tmp_path / "gelu.tflite"
    lacking.write_bytes(tiny_int8_tflite(second_op="GELU"))
    result = run_cli("convert", lacking, "--mcu")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "GELU (layer 'probs') has no TFLite Micro kernel" in result.stderr
    floating = tmp_path / "float.tflite"
    floating.write_bytes(tiny_tflite())
    result = run_cli("convert", floating, "--mcu")
    assert result.returncode == 2 and "ADD (tensor 'scores') uses float32 tensors" in result.stderr


# --- bench ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mcu_bench(tmp_path_factory):
    """bench --targets cpu,mcu of: the tiny int8 model with a card and a test set; the same
    without a card (a file made elsewhere); a float model; a model with an op TFLM lacks."""
    from edgecv.benchmarks.suite import BenchSettings, run_benchmark
    from edgecv.runtime.boards import parse_profiles
    from edgecv.testset import save_testset

    folder = tmp_path_factory.mktemp("mcu-bench")
    (folder / "tiny_int8.tflite").write_bytes(with_int8_card(tiny_int8_tflite(), LABELS))
    (folder / "cardless.tflite").write_bytes(tiny_int8_tflite())
    (folder / "float.tflite").write_bytes(with_card(tiny_tflite(), ["a"] * 64))
    (folder / "gelu.tflite").write_bytes(tiny_int8_tflite(second_op="GELU"))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    labels = np.asarray([int(np.argmax(image.reshape(-1))) for image in images])  # brightest pixel
    save_testset(folder / "testset.npz", images, labels, LABELS, [str(i) for i in range(40)])
    paths = sorted(folder.glob("*.tflite"))
    settings = BenchSettings(targets=["cpu", "mcu"], runs=5, min_time_s=0, warmup=1, rounds=3,
                             mcu_profiles=parse_profiles(["nano33ble", "1K,4K"]))
    return run_benchmark(paths, settings, folder / "testset.npz"), folder


def _rows(report, target):
    return {r["artifact"]: r for r in report["rows"] if r["target"] == target}


def test_an_mcu_row_has_arena_fit_agreement_and_only_a_host_reference_time(mcu_bench):
    from edgecv.runtime.tflm import MicroInterpreter, reserved_arena

    report, folder = mcu_bench
    row = _rows(report, "mcu")["tiny_int8.tflite"]
    assert row["status"] == "ok" and row["runtime"] == "tflm"
    arena = MicroInterpreter((folder / "tiny_int8.tflite").read_bytes()).arena
    assert (row["arena_bytes"], row["arena_head_bytes"], row["arena_tail_bytes"]) == (
        arena.total, arena.head, arena.tail)
    assert row["arena_reserved_bytes"] == reserved_arena(arena.total)
    assert row["accuracy"] == _rows(report, "cpu")["tiny_int8.tflite"]["accuracy"]
    assert row["agreement_litert"] == 1.0 and row["max_diff_steps_litert"] == 0
    assert row["agreement_litert_counting_ties"] == 1.0
    assert [f["profile"] for f in row["mcu_fit"]] == ["nano33ble", "1K,4K"]
    assert [f["fits"] for f in row["mcu_fit"]] == [True, False]
    # its time is the host's reference kernels', in fields that say so, never a latency
    low, high = row["host_reference_kernels_p50_ci_ms"]
    assert 0 < low <= row["host_reference_kernels_p50_ms"] <= high
    for key in ("p50_ms", "p50_ci_ms", "mean_ms", "first_ms", "throughput_per_s", "init_ms"):
        assert row[key] is None, key
    assert row["samples_ms"] == []
    assert [choice["target"] for choice in report["recommendations"]] == ["cpu"]


def test_a_file_made_elsewhere_gets_arena_size_and_fit_without_accuracy(mcu_bench):
    report, folder = mcu_bench
    row = _rows(report, "mcu")["cardless.tflite"]
    assert row["status"] == "ok" and row["accuracy"] is None and row["test_images"] is None
    assert row["arena_bytes"] > 0 and row["size_bytes"] == (folder / "cardless.tflite").stat().st_size
    assert row["mcu_fit"][0]["fits"] is True and row["host_reference_kernels_p50_ms"] > 0
    assert _rows(report, "cpu")["cardless.tflite"]["status"] == "failed"  # cpu needs its card


def test_a_float_model_and_an_op_tflm_lacks_are_rows_naming_op_and_layer(mcu_bench):
    report, _ = mcu_bench
    rows = _rows(report, "mcu")
    assert rows["float.tflite"]["status"] == "n/a"
    assert rows["float.tflite"]["reason"].startswith("ADD (tensor 'scores') uses float32 tensors")
    assert rows["gelu.tflite"]["status"] == "n/a"
    assert rows["gelu.tflite"]["reason"] == "GELU (layer 'probs') has no TFLite Micro kernel"
    for row in (rows["float.tflite"], rows["gelu.tflite"]):
        assert row["arena_bytes"] is None and row["host_reference_kernels_p50_ms"] is None


def test_the_reports_label_the_mcu_columns_and_lines(mcu_bench, tmp_path):
    from edgecv.benchmarks.report import markdown_table, write_html

    report, _ = mcu_bench
    markdown = markdown_table(report)
    header = next(line for line in markdown.splitlines() if line.startswith("| artifact"))
    assert header.endswith("| arena KB | agreement vs LiteRT | host reference kernels p50 ms | "
                           "fits |")
    assert "nano33ble yes, 1K,4K no" in markdown
    assert "not a microcontroller's latency" in markdown and "1K,4K: does not fit" in markdown
    write_html(report, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "host<br>reference<br>kernels<br>p50<br>ms" in page and "not counted" in page
    # a report without mcu rows keeps its columns
    cpu_only = {**report, "rows": [r for r in report["rows"] if r["target"] == "cpu"]}
    assert "arena KB" not in markdown_table(cpu_only)
    # where a tie split the runtimes, the cell says what counting ties gives
    tied = {**report, "rows": [{**r, "agreement_litert": 0.992,
                                "agreement_litert_counting_ties": 1.0}
                               if r["target"] == "mcu" and r["status"] == "ok" else r
                               for r in report["rows"]]}
    assert "| 99.20% (100.00% counting ties) |" in markdown_table(tied)


def test_the_recommendation_never_takes_an_mcu_row():
    from edgecv.benchmarks.recommend import recommend_deployments

    def row(target, p50, artifact):
        return {"target": target, "status": "ok", "format": "tflite_int8", "artifact": artifact,
                "path": artifact, "runtime": "litert", "threads": None, "batch": 1,
                "accuracy": 0.9, "size_bytes": 10, "p50_ms": p50, "p50_ci_ms": [p50, p50]}

    # even an mcu row that (wrongly) carried a p50 faster than every other is never chosen
    rows = [row("cpu", 1.0, "a.tflite"), row("mcu", 0.001, "a.tflite")]
    assert [c["target"] for c in recommend_deployments(rows, 1.0)] == ["cpu"]
    assert recommend_deployments([row("mcu", 0.001, "a.tflite")], 1.0) == []


def test_profiles_apply_to_the_mcu_target_only():
    from edgecv.benchmarks.suite import BenchSettings
    from edgecv.errors import UsageError
    from edgecv.runtime.boards import parse_profiles

    with pytest.raises(UsageError, match="add mcu to `targets`"):
        BenchSettings(targets=["cpu"], mcu_profiles=parse_profiles(["pico"]))


def test_all_targets_leave_mcu_to_be_asked_for_by_name():
    from edgecv.runtime.targets import parse_targets

    assert "mcu" not in parse_targets("all") and parse_targets("cpu,mcu") == ["cpu", "mcu"]


def test_without_tflite_micro_the_mcu_row_says_how_to_install_it(tiny_export, tmp_path):
    """A tflite_micro package that cannot be imported stands for a machine without the extra."""
    from edgecv.runtime.tflm import INSTALL_HINT

    model, _, _ = tiny_export
    fake = tmp_path / "fake" / "tflite_micro"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no tflite-micro here')\n")
    env = {"PYTHONPATH": str(fake.parent)}
    result = run_cli("bench", model, "--targets", "mcu", "--json", tmp_path / "b.json", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [(r["status"], r["reason"]) for r in rows] == [
        ("unavailable", f"tflite-micro is not installed: {INSTALL_HINT}")]
    result = run_cli("convert", model, "--mcu", "--out", tmp_path / "out", env=env)
    assert result.returncode == 1 and INSTALL_HINT in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
