"""Shared test helpers: run the real CLI in a child process."""

import os
import subprocess
import sys

import pytest


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run `python -m edgecv ARGS` (the console script's code path) and capture its output."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgecv", *map(str, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli
