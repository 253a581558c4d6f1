"""conversion.json's keys in file order, compared with what the conversion wrote while its rows
were still dicts (``tests/data/conversion_keys.json``, written by that code): the typed rows
(:class:`edgecv.results.ConversionRow`) must not move, add or drop a key. No TensorFlow."""

import json
from pathlib import Path

GOLDEN = Path(__file__).parent / "data" / "conversion_keys.json"


def _keys(record: dict) -> list[str]:
    """``record``'s keys in order, each followed by its value's keys as ``key.inner`` when the
    value is a record (a dict, or a list of dicts: its first)."""
    keys = []
    for key, value in record.items():
        keys.append(key)
        inner = value[0] if isinstance(value, list) and value else value
        if isinstance(inner, dict):
            keys += [f"{key}.{name}" for name in inner]
    return keys


def key_order(path: Path) -> dict[str, list[str]]:
    """The keys of the conversion.json at ``path``: ``header`` (``artifacts`` in its place), then
    one entry per artifact, by format."""
    report = json.loads(Path(path).read_text())
    found = {"header": _keys({k: (None if k == "artifacts" else v) for k, v in report.items()})}
    found.update((row["format"], _keys(row)) for row in report["artifacts"])
    return found


def expected_key_order(case: str) -> dict[str, list[str]]:
    """The key order the dict-built rows gave in ``case`` (a conversion the tests repeat)."""
    return json.loads(GOLDEN.read_text())[case]
