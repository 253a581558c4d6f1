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


def test_overlapping_captures_in_two_threads_give_stdout_back():
    """The verifying thread opens interpreters (captured) while the main thread converts
    (captured): with each capture saving and restoring fds 1 and 2 itself, A in, B in, A out,
    B out left B's saved copy of A's temporary file as stdout, and every later line was lost."""
    import os
    import threading

    from edgecv.io import captured_output

    before = [os.fstat(fd).st_ino for fd in (1, 2)]
    b_in, a_out = threading.Event(), threading.Event()

    def second():
        with captured_output():
            b_in.set()
            a_out.wait(10)

    thread = threading.Thread(target=second)
    with captured_output():
        inside = os.fstat(1).st_ino
        thread.start()
        b_in.wait(10)
    a_out.set()
    thread.join(10)
    assert inside != before[0]  # the capture really redirected
    assert [os.fstat(fd).st_ino for fd in (1, 2)] == before


def test_a_failing_capture_replays_only_what_it_captured(capfd):
    import os

    from edgecv.io import captured_output

    with pytest.raises(ValueError):
        with captured_output():
            os.write(1, b"converter chatter\n")
            raise ValueError("boom")
    assert "converter chatter" in capfd.readouterr().err


def test_a_line_printed_while_another_thread_captures_still_reaches_the_terminal():
    """The main thread logs a format's row while the verifying thread has the fds captured
    (opening an interpreter): ``echo`` writes to the saved descriptor, not into the capture.
    In a child process, whose sys.stdout really is fd 1 (pytest's capture replaces it here)."""
    import subprocess
    import sys

    code = (
        "import threading\n"
        "from edgecv.io import captured_output, echo\n"
        "captured, release = threading.Event(), threading.Event()\n"
        "def verifier():\n"
        "    with captured_output():\n"
        "        captured.set()\n"
        "        release.wait(10)\n"
        "thread = threading.Thread(target=verifier)\n"
        "thread.start()\n"
        "captured.wait(10)\n"
        "echo('int8  verified')\n"
        "echo('warning: noted', err=True)\n"
        "release.set()\n"
        "thread.join(10)\n"
        "echo('done')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["int8  verified", "done"]
    assert result.stderr.splitlines() == ["warning: noted"]


def _fsync_log(monkeypatch):
    """Record what atomic_path flushes and renames, in order: ("file", content), ("dir", path),
    ("rename", name)."""
    import os
    import stat

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            events.append(("dir", target))
        else:
            events.append(("file", os.pread(fd, 100, 0)))
        return real_fsync(fd)

    def replace(source, destination):
        events.append(("rename", os.path.basename(destination)))
        return real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_atomic_writes_reach_the_disk_before_the_rename_and_the_rename_after(tmp_path,
                                                                             monkeypatch):
    """A power cut must leave the old file or the whole new one: the data is flushed before the
    rename (else ext4/xfs may commit the rename first: an empty file), the folder after it."""
    from edgecv.io import write_text_atomic

    events = _fsync_log(monkeypatch)
    write_json_atomic(tmp_path / "run" / "metrics.json", {"accuracy": 0.5})
    assert events == [("file", b'{\n  "accuracy": 0.5\n}\n'), ("rename", "metrics.json"),
                      ("dir", str(tmp_path / "run"))]
    events.clear()
    with atomic_path(tmp_path / "saved_model") as tmp:  # a directory: every file in it
        tmp.unlink()
        (tmp / "variables").mkdir(parents=True)
        (tmp / "saved_model.pb").write_bytes(b"pb")
        (tmp / "variables" / "v.data").write_bytes(b"v")
    assert ("file", b"pb") in events and ("file", b"v") in events
    assert events.index(("rename", "saved_model")) > max(
        events.index(("file", b"pb")), events.index(("file", b"v")))
    assert events[-1] == ("dir", str(tmp_path))
    events.clear()
    write_text_atomic(tmp_path / "report.md", "x")
    assert [kind for kind, _ in events] == ["file", "rename", "dir"]
