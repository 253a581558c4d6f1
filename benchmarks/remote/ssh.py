"""How a step runs on a device, and what its failures mean.

Over ssh it is the system's OpenSSH client, so the user's keys, agent, ``~/.ssh/config`` aliases,
jump hosts and known_hosts apply. ``BatchMode=yes`` means it never asks for a password or a
passphrase (edgecv neither asks for nor stores one); ``ServerAliveInterval`` makes a device that
reboots or leaves the network a failure within about 15 s instead of a hang. For
``local:PYTHON`` the same step is a child process of this machine.
"""

from __future__ import annotations

import re
import shlex
import shutil

from edgecv.benchmarks.remote.devices import Device

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
               "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR")
# ssh's own failures exit 255; a shell that cannot find the program exits 127.
SSH_FAILED = 255
NOT_FOUND = 127


def remote_word(word: str) -> str:
    """``word`` quoted for the device's POSIX shell, a leading ``~/`` left to the shell
    (``"$HOME"/...``) so ``?python=~/venv/bin/python`` works."""
    if word == "~":
        return '"$HOME"'
    if word.startswith("~/"):
        return '"$HOME"/' + shlex.quote(word[2:])
    return shlex.quote(word)


def step_command(device: Device, argv: list[str], ssh_config: str | None = None) -> list[str]:
    """The local command line that runs ``argv`` (its first word the device's Python) on
    ``device``."""
    if device.kind == "python":
        return list(argv)
    ssh = shutil.which("ssh") or "ssh"
    command = [ssh, *(["-F", ssh_config] if ssh_config else []), *SSH_OPTIONS]
    if device.port:
        command += ["-p", str(device.port)]
    if device.user:
        command += ["-l", device.user]
    # "--" before the destination: whatever the host is, ssh reads no option from it or after
    # it (devices.parse_device refuses a host or user like "-oProxyCommand=..." first).
    return [*command, "--", device.host, " ".join(remote_word(word) for word in argv)]


def ssh_missing() -> str | None:
    """Why no step can run over ssh here (no OpenSSH client), or None."""
    if shutil.which("ssh") is None:
        return ("no OpenSSH client (ssh) on this machine: install it (Debian/Ubuntu: sudo apt "
                "install openssh-client)")
    return None


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def describe_failure(device: Device, returncode: int, stderr: str, *, during: str) -> str:
    """One line saying why a step on ``device`` failed (``during``: what it was doing), from
    ssh's exit code and message: unknown host, unreachable, refused key, untrusted host key,
    a connection lost mid-run, no Python."""
    where = device.name
    text = stderr or ""
    target = f"{device.user + '@' if device.user else ''}{device.host}"
    if device.kind == "ssh" and returncode == SSH_FAILED:
        if "Could not resolve hostname" in text:
            return (f"unknown host '{device.host}' (not in DNS, /etc/hosts or ~/.ssh/config): "
                    "check the name or add a Host entry to ~/.ssh/config")
        if re.search(r"Permission denied \(|Too many authentication failures", text):
            return (f"{where} refused the key ({_last_line(text)}): install your public key "
                    f"there with `ssh-copy-id {target}` or name the key with IdentityFile in "
                    "~/.ssh/config (edgecv never asks for a password)")
        if re.search(r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED", text):
            return (f"the host key of {where} is not trusted: connect once with `ssh {target}` "
                    "to check and accept it (or fix ~/.ssh/known_hosts if the device was "
                    "reinstalled)")
        if during == "connect" and re.search(
                r"Connection refused|timed out|No route to host|Network is unreachable|"
                r"Connection reset|Connection closed|kex_exchange_identification", text):
            return (f"{where} is unreachable ({_last_line(text)}): check that it is on, on this "
                    "network, and that its ssh server runs (sudo systemctl enable --now ssh)")
        if re.search(r"closed by remote host|Broken pipe|not responding|Connection reset|"
                     r"Connection closed|timed out", text) or not text.strip():
            return (f"lost the connection to {where} while {during} ({_last_line(text)}): the "
                    "device rebooted, crashed or left the network; its temporary files are "
                    "removed on the next run")
        return f"ssh to {where} failed while {during}: {_last_line(text)}"
    if returncode == NOT_FOUND and during == "connect":
        return (f"no Python at '{device.python}' on {where}: install Python >= 3.10 there "
                "(Debian/Raspberry Pi OS: sudo apt install python3 python3-venv), or name it "
                "with ?python=PATH")
    return f"{where} failed while {during} (exit {returncode}): {_last_line(text)}"
