"""The real phone client: MediaPipe Tasks' ImageClassifier (mediapipe 1.2.3, in a cached venv of
its own: tests/mediapipe_env.py says why), given only the path of a file edgecv convert wrote.

A 3-channel run (seed_cnn on the CIFAR-10 fixture) converted as a user would: its fp32 file and
its int8 file (the default --io uint8) load, MediaPipe's categories are edgecv's labels, and its
top-1 equals edgecv predict's on the 600 fixture photos. The photos are handed to both as
lossless PNGs of the pixels edgecv decodes, so both clients see the same pixels: MediaPipe's own
JPEG decoder differs from OpenCV's by a level here and there, which moves near-tied scores
(measured once on a similar run, from the JPEGs: fp32 598 and int8 594 of 600 equal). The int8 file with --io int8 carries no
metadata and says why. A 1-channel model: MediaPipe Tasks refuses it (RGB only)."""

import json
from pathlib import Path

import numpy as np
import pytest

import mediapipe_env
from conftest import run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]

CIFAR = Path(__file__).parent / "data" / "cifar10_mini"


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    """seed_cnn trained 12 epochs on the 32x32 RGB fixture, converted with `edgecv convert
    --int8` (fp32 and int8, default --io) and again with --io int8 into RUN/export_int8io."""
    from edgecv.training import TrainConfig, train

    run = tmp_path_factory.mktemp("mediapipe") / "run"
    train(TrainConfig(data=str(CIFAR), model="seed_cnn", img_size=32, epochs=12,
                      tensorboard=False, out=str(run)), log=lambda _: None)
    for extra in ([], ["--io", "int8", "--out", run / "export_int8io"]):
        done = run_cli("convert", run, "--int8", "--calib-samples", "100", "--max-drop", "100",
                       *extra)
        assert done.returncode == 0, done.stderr[-2000:]
    return run


@pytest.fixture(scope="module")
def same_pixels(tmp_path_factory):
    """Every fixture photo as decoded by edgecv (OpenCV), written back losslessly as PNG."""
    import cv2

    from edgecv.images import read_image

    folder = tmp_path_factory.mktemp("pixels")
    paths = []
    for source in sorted(CIFAR.rglob("*.jpg")):
        path = folder / f"{source.parent.name}_{source.stem}.png"
        assert cv2.imwrite(str(path), read_image(source))
        paths.append(path)
    return paths


def _edgecv_top1(model: Path, images: list[Path]) -> list[str]:
    done = run_cli("predict", model, *images, "--json", "--top-k", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line)["label"] for line in done.stdout.splitlines()]


@pytest.mark.parametrize("file", ["model_fp32.tflite", "model_int8.tflite"])
def test_mediapipe_classifies_edgecv_s_file_as_edgecv_predict_does(rgb_run, same_pixels, file):
    from edgecv.card import read_tflite_card

    model = rgb_run / "export" / file
    labels = read_tflite_card(model.read_bytes()).labels
    result = mediapipe_env.classify(model, same_pixels)
    assert "error" not in result, result  # without the metadata: refused (float: no
    # NormalizationOptions; uint8: loads with empty names)
    for categories in result["results"]:
        assert {index: name for index, name, _ in categories} == dict(enumerate(labels))
    mediapipe_top1 = [categories[0][1] for categories in result["results"]]
    edgecv_top1 = _edgecv_top1(model, same_pixels)
    agreement = np.mean([a == b for a, b in zip(mediapipe_top1, edgecv_top1)])
    assert len(mediapipe_top1) == len(edgecv_top1) == 600 and agreement >= 0.995, agreement


def test_an_int8_io_file_has_no_metadata_and_says_why(rgb_run):
    from edgecv.card import read_tflite_card
    from edgecv.tflite_metadata import read_tflite_metadata

    model = rgb_run / "export_int8io" / "model_int8.tflite"
    data = model.read_bytes()
    assert read_tflite_metadata(data) is None
    why = read_tflite_card(data).extra["tflite_metadata"]
    assert why.startswith("none: its input is int8") and "--io uint8" in why
    info = run_cli("info", model)
    assert info.returncode == 0 and f"metadata  {why}" in info.stdout
    result = mediapipe_env.classify(model, [])
    assert "uint8/float32" in result["error"] and "INT8" in result["error"]


def test_mediapipe_refuses_a_one_channel_model(tiny_run, same_pixels):
    """tiny_run is 16x16 grayscale: its metadata says GRAYSCALE (true, and what the Task Library
    reads), and MediaPipe Tasks 1.2.3 takes RGB images only."""
    from edgecv.tflite_metadata import read_tflite_metadata

    model = tiny_run / "export" / "model_fp32.tflite"
    assert read_tflite_metadata(model.read_bytes()).color_space == "GRAYSCALE"
    result = mediapipe_env.classify(model, same_pixels[:1])
    assert result == {"error": "Only RGB color space is supported for now."}
