"""`edgecv inspect --quant`: per-layer quantization error of a run, a model file or any float
.tflite, from the TF QuantizationDebugger and from the AI Edge Quantizer."""

import csv
import re

import numpy as np
import pytest

from conftest import run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_quantizer_view_sees_the_outlier_and_int16_activations_recover_it(outlier_run):
    """On a model built to quantize badly (one channel 300x the others: per-tensor int8 crushes
    the rest), the quantizer's SNR ranks the layers after the outlier worst and the one before
    it best; the int16-activation recipe raises them by a measured margin (on this fixture:
    conv2 19 -> 35 dB, the worst tensor 17 -> 33 dB)."""
    from edgecv.converters.aeq import tensor_errors
    from edgecv.converters.tflite import to_tflite_fp32

    fp32 = to_tflite_fp32(outlier_run.model)
    calibration, samples = outlier_run.calibration[:100], outlier_run.test_x[:32]
    int8 = tensor_errors(fp32, calibration, samples, activation_bits=8)
    int16 = tensor_errors(fp32, calibration, samples, activation_bits=16)
    assert [r["snr_db"] for r in int8] == sorted(r["snr_db"] for r in int8)  # worst first
    assert {r["tensor"] for r in int8} == {r["tensor"] for r in int16}
    assert {r["op"] for r in int8} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}

    def snr(rows, layer):
        return next(r["snr_db"] for r in rows if f"/{layer}_" in r["tensor"].split(";")[0])

    assert "/conv1_" in int8[-1]["tensor"].split(";")[0]  # the layer before the outlier: best
    assert snr(int8, "conv1") > 35 and snr(int8, "conv2") < 25
    assert snr(int16, "conv2") > snr(int8, "conv2") + 10
    assert int16[0]["snr_db"] > int8[0]["snr_db"] + 10


def test_inspect_any_float_tflite_and_the_run(tiny_run, tmp_path):
    """A run's fp32 .tflite: its card gives the preprocessing and its source run the images; the
    TF view is skipped (no TensorFlow model), said in one line. The run itself: both views."""
    tflite = tiny_run / "export" / "model_fp32.tflite"
    # the quantization view is the default: no --quant needed (it was refused without)
    result = run_cli("inspect", tflite, "--out", tmp_path / "t", "--top", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "AI Edge Quantizer: worst 3 of" in result.stdout
    assert "debugger view skipped: the TF QuantizationDebugger needs the TensorFlow model" \
        in result.stderr
    assert "rounding view skipped: the int8 rounding apart needs the Keras model" in result.stderr
    rows = read_rows(tmp_path / "t" / "quant_validate.csv")
    assert len(rows) >= 4 and not (tmp_path / "t" / "quant_debug.csv").exists()
    snr = [float(r["snr_db"]) for r in rows]
    assert snr == sorted(snr) and all(0.0 < float(r["cosine"]) <= 1.0001 for r in rows)

    result = run_cli("inspect", "--quant", tiny_run, "--out", tmp_path / "r", "--activations",
                     "16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "TF QuantizationDebugger" in result.stdout and "int16 activations" in result.stdout
    assert re.search(r"int8 rounding apart, on the validation split \(stratified sample of "
                     r"\d+ images\): weights alone \d+\.\d\d% agreement \(\d+ flips\), "
                     r"activations alone \d+\.\d\d% \(\d+ flips, \d+ exact ties\)",
                     result.stdout.replace("\n", " ")), result.stdout
    assert read_rows(tmp_path / "r" / "quant_debug.csv")
    sixteen = read_rows(tmp_path / "r" / "quant_validate.csv")
    assert min(float(r["snr_db"]) for r in sixteen) > min(snr)  # 16-bit activations lose less


def test_inspect_a_tflite_edgecv_did_not_write(tmp_path):
    """A float .tflite without a card takes --data and the normalisation flags, like a Keras
    model file; without them, or given an int8 file, one line and exit 2."""
    from edgecv.converters.tflite import to_tflite_fp32, to_tflite_int8
    from edgecv.models import create_model

    model = create_model("seed_cnn", input_shape=(16, 16, 1))
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(to_tflite_fp32(model))
    result = run_cli("inspect", "--quant", plain, "--data", "digits", "--scale", "1/255",
                     "--samples", "16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_rows(tmp_path / "quant_validate.csv")  # beside the file by default
    again = run_cli("inspect", "--quant", plain, "--data", "digits", "--scale", "1/255",
                    "--samples", "16")  # its own CSV is replaced
    assert again.returncode == 0, again.stderr[-2000:]

    missing = run_cli("inspect", "--quant", plain)
    assert missing.returncode == 2 and "--data" in missing.stderr and "--scale" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    quantized = tmp_path / "int8.tflite"
    quantized.write_bytes(to_tflite_int8(model, np.random.default_rng(0).random(
        (8, 16, 16, 1), dtype=np.float32)))
    refused = run_cli("inspect", "--quant", quantized, "--data", "digits", "--scale", "1/255")
    assert refused.returncode == 2 and "already quantized" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    # a file of that name edgecv did not write is kept, and nothing runs
    (tmp_path / "quant_validate.csv").write_text("my notes\n")
    kept = run_cli("inspect", "--quant", plain, "--data", "digits", "--scale", "1/255",
                   "--samples", "16")
    assert kept.returncode == 2 and "refusing to replace" in kept.stderr
    assert len(kept.stderr.strip().splitlines()) == 1
    assert (tmp_path / "quant_validate.csv").read_text() == "my notes\n"
