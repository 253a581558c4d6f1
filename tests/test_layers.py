"""The import structure, read from the source's own imports (every `import` statement, those
inside functions included): no import circles, and the device side imports nothing of the
training side. No TensorFlow needed."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# package name -> folder (converters/ and benchmarks/ install as edgecv.converters / .benchmarks)
PACKAGES = {"edgecv": ROOT / "edgecv", "edgecv.converters": ROOT / "converters",
            "edgecv.benchmarks": ROOT / "benchmarks"}
# The research scripts: in benchmarks/ but not installed (run from a checkout)
EXPERIMENTS = ROOT / "benchmarks" / "experiments"
# The device side: runs on a Raspberry Pi-class machine without TensorFlow or the training code.
DEVICE = ("edgecv.runtime", "edgecv.card", "edgecv.classify", "edgecv.camera",
          "edgecv.images", "edgecv.preprocessing", "edgecv.testset", "edgecv.tflite_schema",
          "edgecv.io", "edgecv.errors", "edgecv.limits", "edgecv.timing", "edgecv.modelfile",
          "edgecv.rundir", "edgecv.results")
TRAINING = ("edgecv.training", "edgecv.converters", "edgecv.models", "edgecv.data")
# Layers in data-flow order. The training side (data, model, artifact) builds on the device
# side (the converters write cards and verify artifacts in the runtime); the device side never
# reaches back. Within a side a layer uses the ones before it (results run backends, the model
# layer reads data), never one after it. Modules not listed (cli, api, info, ...) sit on top of
# all.
LAYERS = [
    ("data", ("edgecv.data",)),
    ("model", ("edgecv.models", "edgecv.training")),
    ("artifact", ("edgecv.converters",)),
    ("card + model files", ("edgecv.card", "edgecv.modelfile", "edgecv.rundir")),
    ("backend", ("edgecv.runtime",)),
    ("results", ("edgecv.classify", "edgecv.camera", "edgecv.deploy", "edgecv.results",
                 "edgecv.benchmarks.suite", "edgecv.benchmarks.row", "edgecv.benchmarks.recommend",
                 "edgecv.benchmarks.machine", "edgecv.benchmarks.cpu_features",
                 "edgecv.benchmarks.ort_kernels")),
    ("report", ("edgecv.benchmarks.report",)),
]


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if path.is_relative_to(EXPERIMENTS):
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if package == "edgecv" and parts and parts[0] in ("converters", "benchmarks"):
                continue
            found[".".join((package, *parts))] = path
    return found


def import_targets(name: str, path: Path) -> list[str]:
    """Every name module ``name`` (the file ``path``) imports, absolute: ``import a.b`` gives
    a.b, ``from a.b import c`` (or its relative form) a.b.c."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets.extend(f"{base}.{alias.name}" for alias in node.names)
    return targets


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from a.b import c`` counts a.b.c when that is a
    module, else a.b)."""
    result = set()
    for target in import_targets(name, path):
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            result.add(target)
    return result


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(name, path, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def test_nothing_installed_imports_an_experiment():
    """The research scripts are not installed (tests/test_packaging.py): a module of the package
    that imported one, or their shared ``_common``, would work in a checkout and fail in an
    installed edgecv."""
    scripts = {path.stem for path in EXPERIMENTS.glob("*.py")}
    assert {"_common", "mcu_zoo"} <= scripts
    found = [f"{path.relative_to(ROOT)}: {target}" for name, path in modules().items()
             for target in import_targets(name, path)
             if target.split(".")[0] in scripts or "experiments" in target.split(".")[:3]]
    assert found == []


def test_the_reader_sees_imports_inside_functions():
    edges = graph()
    assert "edgecv.runtime.keras" in edges["edgecv.runtime.backends"]  # inside open_backend
    assert "edgecv.models" in edges["edgecv.training.trainer"]


def test_no_import_circles():
    """card <-> runtime, targets <-> litert, quant_debug <-> recover and convert <-> sources /
    recover / calibration were circles (issue 14); a new one fails."""
    assert cycles(graph()) == []


def test_the_device_side_imports_no_training_code():
    edges = graph()
    found = {(module, target) for module, targets in edges.items()
             if module.startswith(DEVICE) for target in targets if target.startswith(TRAINING)}
    assert found == set(), sorted(found)


TRAINING_LAYERS = 3  # data, model, artifact


def layer_of(module: str) -> int | None:
    for rank, (_name, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def test_imports_point_one_way_through_the_layers():
    edges = graph()
    wrong = []
    for module, targets in edges.items():
        rank = layer_of(module)
        for target in targets:
            other = layer_of(target)
            if rank is None or other is None or other <= rank:
                continue
            if rank < TRAINING_LAYERS <= other:
                continue  # the training side uses the device side
            wrong.append(f"{module} ({LAYERS[rank][0]}) -> {target} ({LAYERS[other][0]})")
    assert wrong == []


def test_every_module_of_the_layers_exists():
    known = set(graph())
    for _name, prefixes in LAYERS:
        for prefix in prefixes:
            assert any(m == prefix or m.startswith(prefix + ".") for m in known), prefix


def test_import_edgecv_imports_no_tensorflow_and_no_runtime():
    """The Python API's names resolve without importing their implementation: TensorFlow loads
    when a training-side function runs, a runtime when a model is opened."""
    code = ("import sys, edgecv; edgecv.train, edgecv.convert, edgecv.bench, edgecv.predict, "
            "edgecv.pipeline, edgecv.inspect, edgecv.Conversion, edgecv.BenchReport, "
            "edgecv.Inspection, edgecv.EdgecvError; "
            "print([m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnxruntime', "
            "'ai_edge_litert', 'cv2') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# edgecv/__init__.py resolves the API's names lazily (PEP 562 __getattr__).
INIT_WITH_CODE = {ROOT / "edgecv" / "__init__.py"}


def test_package_init_files_hold_no_logic():
    """A package's __init__.py says what is where and re-exports names; the code lives in a
    module a reader can find by name (edgecv.data, .models and .runtime held 337, 175 and 95
    lines of it)."""
    found = []
    for folder in PACKAGES.values():
        for path in folder.rglob("__init__.py"):
            if path in INIT_WITH_CODE:
                continue
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr)):
                    continue
                if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in
                                                     node.targets] == ["__all__"]:
                    continue
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
