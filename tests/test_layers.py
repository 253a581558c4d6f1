"""The import structure, read from the source's own imports (every `import` statement, those
inside functions included): no import circles, and the device side imports nothing of the
training side. No TensorFlow needed."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# package name -> folder (converters/ and benchmarks/ install as edgecv.converters / .benchmarks)
PACKAGES = {"edgecv": ROOT / "edgecv", "edgecv.converters": ROOT / "converters",
            "edgecv.benchmarks": ROOT / "benchmarks"}
# The device side: runs on a Raspberry Pi-class machine without TensorFlow or the training code.
DEVICE = ("edgecv.runtime", "edgecv.card", "edgecv.classify", "edgecv.predict", "edgecv.camera",
          "edgecv.video", "edgecv.preprocessing", "edgecv.testset", "edgecv.tflite_schema",
          "edgecv.io", "edgecv.errors", "edgecv.timing")
TRAINING = ("edgecv.training", "edgecv.converters", "edgecv.models", "edgecv.data")
# The one import circle left (convert <-> sources / recover / calibration share RunData and the
# verification helpers): issue 14 moves them into modules of their own. A new circle fails.
KNOWN_CYCLES = [["edgecv.converters.calibration", "edgecv.converters.convert",
                 "edgecv.converters.recover", "edgecv.converters.sources"]]
# Device modules that reach the training side today, each with the issue that moves it.
KNOWN_DEVICE_TO_TRAINING = {
    ("edgecv.runtime.keras", "edgecv.training.keras_io"),  # issue 14: a model-file layer
    ("edgecv.runtime.keras", "edgecv.training.strategy"),  # issue 14: TPU detection
    ("edgecv.runtime.targets", "edgecv.training.strategy"),  # issue 14: TPU detection
    ("edgecv.predict", "edgecv.data.folder"),  # issue 14: image reading
    ("edgecv.video", "edgecv.data.folder"),  # issue 14: image reading
}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if package == "edgecv" and parts and parts[0] in ("converters", "benchmarks"):
                continue
            found[".".join((package, *parts))] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from a.b import c`` counts a.b.c when that is a
    module, else a.b)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    result = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
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


def test_the_reader_sees_imports_inside_functions():
    edges = graph()
    assert "edgecv.runtime.keras" in edges["edgecv.runtime"]  # imported inside open_backend
    assert "edgecv.models" in edges["edgecv.training.trainer"]


def test_no_import_circles_but_the_known_one():
    """card <-> runtime (card read ONNX cards through the ONNX Runtime backend), targets <->
    litert and quant_debug <-> recover were circles; they are gone."""
    assert cycles(graph()) == KNOWN_CYCLES


def test_the_device_side_imports_no_training_code():
    edges = graph()
    found = {(module, target) for module, targets in edges.items()
             if module.startswith(DEVICE) for target in targets if target.startswith(TRAINING)}
    assert found - KNOWN_DEVICE_TO_TRAINING == set(), sorted(found - KNOWN_DEVICE_TO_TRAINING)
