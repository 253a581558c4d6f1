"""Corrupt and foreign model files through the device-side commands (no TensorFlow): one line,
a non-zero exit, never a crash, a hang or a giant allocation."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import run_cli
from tiny_tflite import tiny_tflite, with_card

BAD_FILES = {
    "empty.tflite": b"",
    "random.tflite": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "photo.tflite": b"\x89PNG\r\n\x1a\n" + bytes(500),
    "truncated.tflite": with_card(tiny_tflite(), ["a"])[:300],
    "huge.tflite": tiny_tflite(declared_shape=(1, 300_000, 300_000, 1)),
    "empty.onnx": b"",
    "random.onnx": bytes(range(256)) * 8,
}


@pytest.fixture
def image(tmp_path):
    import cv2

    path = tmp_path / "img.png"
    cv2.imwrite(str(path), np.zeros((16, 16), np.uint8))
    return path


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_predict_refuses_bad_model_in_one_line(tmp_path, image, name):
    model = tmp_path / name
    model.write_bytes(BAD_FILES[name])
    result = run_cli("predict", model, image, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0]


def test_bench_lists_every_bad_model_as_a_failed_row(tmp_path):
    for name, content in BAD_FILES.items():
        (tmp_path / name).write_bytes(content)
    result = run_cli("bench", *sorted(tmp_path.iterdir()), "--targets", "cpu", "--runs", "3",
                     "--min-time", "0", "--json", tmp_path / "report.json", timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    import json

    rows = json.loads((tmp_path / "report.json").read_text())["rows"]
    assert sorted(r["artifact"] for r in rows) == sorted(BAD_FILES)
    assert all(r["status"] == "failed" and r["reason"] and r["p50_ms"] is None for r in rows)


def test_bit_flipped_models_never_crash_the_process(tmp_path):
    """200 copies of a valid model with 3 random bits flipped, loaded and run in a child
    process (a segfault would kill it): each either runs with finite scores of the right shape
    or is refused with one line naming the file. Some load and run with silently changed
    scores (shared/RUNTIME_FACTS.md): the SHA-256 that convert records catches those too, so
    with ``--checksum refuse`` every one of the 200 is refused."""
    source = tmp_path / "good.tflite"
    source.write_bytes(with_card(tiny_tflite(), ["a"]))
    code = textwrap.dedent(f"""
        import hashlib, json, numpy as np, pathlib
        from edgecv.errors import DataError, ModelFileError
        from edgecv.runtime import open_backend
        good = pathlib.Path({str(source)!r}).read_bytes()
        folder = pathlib.Path({str(tmp_path)!r})
        path = folder / "flipped.tflite"
        (folder / "conversion.json").write_text(json.dumps({{"artifacts": [
            {{"file": path.name, "sha256": hashlib.sha256(good).hexdigest()}}]}}))
        x = np.zeros((1, 8, 8, 1), np.float32)
        with open_backend(folder / "good.tflite", checksum="off") as backend:
            expected = backend.run(x)
        result = {{}}
        for policy in ("off", "refuse"):
            rng = np.random.default_rng(1)
            outcome = {{"ran": 0, "changed": 0, "bad_scores": 0, "refused": 0, "messages": []}}
            for _ in range(200):
                data = bytearray(good)
                for position in rng.integers(0, len(data) * 8, 3):
                    data[position // 8] ^= 1 << (position % 8)
                path.write_bytes(bytes(data))
                try:
                    with open_backend(path, checksum=policy) as backend:
                        scores = backend.run(x)
                except (ModelFileError, DataError) as exc:
                    outcome["refused"] += 1
                    outcome["messages"].append(str(exc))
                    continue
                outcome["ran"] += 1
                outcome["bad_scores"] += (scores.shape != expected.shape
                                          or not np.isfinite(scores).all())
                outcome["changed"] += not np.array_equal(scores, expected)
            result[policy] = outcome
        print(json.dumps(result))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    off, refuse = outcomes["off"], outcomes["refuse"]
    assert off["ran"] > 0 and off["refused"] > 0  # both outcomes happen, so both are checked
    assert off["bad_scores"] == 0  # a file that runs gives finite scores of the right shape
    assert off["changed"] > 0  # some run with silently changed weights...
    assert refuse["ran"] == 0 and refuse["refused"] == 200  # ...which the recorded SHA-256 stops
    for message in off["messages"] + refuse["messages"]:
        assert "flipped.tflite" in message and "\n" not in message, message  # one line, named


def test_a_bad_thread_count_is_named_not_blamed_on_the_model(tmp_path, image):
    """LiteRT's own 'num_threads should >= 1' used to surface as 'not a valid TFLite model'."""
    model = tmp_path / "good.tflite"
    model.write_bytes(with_card(tiny_tflite(), ["a"]))
    result = run_cli("predict", model, image, "--threads", "0", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --threads must be at least 1, received 0."
