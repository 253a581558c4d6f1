"""What ``edgecv bench --on`` accepts: ``local`` (this Python, in this process),
``local:PYTHON[?dir=PATH]`` (another interpreter on this machine, e.g. a second virtual
environment, run like a device) and
``ssh://[user@]host[:port][?python=PATH&dir=PATH]`` (a device reached with the system's OpenSSH
client; ``host`` may be a ``Host`` alias of ``~/.ssh/config``).

``python`` is the device's interpreter that has edgecv (default ``python3``, e.g.
``~/edgecv/bin/python`` for a virtual environment); ``dir`` is where the device keeps the copied
files (default ``~/.cache/edgecv/remote``); ``cache_days`` and ``cache_mb`` bound that cache
(defaults 30 days unused and 1000 MB: :func:`edgecv.benchmarks.remote.probe.evict_cache`).

The user and host reach ssh's command line, so only the characters of a host name, an IP address
or an ``~/.ssh/config`` alias are taken (``ssh://-oProxyCommand=...`` is refused, not run).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from edgecv.benchmarks.remote.probe import DEFAULT_CACHE_DAYS, DEFAULT_CACHE_MB
from edgecv.errors import UsageError

DEFAULT_PYTHON = "python3"
DEFAULT_ROOT = "~/.cache/edgecv/remote"
QUERY_KEYS = ("python", "dir", "cache_days", "cache_mb")
FORMS = "ssh://[user@]host[:port][?python=PATH&dir=PATH], local or local:PYTHON"
# What ssh gets as the host and the user: a name, an IPv4/IPv6 address (IPv6 in brackets, a
# zone after %25) or a config alias; never a leading "-" (ssh would read it as an option).
HOST_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+(%25[A-Za-z0-9_.-]+)?\]")
USER_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
PORT = re.compile(r"[0-9]{1,5}")
# a netloc split without urlsplit's leniency (it lowercases, and accepts "+22" as a port on 3.10)
NETLOC = re.compile(r"(?:(?P<user>[^@]*)@)?(?P<host>\[[^\]]*\]|[^:]*)(?::(?P<port>.*))?")


@dataclass(frozen=True)
class Device:
    """One ``--on`` value. ``name`` labels the device's rows and recommendations."""

    spec: str
    name: str
    kind: str  # "local" (this process), "python" (another interpreter here), "ssh"
    host: str | None = None
    user: str | None = None
    port: int | None = None
    python: str = DEFAULT_PYTHON
    root: str = DEFAULT_ROOT
    cache_days: float = DEFAULT_CACHE_DAYS
    cache_mb: float = DEFAULT_CACHE_MB

    @property
    def on_this_machine(self) -> bool:
        return self.kind in ("local", "python")


def parse_device(spec: str) -> Device:
    """The :class:`Device` of one ``--on`` value; UsageError naming the value otherwise."""
    text = spec.strip()
    if text == "local":
        return Device(spec=spec, name="local", kind="local")
    if text.startswith("local:"):
        python, _, query = text[len("local:"):].partition("?")
        options = _options(spec, query, ("dir", "cache_days", "cache_mb"))
        python = os.path.expanduser(python)
        found = shutil.which(python) if python else None
        if found is None:
            raise UsageError(f"`on` '{spec}': '{python}' is not an executable Python here; give "
                             "local:PATH/TO/python (e.g. local:~/venv2/bin/python).")
        return Device(spec=spec, name=text.partition("?")[0], kind="python", python=found,
                      root=options.get("dir", DEFAULT_ROOT), **_cache_limits(spec, options))
    if not text.startswith("ssh://"):
        raise UsageError(f"`on` takes {FORMS}; received '{spec}'.")
    if any(not char.isprintable() for char in text):
        raise UsageError(f"`on` {spec!r} holds a control character; give {FORMS}.")
    parts = urlsplit(text)
    if parts.password:
        raise UsageError(f"`on` '{spec}' holds a password: edgecv never takes a password, it uses "
                         f"your ssh keys; give {FORMS}.")
    user, host, port = _address(spec, parts.netloc)
    if parts.path not in ("", "/") or parts.fragment:
        raise UsageError(f"`on` '{spec}': unexpected path or fragment; give {FORMS}.")
    values = _options(spec, parts.query, QUERY_KEYS)
    return Device(spec=spec, name=parts.netloc, kind="ssh", host=host, user=user, port=port,
                  python=values.get("python", DEFAULT_PYTHON), root=values.get("dir", DEFAULT_ROOT),
                  **_cache_limits(spec, values))


def _address(spec: str, netloc: str) -> tuple[str | None, str, int | None]:
    """(user, host, port) of an ssh:// device, each checked: nothing that ssh would read as an
    option or that is not a plain name, address or number."""
    found = NETLOC.fullmatch(netloc)
    user, host, port = found["user"], found["host"], found["port"]
    if not host:
        raise UsageError(f"`on` '{spec}' names no host; give {FORMS}.")
    if not HOST_NAME.fullmatch(host):
        raise UsageError(f"`on` '{spec}': the host '{host}' is not a host name, an address or an "
                         "~/.ssh/config alias (letters, digits, '.', '_', '-', not first); give "
                         "one, e.g. ssh://pi@raspberrypi.")
    if user is not None and not USER_NAME.fullmatch(user):
        raise UsageError(f"`on` '{spec}': the user '{user}' is not a user name (letters, digits, "
                         "'.', '_', '-', not first); give one, e.g. ssh://pi@raspberrypi.")
    if port is not None and not (PORT.fullmatch(port) and 1 <= int(port) <= 65535):
        raise UsageError(f"`on` '{spec}': the port must be a number from 1 to 65535; received "
                         f"'{port}'.")
    # urlsplit's form: lowercase, no brackets (ssh matches ~/.ssh/config Host lines alike)
    return user, host.strip("[]").replace("%25", "%").lower(), None if port is None else int(port)


def _cache_limits(spec: str, values: dict[str, str]) -> dict[str, float]:
    """``cache_days`` / ``cache_mb`` of a device as numbers > 0 (defaults 30 and 1000)."""
    limits = {}
    for key, default in (("cache_days", DEFAULT_CACHE_DAYS), ("cache_mb", DEFAULT_CACHE_MB)):
        text = values.get(key)
        try:
            limits[key] = default if text is None else float(text)
        except ValueError:
            limits[key] = -1.0
        if not 0 < limits[key] < float("inf"):
            raise UsageError(f"`on` '{spec}': {key}= must be a number above 0; received "
                             f"'{text}'.")
    return limits


def _options(spec: str, query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """The ``?key=value&...`` options of a device, each in ``allowed`` and not empty."""
    found = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(found) - set(allowed))
    if unknown:
        raise UsageError(f"`on` '{spec}': unknown option '{unknown[0]}'; the options are "
                         f"{', '.join(allowed)}.")
    values = {key: found[key][-1] for key in found}
    empty = [key for key, value in values.items() if not value]
    if empty:
        raise UsageError(f"`on` '{spec}': the option {empty[0]}= is empty; give a value.")
    unprintable = [key for key, value in values.items() if not value.isprintable()]
    if unprintable:
        raise UsageError(f"`on` {spec!r}: the option {unprintable[0]}= holds a control "
                         "character; give a plain path.")
    return values


def parse_devices(specs: list[str]) -> list[Device]:
    """Every ``--on`` value parsed, in order; a device given twice is a UsageError."""
    devices = [parse_device(spec) for spec in specs]
    names = [device.name for device in devices]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(f"`on` names '{twice[0]}' twice; give each device once.")
    return devices
