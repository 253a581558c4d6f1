"""A real OpenSSH server on 127.0.0.1 for tests, and a second virtual environment for the "device".

:func:`start_sshd` runs ``sshd -D -e`` from a private ``sshd_config`` in a work folder (its own host
key, port, ``authorized_keys`` and pid file; nothing in /etc/ssh is read or changed) and writes an
ssh *client* config there whose Host alias ``edgecv-test`` reaches it::

    ssh -F <server.config_path> edgecv-test 'id -un'

Key-only logins as the current user; ``UsePAM no`` and ``StrictModes no`` let a non-root user run
it too (sshd then can only log in as that same user). As root, sshd also needs its
privilege-separation folder ``/run/sshd`` (created here when missing) and the ``sshd`` user
(Debian's openssh-server creates it). Each call picks its own free port, so pytest-xdist workers do
not collide.

Sessions get ``PATH`` with the folder of ``sys.executable`` first (``SetEnv`` in sshd_config), but
the user's shell start-up files run after sshd sets it and may put other folders in front (root's
``~/.bashrc`` on a pyenv machine prepends pyenv's shims): a remote command that must run a given
Python should name it by absolute path, e.g. the one :func:`make_venv` returns.

The ``sshd`` fixture (session scope) skips with :func:`sshd_unavailable_reason` when no server can
be started here. Test files import it like the other helpers (``tests/`` is on ``sys.path`` under
pytest)::

    from sshd import sshd  # noqa: F401 (a fixture)
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST_ALIAS = "edgecv-test"
PRIVSEP_DIR = Path("/run/sshd")  # Debian's privilege-separation folder (needed only as root)
START_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 5


def _sshd_binary() -> str | None:
    if os.access("/usr/sbin/sshd", os.X_OK):
        return "/usr/sbin/sshd"
    found = shutil.which("sshd")
    return os.path.abspath(found) if found else None  # sshd re-executes itself: absolute path


def _current_user() -> str:
    # The effective uid's name, not $USER/$LOGNAME (which getpass.getuser() reads first and which
    # may be stale in a container): a non-root sshd can only log in as the uid it runs as.
    return pwd.getpwuid(os.geteuid()).pw_name


def sshd_unavailable_reason() -> str | None:
    """Why a real sshd cannot be started here (no /usr/sbin/sshd or `sshd` on PATH, no ssh or
    ssh-keygen client), or None."""
    if _sshd_binary() is None:
        return "no OpenSSH server (/usr/sbin/sshd or sshd on PATH; Debian: openssh-server)"
    for tool, package in (("ssh", "openssh-client"), ("ssh-keygen", "openssh-client")):
        if shutil.which(tool) is None:
            return f"no {tool} on PATH (Debian: {package})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("sshd")
        except KeyError:
            return "running as root, and sshd's privilege-separation user 'sshd' does not exist"
        if not PRIVSEP_DIR.is_dir():
            try:
                PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
            except OSError as exc:
                return f"running as root, and sshd's folder {PRIVSEP_DIR} is missing: {exc}"
    return None


def _openssh_version(sshd: str) -> tuple[int, int]:
    """(major, minor) of the server; sshd has no version option, but its usage message (which
    `-V` prints, exiting 1) starts with it. (0, 0) when it cannot be read."""
    out = subprocess.run([sshd, "-V"], capture_output=True, text=True, timeout=10)
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stderr + out.stdout)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def _keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    path.chmod(0o600)  # ssh and sshd refuse private keys others can read
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _session_path() -> str:
    """PATH for ssh sessions: the folder of this interpreter first, then this process's PATH."""
    seen, parts = set(), []
    for part in [os.path.dirname(sys.executable), *os.environ.get("PATH", "").split(os.pathsep),
                 "/usr/local/bin", "/usr/bin", "/bin"]:
        if part and part not in seen:
            seen.add(part)
            parts.append(part)
    return os.pathsep.join(parts)


def _client_config_text(alias: str, port: int, user: str, key: Path, known_hosts: Path) -> str:
    return "\n".join([
        f"Host {alias}",
        "    HostName 127.0.0.1",
        f"    Port {port}",
        f'    User "{user}"',
        f'    IdentityFile "{key}"',
        "    IdentitiesOnly yes",
        "    IdentityAgent none",
        f'    UserKnownHostsFile "{known_hosts}"',
        "    GlobalKnownHostsFile /dev/null",
        "    StrictHostKeyChecking accept-new",
        "    BatchMode yes",
        "    LogLevel ERROR",
        "    ConnectTimeout 5",
        "",
    ])


@dataclass
class SshServer:
    host_alias: str          # "edgecv-test": the Host alias in config_path
    config_path: Path        # an ssh client config file (pass to ssh -F)
    port: int
    user: str                # the current user name
    key_path: Path           # the client private key that the server accepts
    other_key_path: Path     # a second client key the server does NOT accept
    workdir: Path
    process: subprocess.Popen  # the sshd process
    _log: object = field(default=None, repr=False)

    @property
    def known_hosts_path(self) -> Path:
        return self.workdir / "known_hosts"

    def ssh(self, *command: str, config: Path | None = None, alias: str | None = None,
            timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        """Run `ssh -F CONFIG ALIAS COMMAND...` (default: the main config and alias), capturing
        text output."""
        return subprocess.run(
            ["ssh", "-F", str(config or self.config_path), alias or self.host_alias, *command],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout, **kwargs)

    def client_config(self, name: str, *, key: Path | None = None,
                      port: int | None = None) -> Path:
        """Write another client config file in workdir with Host alias `name` (same HostName
        127.0.0.1, User, known_hosts file and options as the main one) but with the given identity
        file / port; return its path. Used for fault cases: a refused key (other_key_path), an
        unreachable port."""
        path = self.workdir / f"ssh_config.{name}"
        path.write_text(_client_config_text(name, self.port if port is None else port, self.user,
                                            key or self.key_path, self.known_hosts_path))
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        """Terminate sshd (SIGTERM, then SIGKILL after 5 s). Sessions already open keep their own
        processes until they end."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def _sshd_config_text(workdir: Path, port: int, user: str, version: tuple[int, int]) -> str:
    lines = [
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f'HostKey "{workdir / "ssh_host_ed25519_key"}"',
        f'AuthorizedKeysFile "{workdir / "authorized_keys"}"',
        f'AllowUsers "{user}"',
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        f'PidFile "{workdir / "sshd.pid"}"',
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "ClientAliveInterval 2",
        "ClientAliveCountMax 2",
        "PrintMotd no",
        "PrintLastLog no",
        # Room for tests that open many connections at once (default 10 unauthenticated ones).
        "MaxStartups 100",
        # scp in OpenSSH >= 9.0 speaks SFTP by default.
        "Subsystem sftp internal-sftp",
        # sshd builds the session environment from scratch; the shell's start-up files may still
        # change PATH afterwards.
        f'SetEnv "PATH={_session_path()}"',
    ]
    if version >= (9, 8):
        # OpenSSH 9.8 refuses, for a while, sources whose logins failed; the refused-key tests
        # would lock every later test on 127.0.0.1 out. (Earlier versions reject the keyword.)
        lines.append("PerSourcePenalties no")
    return "\n".join(lines) + "\n"


def start_sshd(workdir: Path) -> SshServer:
    """Start sshd on a free port of 127.0.0.1 with its files in `workdir` and wait until
    `ssh -F config_path edgecv-test true` works; RuntimeError (with the end of sshd.log) if it does
    not within 10 s. Call :func:`sshd_unavailable_reason` first."""
    reason = sshd_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"cannot start sshd: {reason}")
    sshd = _sshd_binary()
    version = _openssh_version(sshd)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    user = _current_user()

    _keygen(workdir / "ssh_host_ed25519_key", "edgecv-test host")
    key = _keygen(workdir / "id_ed25519", "edgecv-test client")
    other_key = _keygen(workdir / "id_ed25519_other", "edgecv-test refused client")
    authorized = workdir / "authorized_keys"
    authorized.write_text((workdir / "id_ed25519.pub").read_text())
    authorized.chmod(0o600)
    host_pub = (workdir / "ssh_host_ed25519_key.pub").read_text().split()
    config_path = workdir / "ssh_config"
    sshd_config = workdir / "sshd_config"
    log_path = workdir / "sshd.log"

    failures = []
    for _attempt in range(PORT_ATTEMPTS):
        port = _free_port()
        sshd_config.write_text(_sshd_config_text(workdir, port, user, version))
        # The host key is known up front, so the first login already checks it (and a stranger
        # that grabbed the port in the meantime is refused, not trusted).
        (workdir / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        config_path.write_text(_client_config_text(HOST_ALIAS, port, user, key,
                                                   workdir / "known_hosts"))
        config_path.chmod(0o600)
        log = open(log_path, "ab")  # noqa: SIM115 (closed by SshServer.stop)
        log.write(f"--- sshd on 127.0.0.1:{port}\n".encode())
        log.flush()
        log_start = log.tell()
        process = subprocess.Popen([sshd, "-D", "-e", "-f", str(sshd_config)],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        server = SshServer(HOST_ALIAS, config_path, port, user, key, other_key, workdir, process,
                           _log=log)
        last = ""
        started = time.monotonic()
        while time.monotonic() < started + START_TIMEOUT_S:
            if process.poll() is not None:
                break
            # Ready when sshd says it listens (it has bound the port: a process that took the port
            # first is not mistaken for it); a port that accepts after 1 s counts too.
            with open(log_path, "rb") as f:
                f.seek(log_start)
                listening = f"Server listening on 127.0.0.1 port {port}".encode() in f.read()
            if listening or (time.monotonic() - started > 1 and _port_open(port)):
                result = server.ssh("true", timeout=15)
                if result.returncode == 0:
                    return server
                last = result.stderr.strip()
                time.sleep(0.2)
            time.sleep(0.05)
        exit_code = process.poll()
        server.stop()
        tail = _tail(log_path)
        with open(log_path, "rb") as f:
            f.seek(log_start)
            this_log = f.read().decode(errors="replace")
        if "Address already in use" in this_log or "Cannot bind any address" in this_log:
            failures.append(f"port {port} was taken")
            continue  # another process took the port between _free_port() and sshd's bind
        state = (f"still running after {START_TIMEOUT_S:g} s" if exit_code is None
                 else f"sshd exited {exit_code}")
        raise RuntimeError(
            f"sshd on 127.0.0.1:{port} did not accept `ssh {HOST_ALIAS} true` ({state}); "
            f"last ssh error: {last or 'none'}\n--- {log_path} (end):\n{tail}")
    raise RuntimeError(f"sshd could not bind a port on 127.0.0.1: {'; '.join(failures)}\n"
                       f"--- {log_path} (end):\n{_tail(log_path)}")


def make_venv(path: Path) -> Path:
    """A second virtual environment for the 'device': `python -m venv --without-pip
    --system-site-packages path` (without pip: Debian's python may lack ensurepip); return the
    path of its python executable. Verify that `<venv python> -c 'import edgecv, sys;
    print(sys.prefix)'` works and prints the venv prefix; raise RuntimeError otherwise."""
    path = Path(path).resolve()
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                           "--system-site-packages", str(path)],
                          capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        raise RuntimeError(f"`{sys.executable} -m venv` failed ({made.returncode}) for {path}: "
                           f"{made.stderr.strip()[-2000:]}")
    python = path / "bin" / "python"
    if sys.prefix != sys.base_prefix:
        # This interpreter is itself a venv: --system-site-packages reaches only the base
        # installation, so also load this venv's site-packages (and its .pth files: an editable
        # edgecv is one) in the new one.
        purelib = Path(sysconfig.get_path("purelib", vars={"base": str(path)}))
        dirs = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
        purelib.mkdir(parents=True, exist_ok=True)
        (purelib / "_edgecv_test_parent_venv.pth").write_text(
            "".join(f"import site; site.addsitedir({d!r})\n" for d in sorted(dirs)))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSAFEPATH")}
    # cwd = the venv: `-c` puts the cwd on sys.path, and /work/main's edgecv/ must not count.
    check = subprocess.run([str(python), "-c", "import edgecv, sys; print(sys.prefix)"],
                           cwd=path, env=env, capture_output=True, text=True, timeout=120)
    printed = check.stdout.strip().splitlines()[-1:] if check.returncode == 0 else []
    if not printed or Path(printed[0]).resolve() != path:
        raise RuntimeError(f"the venv {path} does not work: {python} -c 'import edgecv, sys; "
                           f"print(sys.prefix)' exited {check.returncode}, printed "
                           f"{check.stdout.strip()!r}, stderr: {check.stderr.strip()[-2000:]}")
    return python


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A running :class:`SshServer` for this worker's session (skipped, with the reason, where no
    sshd can be started); stopped at the end. With EDGECV_REQUIRE_SSHD=1 (set by .ci/run, which
    installs openssh-server) a missing server is a failure, not a skip."""
    reason = sshd_unavailable_reason()
    if reason is not None:
        if os.environ.get("EDGECV_REQUIRE_SSHD") == "1":
            pytest.fail(f"{reason}; EDGECV_REQUIRE_SSHD=1 requires the ssh tests to run")
        pytest.skip(reason)
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()
