"""The test ssh server (tests/sshd.py): a login as this user runs commands, a second venv's Python
imports edgecv over ssh, a key the server does not know is refused, a closed port is refused."""

import os
import shlex
import socket
import sys

import edgecv
from sshd import make_venv


def test_command_runs_as_user_and_device_venv_imports_edgecv(sshd, tmp_path):
    who = sshd.ssh("id -un; cat /proc/$$/environ | tr '\\0' '\\n' | grep '^PATH='")
    assert who.returncode == 0, who.stderr
    user, session_path = who.stdout.splitlines()
    assert user == sshd.user
    # sshd's own session environment (before the shell's start-up files) puts this Python first
    assert session_path.split("=", 1)[1].split(":")[0] == os.path.dirname(sys.executable)

    python = make_venv(tmp_path / "device-venv")
    code = "import edgecv, sys; print(edgecv.__version__); print(sys.prefix)"
    run = sshd.ssh(f"cd / && {shlex.quote(str(python))} -c {shlex.quote(code)}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [edgecv.__version__, str(tmp_path / "device-venv")]


def test_unknown_key_is_refused(sshd):
    config = sshd.client_config("edgecv-refused", key=sshd.other_key_path)
    result = sshd.ssh("true", config=config, alias="edgecv-refused")
    assert result.returncode == 255
    assert "Permission denied" in result.stderr


def test_closed_port_is_refused(sshd):
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        config = sshd.client_config("edgecv-closed", port=s.getsockname()[1])
        result = sshd.ssh("true", config=config, alias="edgecv-closed")
    assert result.returncode == 255
    assert "Connection refused" in result.stderr
