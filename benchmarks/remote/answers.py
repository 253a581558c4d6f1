"""What a device sends back, checked before any of it is used.

A device is another machine, and what it answers is hostile until checked: a record with a
missing key or an unknown status must not take the whole report down, a path it names must not
be opened here, and an answer of gigabytes must not fill this machine's memory. So:

- every line is read with a cap (:data:`MAX_LINE_BYTES` for the report line, :data:`MAX_PROBE_BYTES`
  for the probe's, the last :data:`MAX_STDERR_BYTES` of stderr) and every message is one JSON
  object with one known key (:func:`parse_message`);
- every record is checked against the schema the report uses: the probe's facts
  (:data:`FACTS`), the machine record (:data:`MACHINE`, :func:`edgecv.benchmarks.machine.machine_info`'s),
  and each bench row exactly :class:`~edgecv.benchmarks.row.BenchRow`'s fields with its types,
  then :func:`~edgecv.benchmarks.report.schema.validate_report` (:func:`check_report`);
  strings hold no control characters (a terminal escape cannot reach your terminal);
- a row's ``path`` is replaced by this machine's own file for the artifact that was sent
  (matched by its name, the job's run folder and its SHA-256), never taken from the device. The
  device's recommendations are not read at all: they are computed here from the checked rows.

A record that fails raises :class:`BadAnswer` (one line); the fleet makes it that device's
failed row and keeps the other devices' rows.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path

from edgecv.benchmarks.report.schema import STATUSES, validate_report
from edgecv.benchmarks.row import BenchRow

PREFIX = "EDGECV "
# ~1,500 rows of 2,000 samples (suite.SAMPLES_KEPT); a real report is well under 1 MB per 50 rows
MAX_LINE_BYTES = 32 << 20
MAX_PROBE_BYTES = 1 << 20  # the probe's facts: a few kB, plus one 64-character name per cached file
MAX_MESSAGES_BYTES = 1 << 20  # the receive step's answer: one short line per file stored
MAX_STDERR_BYTES = 64 << 10  # only its last lines are quoted (ssh's message is the last one)
MAX_ITEMS = 10_000  # rows, or any other list or dict in an answer
MAX_TEXT = 10_000  # characters of one string (a reason is one line of a few hundred)
SHA256 = re.compile(r"[0-9a-f]{64}")
# what would move the cursor, recolour or rewrite a terminal, or reorder text (Trojan Source)
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class BadAnswer(Exception):
    """One line: what in a device's answer is refused."""


@dataclass(frozen=True)
class Record:
    """A JSON object's shape: its keys and their kinds; ``optional`` keys may be absent, no
    other key may be present."""

    kinds: dict
    optional: frozenset = frozenset()


@dataclass(frozen=True)
class AnyOf:
    """One of ``kinds`` (a union that may hold a :class:`Record`, which ``X | None`` cannot)."""

    kinds: tuple


@dataclass(frozen=True)
class ListOf:
    """A list of ``kind`` holding at most ``limit`` items (where :data:`MAX_ITEMS` is too few)."""

    kind: object
    limit: int


ANY = object  # any JSON value (its strings clean, its numbers finite, its size bounded)
MAX_DEPTH = 16


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_clean(text: str) -> bool:
    return len(text) <= MAX_TEXT and not any(
        (char < " " or "\x7f" <= char <= "\x9f" or char in _BIDI) for char in text)


def check_value(value, kind, where: str, depth: int = 0) -> None:
    """Raise :class:`BadAnswer` unless the parsed JSON ``value`` is of ``kind``: a type hint
    (``str``, ``int``, ``float``, ``bool``, ``None``, ``X | Y``, ``list[X]``, ``dict[str, X]``),
    a :class:`Record`, an :class:`AnyOf`, a :class:`ListOf` or :data:`ANY`. Numbers are finite, ``float`` takes an
    int, strings are clean text of at most :data:`MAX_TEXT` characters, lists and dicts hold at
    most :data:`MAX_ITEMS` and nest at most :data:`MAX_DEPTH` deep."""
    if depth > MAX_DEPTH:
        raise BadAnswer(f"{where} nests more than {MAX_DEPTH} levels deep")
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType) or isinstance(kind, AnyOf):
        options = kind.kinds if isinstance(kind, AnyOf) else args
        values = [option for option in options if option not in (None, type(None))]
        if value is None:
            if len(values) < len(options):
                return
            raise BadAnswer(f"{where} is missing (null)")
        if len(values) == 1:  # its own message says what is wrong
            return check_value(value, values[0], where, depth)
        for option in values:
            try:
                return check_value(value, option, where, depth)
            except BadAnswer:
                continue
        raise BadAnswer(f"{where} must be {' or '.join(map(_kind_name, values))}; received "
                        f"{_shown(value)}")
    if isinstance(kind, Record):
        return _check_record(value, kind, where, depth)
    if isinstance(kind, ListOf):
        if not isinstance(value, list) or len(value) > kind.limit:
            raise BadAnswer(f"{where} must be a list (of at most {kind.limit:,}); received "
                            f"{_shown(value)}")
        for index, item in enumerate(value):
            check_value(item, kind.kind, f"{where}[{index}]", depth + 1)
        return
    if kind is ANY:
        kind = {str: str, bool: bool, int: int, float: float, list: list, dict: dict}.get(
            type(value), float if isinstance(value, numbers.Real) else type(None))
    if kind in (None, type(None)):
        ok = value is None
    elif kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    elif kind is str:
        if isinstance(value, str) and not _is_clean(value):
            raise BadAnswer(f"{where} holds a control character or is over {MAX_TEXT} characters: "
                            f"{_shown(value)}")
        ok = isinstance(value, str)
    elif (origin or kind) is list:
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            raise BadAnswer(f"{where} must be a list (of at most {MAX_ITEMS}); received "
                            f"{_shown(value)}")
        for index, item in enumerate(value):
            check_value(item, args[0] if args else ANY, f"{where}[{index}]", depth + 1)
        return
    elif (origin or kind) is dict:
        if not isinstance(value, dict) or len(value) > MAX_ITEMS:
            raise BadAnswer(f"{where} must be an object (of at most {MAX_ITEMS} keys); received "
                            f"{_shown(value)}")
        for key, item in value.items():
            check_value(key, str, f"{where} key", depth + 1)
            check_value(item, args[1] if args else ANY, f"{where}[{key!r}]", depth + 1)
        return
    else:
        raise TypeError(f"check_value cannot check the kind {kind!r}")  # a bug in a schema here
    if not ok:
        raise BadAnswer(f"{where} must be {_kind_name(kind)}; received {_shown(value)}")


def _kind_name(kind) -> str:
    if kind in (None, type(None)):
        return "null"
    if isinstance(kind, Record):
        return "an object"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list", dict: "an object"}.get(typing.get_origin(kind) or kind, str(kind))


def _check_record(value, record: Record, where: str, depth: int) -> None:
    if not isinstance(value, dict):
        raise BadAnswer(f"{where} must be an object; received {_shown(value)}")
    missing = [key for key in record.kinds if key not in value and key not in record.optional]
    extra = [key for key in value if key not in record.kinds]
    if missing:
        raise BadAnswer(f"{where} lacks the key '{missing[0]}'")
    if extra:
        raise BadAnswer(f"{where} has an unknown key {_shown(extra[0])}")
    for key, item in value.items():
        check_value(item, record.kinds[key], f"{where}.{key}", depth + 1)


# --- the records -------------------------------------------------------------------------------

MACHINE = Record({  # edgecv.benchmarks.machine.machine_info()
    "cpu": str, "cores": int | None, "usable_cores": int | None, "governor": str,
    "platform": str, "machine": str, "python": str, "versions": dict[str, str],
    "int8": Record({"arch": str, "features": list[str], "int8_dot_product": bool,
                    "outlook": list[str]}),
    "emulation": AnyOf((Record({"handler": str, "interpreter": str, "qemu_cpu": str | None}),
                        None))})

FACTS = Record({  # probe.main(): each key present or not, depending on what the device has
    "python": str, "python_path": str, "hostname": str, "boot_id": str | None, "root": str,
    "packages": dict[str, str], "edgecv": str | None, "edgecv_error": str, "edgecv_path": str,
    "machine": MACHINE, "targets": dict[str, str | None], "facts_error": str,
    "stale_removed": list[str], "evicted": list[str], "evicted_bytes": int, "free_bytes": int,
    "cached": list[str], "root_error": str},
    optional=frozenset({"edgecv_error", "edgecv_path", "machine", "targets", "facts_error",
                        "stale_removed", "evicted", "evicted_bytes", "free_bytes", "cached",
                        "root_error"}))

_ROW_KINDS = {name: kind for name, kind in typing.get_type_hints(BenchRow).items()
              if name in {f.name for f in fields(BenchRow)} and name != "warnings"}
_ROW_KINDS["integer_kernels"] = AnyOf((Record({"quantized": int, "integer": int, "float": int,
                                               "ops": dict[str, int]}), None))
# one class index per test image: a CIFAR-10 test split alone is 10,000
MAX_PREDICTIONS = 200_000
_ROW_KINDS["predictions"] = AnyOf((ListOf(int, MAX_PREDICTIONS), None))
_ROW_KINDS["mcu_fit"] = AnyOf((list[Record(  # edgecv.runtime.boards.fit()
    {"profile": str, "board": str, "ram_bytes": int, "flash_bytes": int, "source": str,
     "note": str, "arena_bytes": int, "model_bytes": int, "ram_margin_bytes": int,
     "flash_margin_bytes": int, "fits_ram": bool, "fits_flash": bool, "fits": bool,
     "not_counted": str}, optional=frozenset({"note"}))], None))
ROW = Record(_ROW_KINDS)  # BenchRow.to_dict(): every field, its type

PROGRESS = Record({"artifact": str, "target": str, "threads": int | None, "status": str})

REPORT = Record({  # suite.run_benchmark(): the keys a device's report must have
    "edgecv_version": str, "created": str, "machine": MACHINE, "settings": ANY,
    "warnings": list[str], "recommendations": ANY, "rows": list[ROW]})


def check_facts(facts, version: str) -> dict:
    """The probe's facts, checked against :data:`FACTS`. The machine record and targets of a
    device with another edgecv version are dropped (its own shape; that device fails with the
    version line anyway)."""
    if isinstance(facts, dict) and facts.get("edgecv") != version:
        facts = {key: value for key, value in facts.items() if key not in ("machine", "targets")}
    check_value(facts, FACTS, "the probe's answer")
    for name in facts.get("cached") or []:
        if not SHA256.fullmatch(name):
            raise BadAnswer(f"the probe's answer names a cached file {_shown(name)} that is not a "
                            "SHA-256")
    return facts


def parse_message(line: str, allowed: tuple[str, ...]) -> dict | None:
    """The message of one stdout line of the agent (None for a line that is not one: what a
    library printed): a JSON object with exactly one key of ``allowed`` (``stored``,
    ``progress``, ``report``, ``error``), its value checked, except the report's
    (:func:`check_report` needs what was sent)."""
    if not line.startswith(PREFIX):
        return None
    try:
        message = json.loads(line[len(PREFIX):])
    except (ValueError, RecursionError) as exc:  # not JSON, nested thousands deep, a 5,000-digit int
        raise BadAnswer(f"a message that is not JSON ({type(exc).__name__}: "
                        f"{_shown(str(exc))})") from None
    if not isinstance(message, dict) or len(message) != 1 or next(iter(message)) not in allowed:
        raise BadAnswer(f"a message that is not one of {', '.join(allowed)}: {_shown(message)}")
    key, value = next(iter(message.items()))
    if key == "stored" and not (isinstance(value, str) and SHA256.fullmatch(value)):
        raise BadAnswer(f"a stored file named {_shown(value)}, not a SHA-256")
    if key == "error":
        message["error"] = value = one_line(value)
        check_value(value, str, "its error message")
    if key == "progress":
        check_value(value, PROGRESS, "a progress message")
        if value["status"] not in STATUSES:
            raise BadAnswer(f"a progress message with the status {_shown(value['status'])} "
                            f"(known: {', '.join(STATUSES)})")
    return message


def one_line(text):
    """Free text (an error, a reason, a warning) on one line: runs of whitespace, newlines and
    tabs included, become one space (a library's message may span lines; it must not forge a
    line of this machine's output). Anything but a string is returned as it is, to be refused."""
    return " ".join(text.split()) if isinstance(text, str) else text


def read_line(stream, limit: int = MAX_LINE_BYTES) -> bytes:
    """One line of ``stream`` (b"" at its end), at most ``limit`` bytes: BadAnswer past that,
    with no more than ``limit`` bytes read."""
    line = stream.readline(limit + 1)
    if len(line) > limit and not line.endswith(b"\n"):
        raise BadAnswer(f"a line longer than {limit:,} bytes (no report is that large)")
    return line


def read_tail(stream, limit: int = MAX_STDERR_BYTES) -> bytes:
    """The last ``limit`` bytes of ``stream``, read to its end in chunks."""
    tail = b""
    for chunk in iter(lambda: stream.read(1 << 16), b""):
        tail = (tail + chunk)[-limit:]
    return tail


def printable(text: str) -> str:
    """``text`` with every control character but the newline shown as '?', for messages a
    device's stderr puts in a reason."""
    return "".join(char if char == "\n" or _is_clean(char) else "?" for char in text)


@dataclass(frozen=True)
class Sent:
    """One artifact sent to a device: its path there (relative to the job's run folder), this
    machine's file and its SHA-256."""

    relative: str
    local: Path
    sha256: str


def check_report(report, sent: list[Sent], job: str, targets: list[str]) -> dict:
    """The device's bench report, checked, as ``{"machine", "warnings", "rows"}`` with each
    row's ``path`` this machine's file (a row for no artifact keeps ``*``). Rows are exactly
    :class:`BenchRow`'s fields and pass :func:`validate_report`, name a sent artifact and one of
    ``targets``; a measured row has its p50, interval and size (a host-reference target's, the
    mcu's, its ``host_reference_kernels_*`` and no latency); a row is marked ``emulated`` exactly
    when the device's machine record says it runs under emulation; reasons and warnings are put
    on one line (:func:`one_line`). BadAnswer otherwise."""
    from edgecv.runtime.targets import HOST_REFERENCE_TARGETS

    if isinstance(report, dict):
        for row in report["rows"] if isinstance(report.get("rows"), list) else []:
            if isinstance(row, dict) and "reason" in row:
                row["reason"] = one_line(row["reason"])
        if isinstance(report.get("warnings"), list):
            report["warnings"] = [one_line(warning) for warning in report["warnings"]]
    check_value(report, REPORT, "the report")
    rows = report["rows"]
    emulated = report["machine"]["emulation"] is not None
    for index, row in enumerate(rows):
        where = f"row {index}"
        if row["emulated"] != emulated:
            raise BadAnswer(f"{where} says emulated={str(row['emulated']).lower()}, but the "
                            "device's machine record says it runs "
                            + ("under emulation" if emulated else "natively"))
        if row["target"] not in targets:
            raise BadAnswer(f"{where} is for target {_shown(row['target'])}, which was not asked "
                            f"for ({', '.join(targets)})")
        host = row["target"] in HOST_REFERENCE_TARGETS
        p50, interval = (("host_reference_kernels_p50_ms", "host_reference_kernels_p50_ci_ms")
                         if host else ("p50_ms", "p50_ci_ms"))
        if row["status"] == "ok" and not (row[p50] and row[p50] > 0 and row[interval]
                                          and row["size_bytes"] is not None):
            raise BadAnswer(f"{where} is 'ok' without a {p50.removesuffix('_ms')} above 0, its "
                            "interval and its size")
        if host and any(row[key] is not None for key in ("p50_ms", "p50_ci_ms", "mean_ms")):
            raise BadAnswer(f"{where} is on {row['target']}, whose time is this device's "
                            "reference kernels', yet it carries a latency")
    try:
        validate_report({"rows": rows, "machine": report["machine"],
                         "warnings": report["warnings"]})
    except ValueError as exc:
        raise BadAnswer(str(exc).replace("Report row", "row")) from None
    for index, row in enumerate(rows):
        row["path"] = _local_path(row, index, sent, job)
    return {"machine": report["machine"], "warnings": report["warnings"], "rows": rows}


def _local_path(row: dict, index: int, sent: list[Sent], job: str) -> str:
    """This machine's file for the artifact ``row`` measured: the sent artifact of the row's
    name whose place in the job's run folder is the row's path, with the row's SHA-256."""
    if row["artifact"] == "*" and row["path"] == "*":
        return "*"
    for item in sent:
        if (row["artifact"] == item.local.name
                and row["path"].endswith(f"/jobs/{job}/run/{item.relative}")):
            if row["sha256"] not in (None, item.sha256):
                raise BadAnswer(f"row {index} gives {item.local.name} the SHA-256 "
                                f"{row['sha256'][:12]}..., but the file sent has "
                                f"{item.sha256[:12]}...")
            return str(item.local)
    raise BadAnswer(f"row {index} names the artifact {_shown(row['artifact'])} at "
                    f"{_shown(row['path'])}, not a file this machine sent")
