"""What the installed package holds: edgecv's code, not the research scripts of
benchmarks/experiments/ nor their figures in benchmarks/results/, which run from a checkout
(`python benchmarks/experiments/NAME.py`). No TensorFlow.

Importing is no test of it: an editable install (`pip install -e .`, what CI and development
use) maps edgecv.benchmarks onto the benchmarks/ folder, where Python finds experiments/ as an
implicit namespace package although no package lists it. The wheel is the test: it is built
here, offline, from a copy of the sources, and its file list read."""

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "benchmarks" / "experiments"
SCRIPTS = sorted(path for path in EXPERIMENTS.glob("*.py") if not path.name.startswith("_"))


def test_the_wheel_holds_no_experiment_and_no_result(tmp_path):
    """The experiments were a package of the wheel (edgecv/benchmarks/experiments/, 19 files),
    and, listed in an old SOURCES.txt, came back as package data (17)."""
    pytest.importorskip("setuptools", reason="the build backend (pyproject's build-system)")
    if importlib.util.find_spec("setuptools.command.bdist_wheel") is None:
        pytest.importorskip("wheel", reason="bdist_wheel for a setuptools before 70.1")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("edgecv", "converters", "benchmarks"):
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # A checkout installed (editable) before the scripts left the package keeps an
    # edgecv.egg-info/SOURCES.txt naming them, which setuptools reads back as its manifest.
    (source / "edgecv.egg-info").mkdir()
    (source / "edgecv.egg-info" / "SOURCES.txt").write_text("".join(
        f"{path.relative_to(ROOT)}\n" for path in
        [*EXPERIMENTS.glob("*.py"), *(ROOT / "benchmarks" / "results").iterdir()]))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
                            "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("edgecv-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgecv/api.py" in names and "edgecv/benchmarks/suite.py" in names
    assert "edgecv/converters/convert.py" in names
    tops = {name.split("/")[0] for name in names}  # no stray top-level benchmarks/ either
    assert "edgecv" in tops and all(top == "edgecv" or top.endswith(".dist-info") for top in tops)
    assert [name for name in names
            if name.startswith(("edgecv/benchmarks/experiments/", "edgecv/benchmarks/results/"))
            or name.endswith(tuple(f"/{path.name}" for path in SCRIPTS))] == []


def test_the_experiments_folder_is_no_package():
    """With an __init__.py, find_packages() would install it again and `python -m
    benchmarks.experiments.NAME` would load benchmarks/__init__.py under a second name."""
    assert len(SCRIPTS) >= 10
    assert not (EXPERIMENTS / "__init__.py").exists()
    assert not (ROOT / "benchmarks" / "results" / "__init__.py").exists()


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.stem for path in SCRIPTS])
def test_each_script_runs_from_a_checkout(script, tmp_path):
    """`python benchmarks/experiments/NAME.py --help` from any folder: the script finds its
    neighbour _common and the installed edgecv (the helpers it imported from the experiments'
    package are no longer in edgecv)."""
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: {script.name}")


# the module path the scripts were installed under, written so this file does not hold it
OLD_PATH = "edgecv.benchmarks." + "experiments"


def test_no_file_names_the_scripts_by_their_old_module_path():
    """Usage lines, docs, tests and the results files' "command" fields name
    `python benchmarks/experiments/NAME.py`; the module path they named before (`python -m
    OLD_PATH.NAME`) is not in an installed edgecv."""
    files = [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / "mkdocs.yml",
             *(ROOT / "docs").rglob("*.md"), *(ROOT / "docs").rglob("*.py"),
             *(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "benchmarks" / "results").glob("*"),
             *(ROOT / "edgecv").rglob("*.py"), *(ROOT / "converters").rglob("*.py"),
             *(ROOT / "tests").glob("*.py")]
    found = [str(path.relative_to(ROOT)) for path in files
             if path.is_file() and OLD_PATH in path.read_text(errors="replace")]
    assert found == []
