"""MediaPipe Tasks in a virtualenv of its own, made once and cached, for tests/test_mediapipe.py.

mediapipe 1.2.3 cannot share the test environment: it requires opencv-contrib-python, which
installs the same ``cv2`` package as edgecv's opencv-python (installing one over the other
leaves a cv2 that depends on which came last). So the test makes ``mediapipe-1.2.3`` under
``$EDGECV_MEDIAPIPE_CACHE`` (default ``~/.cache/edgecv``) with this Python's ``venv`` and
``pip install mediapipe==1.2.3`` from the package registry, the first time only (about 650 MB,
a minute or two), and runs the client there in a child process (:data:`CLASSIFY_SCRIPT`).
Without it the test skips, saying why; with ``EDGECV_REQUIRE_MEDIAPIPE=1`` (CI) it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

MEDIAPIPE = "mediapipe==1.2.3"
REQUIRE_ENV = "EDGECV_REQUIRE_MEDIAPIPE"

# Run inside the mediapipe venv: ImageClassifier given only the model path, every image decoded
# by MediaPipe itself (as an app would), all categories; one JSON document on stdout.
CLASSIFY_SCRIPT = r"""
import json, sys
from mediapipe.tasks.python import vision
from mediapipe.tasks.python.core.base_options import BaseOptions
import mediapipe as mp

model, paths = sys.argv[1], json.loads(sys.stdin.read())
try:
    classifier = vision.ImageClassifier.create_from_options(vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=model), max_results=-1))
except Exception as exc:
    print(json.dumps({"error": " ".join(str(exc).split()) or type(exc).__name__}))
    sys.exit(0)
results = []
for path in paths:
    categories = classifier.classify(mp.Image.create_from_file(path)).classifications[0].categories
    results.append([[c.index, c.category_name, float(c.score)] for c in categories])
print(json.dumps({"results": results}))
"""


def _cache_root() -> Path:
    return Path(os.environ.get("EDGECV_MEDIAPIPE_CACHE") or Path.home() / ".cache" / "edgecv")


def _unavailable(reason: str):
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"MediaPipe Tasks is required ({REQUIRE_ENV} is set) but {reason}")
    pytest.skip(f"MediaPipe Tasks not available: {reason}")


def mediapipe_python() -> Path:
    """The Python of the cached mediapipe venv, made on first use (skip or fail when it cannot
    be made: no registry, no venv module)."""
    venv = _cache_root() / "mediapipe-1.2.3"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import mediapipe.tasks.python.vision"]
    if python.exists() and subprocess.run(probe, capture_output=True, timeout=120).returncode == 0:
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="mediapipe-venv-", dir=venv.parent))
    try:
        steps = [[sys.executable, "-m", "venv", str(building)],
                 [str(building / "bin" / "python"), "-m", "pip", "install", "-q",
                  "--disable-pip-version-check", MEDIAPIPE]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1200)
            if done.returncode != 0:
                tail = " ".join((done.stderr or done.stdout).split()[-30:])
                _unavailable(f"'{' '.join(step[-3:])}' failed: {tail}")
        shutil.rmtree(venv, ignore_errors=True)
        # complete or absent: a venv whose install was cut short is never found at the path;
        # its Python (a link to this one) finds its packages beside it wherever it lies, and
        # only pip's own scripts, not used here, keep the old path
        building.rename(venv)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if subprocess.run(probe, capture_output=True, timeout=120).returncode != 0:
        _unavailable(f"the venv at {venv} does not import mediapipe")
    return python


def classify(model: Path, paths: list[Path]) -> dict:
    """MediaPipe's ImageClassifier on ``paths`` with ``model``: ``{"results": [[[index, name,
    score], ...] per image]}`` (categories best first) or ``{"error": its message}``."""
    done = subprocess.run([str(mediapipe_python()), "-c", CLASSIFY_SCRIPT, str(model)],
                          input=json.dumps([str(p) for p in paths]), capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"the MediaPipe child failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
