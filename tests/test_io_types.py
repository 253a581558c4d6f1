"""`edgecv convert --int8 --io` uint8 (the default: the raw pixels), int8 and float32: the file
has that input type, the standard metadata on all but int8, and predict, camera and bench take
each of them through the card, with the same answers."""

import json

import numpy as np
import pytest

from conftest import run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]
IMAGES = 40


@pytest.fixture(scope="module")
def images(tiny_run, tmp_path_factory):
    """The first test-split images of the tiny run as PNG files, and their true labels."""
    import cv2

    from edgecv.testset import load_testset

    testset = load_testset(tiny_run / "export" / "testset.npz")
    folder = tmp_path_factory.mktemp("io-images")
    for i in range(IMAGES):
        assert cv2.imwrite(str(folder / f"{i:03d}.png"), testset.x[i])
    return folder, [testset.labels[y] for y in testset.y[:IMAGES]]


@pytest.mark.parametrize("io", ["uint8", "int8", "float32"])
def test_predict_camera_and_bench_take_each_int8_io_type(tiny_run, images, tmp_path, io):
    from edgecv.card import read_tflite_card
    from edgecv.tflite_metadata import pixel_quantization, read_tflite_metadata

    folder, truth = images
    out = tmp_path / io
    option = [] if io == "uint8" else ["--io", io]  # uint8 is the default
    converted = run_cli("convert", tiny_run, "--int8", *option, "--calib-samples", "100",
                        "--max-drop", "100", "--out", out)
    assert converted.returncode == 0, converted.stderr[-2000:]
    model = out / "model_int8.tflite"
    data = model.read_bytes()
    card = read_tflite_card(data)
    assert card.input_dtype == card.output_dtype == io
    assert (read_tflite_metadata(data) is None) == (io == "int8")
    if io == "uint8":  # the raw pixels, whatever range calibration saw
        scale, zero_point = pixel_quantization(card.preprocessing)
        assert card.input_quantization.scale == pytest.approx(scale, rel=1e-6)
        assert card.input_quantization.zero_point == zero_point

    predicted = run_cli("predict", model, folder, "--json")
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    labels = [json.loads(line)["label"] for line in predicted.stdout.splitlines()]
    assert len(labels) == IMAGES and np.mean([a == b for a, b in zip(labels, truth)]) >= 0.7

    camera = run_cli("camera", model, "--source", folder, "--headless", "--json", "-")
    assert camera.returncode == 0, camera.stderr[-2000:]
    records = [json.loads(line) for line in camera.stdout.splitlines() if line.strip()]
    assert [r["label"] for r in records if "label" in r] == labels

    report = tmp_path / "bench.json"
    bench = run_cli("bench", model, "--targets", "cpu", "--runs", "5", "--min-time", "0",
                    "--json", report)
    assert bench.returncode == 0, bench.stderr[-2000:]
    rows = json.loads(report.read_text())["rows"]
    assert [row["status"] for row in rows] == ["ok"] and rows[0]["p50_ms"] > 0
