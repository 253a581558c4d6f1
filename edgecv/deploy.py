"""``edgecv camera RUN`` / ``edgecv predict RUN``: deploy what the bench recommended.

A run or export directory stands for the artifact, runtime and thread count that ``edgecv bench``
recommended for the target (``recommendations`` in ``bench.json``, written by ``edgecv pipeline``
or ``edgecv bench --json``). A model file is used as given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgecv.errors import UsageError
from edgecv.rundir import RunDir


@dataclass(frozen=True)
class Deployment:
    model: Path
    threads: int | None
    source: str  # what chose it: "the model file given" or "DIR/bench.json: <sentence>"


def _bench_files(folder: Path) -> list[Path]:
    run = RunDir(folder)
    # RUN/bench.json (pipeline), or beside the artifacts, or the run's above an export folder
    candidates = (run.bench_json, RunDir(run.export.path).bench_json,
                  RunDir(folder.parent).bench_json)
    return [p for p in candidates if p.is_file()]


def resolve(model: str | Path, target: str = "cpu", threads: int | None = None) -> Deployment:
    """The model file and threads to deploy on ``target``. For a directory, the bench's
    recommendation (``threads`` given by the user wins); for a file, the file and ``threads``."""
    path = Path(model)
    if not path.is_dir() or (path / "saved_model.pb").is_file():
        return Deployment(path, threads, "the model file given")
    files = _bench_files(path)
    if not files:
        raise UsageError(f"'{path}' is a directory with no bench.json, so there is no "
                         f"recommended artifact; run `edgecv bench {path} --json {path}/bench.json` "
                         "first, or give a .tflite / .onnx file.")
    try:
        report = json.loads(files[0].read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {files[0]}: {exc}; rerun edgecv bench.") from exc
    recommendations = [c for c in report.get("recommendations") or [] if c.get("artifact")]
    # a report of `bench --on` devices: this machine's ("local") answers, else the first device's
    here = [c for c in recommendations if c.get("device") in (None, "local")]
    first = recommendations[0].get("device") if recommendations else None
    choices = {c.get("target"): c for c in (
        here or [c for c in recommendations if c.get("device") == first])}
    if target not in choices:
        found = ", ".join(sorted(choices)) or "none"
        raise UsageError(f"{files[0]} recommends nothing for target '{target}' (it has: {found}); "
                         f"bench that target, or give a model file.")
    choice = choices[target]
    artifact = _locate(choice, path, files[0].parent)
    return Deployment(artifact, threads if threads is not None else choice.get("threads"),
                      f"{files[0]}: {choice.get('summary') or choice['artifact']}")


def _locate(choice: dict, *folders: Path) -> Path:
    """The recommended file: its recorded path, else the same name in the folder given or its
    export/ (the run may have been copied to the device since). The name must be a plain file
    name and the recorded path must end in it: a bench.json edited or written elsewhere cannot
    point predict or camera at another file (such as /etc/passwd)."""
    artifact = choice["artifact"]
    if not isinstance(artifact, str) or Path(artifact).name != artifact or artifact in ("", ".", ".."):
        raise UsageError(f"the bench.json in {', '.join(map(str, folders))} recommends "
                         f"{artifact!r}, which is not an artifact's file name; rerun edgecv bench.")
    recorded = Path(choice.get("path") or "")
    if recorded.name == artifact and recorded.is_file():
        return recorded
    for folder in folders:
        for candidate in (folder / choice["artifact"], RunDir(folder).export.path / choice["artifact"]):
            if candidate.exists():
                return candidate
    raise UsageError(f"the recommended artifact {choice['artifact']} is not in "
                     f"{', '.join(map(str, folders))}; rerun edgecv bench there.")
