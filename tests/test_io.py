"""Atomic writes never leave a partial file behind."""

import json

import pytest

from edgecv.io import atomic_path, write_json_atomic


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half-written")
            assert tmp.suffix == ".tflite" and tmp.parent == tmp_path
            raise RuntimeError("converter died")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]


def test_write_json_atomic_creates_parents(tmp_path):
    path = tmp_path / "a" / "b" / "metrics.json"
    write_json_atomic(path, {"accuracy": 0.5})
    assert json.loads(path.read_text()) == {"accuracy": 0.5}


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_respect_the_umask_not_mkstemps_0600(tmp_path, umask):
    import os
    import stat

    from edgecv.io import write_text_atomic

    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "report.md", "x")
        with atomic_path(tmp_path / "saved_model") as tmp:
            tmp.unlink()
            tmp.mkdir()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "saved_model").stat().st_mode) == 0o777 & ~umask


def test_atomic_path_can_keep_a_double_suffix(tmp_path):
    """Keras saves weights only to a name ending in .weights.h5, so the temporary file must too."""
    target = tmp_path / "best.weights.h5"
    with atomic_path(target, suffix=".weights.h5") as tmp:
        assert tmp.name.endswith(".partial.weights.h5") and tmp.parent == tmp_path
        tmp.write_bytes(b"weights")
    assert target.read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.weights.h5"]
