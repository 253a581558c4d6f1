"""What ``edgecv bench --on`` accepts: ``local`` (this Python, in this process),
``local:PYTHON[?dir=PATH]`` (another interpreter on this machine, e.g. a second virtual
environment, run like a device) and
``ssh://[user@]host[:port][?python=PATH&dir=PATH]`` (a device reached with the system's OpenSSH
client; ``host`` may be a ``Host`` alias of ``~/.ssh/config``).

``python`` is the device's interpreter that has edgecv (default ``python3``, e.g.
``~/edgecv/bin/python`` for a virtual environment); ``dir`` is where the device keeps the copied
files (default ``~/.cache/edgecv/remote``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from edgecv.errors import UsageError

DEFAULT_PYTHON = "python3"
DEFAULT_ROOT = "~/.cache/edgecv/remote"
QUERY_KEYS = ("python", "dir")
FORMS = "ssh://[user@]host[:port][?python=PATH&dir=PATH], local or local:PYTHON"


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
        options = _options(spec, query, ("dir",))
        python = os.path.expanduser(python)
        found = shutil.which(python) if python else None
        if found is None:
            raise UsageError(f"--on '{spec}': '{python}' is not an executable Python here; give "
                             "local:PATH/TO/python (e.g. local:~/venv2/bin/python).")
        return Device(spec=spec, name=text.partition("?")[0], kind="python", python=found,
                      root=options.get("dir", DEFAULT_ROOT))
    if not text.startswith("ssh://"):
        raise UsageError(f"--on takes {FORMS}; received '{spec}'.")
    parts = urlsplit(text)
    if not parts.hostname:
        raise UsageError(f"--on '{spec}' names no host; give {FORMS}.")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"--on '{spec}': the port must be a number from 1 to 65535.") from None
    if parts.path not in ("", "/") or parts.fragment or parts.password:
        raise UsageError(f"--on '{spec}': unexpected path, fragment or password; give {FORMS} "
                         "(edgecv never takes a password: it uses your ssh keys).")
    values = _options(spec, parts.query, QUERY_KEYS)
    return Device(spec=spec, name=parts.netloc, kind="ssh", host=parts.hostname,
                  user=parts.username, port=port,
                  python=values.get("python", DEFAULT_PYTHON), root=values.get("dir", DEFAULT_ROOT))


def _options(spec: str, query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """The ``?key=value&...`` options of a device, each in ``allowed`` and not empty."""
    found = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(found) - set(allowed))
    if unknown:
        raise UsageError(f"--on '{spec}': unknown option '{unknown[0]}'; the options are "
                         f"{', '.join(allowed)} (?{'&'.join(f'{k}=PATH' for k in allowed)}).")
    values = {key: found[key][-1] for key in found}
    empty = [key for key, value in values.items() if not value]
    if empty:
        raise UsageError(f"--on '{spec}': the option {empty[0]}= is empty; give a path.")
    return values


def parse_devices(specs: list[str]) -> list[Device]:
    """Every ``--on`` value parsed, in order; a device given twice is a UsageError."""
    devices = [parse_device(spec) for spec in specs]
    names = [device.name for device in devices]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(f"--on names '{twice[0]}' twice; give each device once.")
    return devices
