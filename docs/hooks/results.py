"""MkDocs hook: the Results pages, generated at build time from ``benchmarks/results/*.json``.

Nothing here types a figure: every number on a Results page is read from a committed results
file, with the machine that file records (CPU model and the features that decide int8 speed) and
the command that wrote it ("command not recorded" where the file does not hold one). Figures from
a machine other than the newest are marked as older machines' figures. The newest machine is the
one of the results file committed last (git); without git history no machine is called newest.
A results file no page claims lands on "Other results", so a new file is never left out.
"""

from __future__ import annotations

import ast
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
EXPERIMENTS = ROOT / "benchmarks" / "experiments"

# Keys that are bulky raw material rather than figures a reader compares (per-run samples,
# per-class counts, learning curves); the JSON file holds them.
BULKY = {"samples_ms", "samples", "per_class", "curve_s_val_accuracy", "history", "trials",
         "formats", "sha256", "path", "max_drop_from"}
# The CPU features that decide int8 speed beyond AVX2 (as the bench report's machine record lists them)
INT8_FLAGS = ("AVX-512", "AVX-512 VNNI", "AVX-VNNI", "AMX-INT8")


@dataclass(frozen=True)
class Page:
    path: str
    title: str
    intro: str
    files: tuple[tuple[str, str], ...]  # (file name, what it measures)


PAGES = (
    Page("results/inference.md", "Inference speed",
         "Latency, throughput and the recommendation of `edgecv bench`, the harness's own "
         "overhead, and the ONNX int8 recipes' speed.",
         (("bench_default.json", "`edgecv bench` of the Quick start's digits resnet8 run, "
                                 "threads 1 and 2 (the default report)"),
          ("goals.json", "the harness against a bare `invoke()`, int8 against fp32, and the "
                         "model zoo (untrained weights)"),
          ("bench_cifar_airnet.json", "`edgecv bench RUN --json` of the CIFAR-10 airnet run "
                                      "(the photo recipe)"),
          ("bench_cifar_resnet8.json", "`edgecv bench RUN --json` of the CIFAR-10 resnet8 run"),
          ("bench_cifar_ds_cnn.json", "`edgecv bench RUN --json` of the CIFAR-10 ds_cnn run"),
          ("bench_cifar_mobilenet_v2.json", "`edgecv bench RUN --json` of the CIFAR-10 "
                                            "mobilenet_v2 run"),
          ("bench_cifar_resnet8_batch.json", "throughput per batch size (`--batch 1,8,32`)"),
          ("recommendation_stability.json", "the default `edgecv bench` five times per run: "
                                            "does the recommendation hold"),
          ("onnx_int8_cifar.json", "ONNX int8 against ONNX fp32 at 1 thread, the recipe "
                                   "`--onnx-calibration auto` chose"),
          ("onnx_int8_cifar_vnni.json", "the same on a CPU with VNNI"),
          ("onnx_int8_settings.json", "ONNX fp32 against int8 under fixed quantization "
                                      "settings (an early experiment)"),
          ("remote_bench.json", "`edgecv bench --on` over ssh against a local bench of the "
                                "same files"),
          ("camera_fps.json", "`edgecv camera --headless` frames per second"))),
    Page("results/int8.md", "int8 accuracy",
         "Does int8 keep the float model's answers: accuracy drop and top-1 agreement of every "
         "artifact on held-out CIFAR-10 photos, with `--recover` and `--qat`.",
         (("int8_cifar_airnet.json", "int8 and ONNX int8 of the photo recipe's two 30-minute "
                                     "runs (seeds 0 and 1), without `--recover`"),
          ("fold_int8.json", "int8 of the photo recipe's runs with and without the "
                             "BatchNormalization after each pool folded for export"),
          ("stem_int8.json", "int8 with the weights of the convolution on the image "
                             "rounded to nearest and rounded for the data (the int8 form)"),
          ("int8_cifar.json", "int8, recovery and QAT (2 epochs) on the first CIFAR runs"),
          ("int8_cifar_intel.json", "int8 on the 50-epoch runs"),
          ("int8_cifar_intel_strict.json", "the stricter goal by `--recover` (`--strict`)"),
          ("int8_cifar_intel_qat.json", "the stricter goal by QAT (8 epochs)"),
          ("int8_cifar_intel_mobilenet_v2.json", "mobilenet_v2 at 96 px"),
          ("int8_cifar_intel_mobilenet_v2_qat.json", "mobilenet_v2 at 96 px with QAT"),
          ("int8_cifar_keras2.json", "a Keras 2 `.h5` trained elsewhere, converted unedited"),
          ("int8_cifar_amd_qat.json", "the 30-minute runs, with the disagreements and which "
                                      "rounding lost them"),
          ("int8_cifar_amd_mobilenet_v2.json", "mobilenet_v2 trained for 30 minutes"),
          ("recover_mix.json", "`--recover-mix int16` against `float`"))),
    Page("results/training.md", "Training",
         "Time to accuracy on CIFAR-10 and the trainer's throughput.",
         (("train_photo_recipe.json", "the photo recipe (`--model auto`: airnet) in 30 minutes "
                                      "on CIFAR-10, and one row per idea of the recipe "
                                      "left out (ablations at a shorter budget)"),
          ("tta_cifar.json", "flip test-time augmentation (`--tta flip`) on the 30-minute "
                             "runs: the same model with and without it, same photos"),
          ("train_small_data.json", "airnet against resnet8 on 1,000 and 5,000 training "
                                    "images, scored on the same 7,500 held-out photos"),
          ("train_throughput_airnet.json", "images/s of `edgecv train` against a bare "
                                           "`model.fit` of airnet, float32 and bfloat16"),
          ("train_cifar.json", "`edgecv train` on CIFAR-10, one row per recipe (each row "
                               "records its own machine and command)"),
          ("train_throughput_cifar.json", "images/s of `edgecv train` against a plain "
                                          "`model.fit`"),
          ("train_xla_cifar.json", "the same with XLA"),
          ("train_stream_cifar.json", "the training split streamed from disk against held "
                                      "in memory"),
          ("train_throughput.json", "the same on digits (an earlier trainer)"))),
    Page("results/conversion.md", "Conversion, microcontrollers and data",
         "How long `edgecv convert` takes, the TFLite Micro arena `--mcu` ships, and unpacking "
         "a dataset archive.",
         (("convert_time.json", "`edgecv convert --all` against each format alone"),
          ("mcu_arena.json", "the smallest TFLite Micro arena per model"),
          ("mcu_zoo.json", "TFLite Micro against LiteRT's int8 file and reference kernels on "
                           "every zoo model, digits and CIFAR-10"),
          ("archive_unpack.json", "unpacking CIFAR-10's 50,000-JPEG archive under the limits"))),
)
OTHER = "results/other.md"


def _git_date(path: Path) -> str | None:
    """The ISO date of the last commit that changed ``path``, or None without git history."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cI", "--", str(path)], cwd=ROOT,
                             capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_label(machine: dict | None) -> str:
    """CPU model and its int8-relevant features, as the record holds them."""
    if not isinstance(machine, dict):
        return "machine not recorded"
    cpu = machine.get("cpu") or "CPU model not recorded"
    int8 = machine.get("int8")
    if isinstance(int8, dict) and isinstance(int8.get("features"), list):
        features = ", ".join(int8["features"]) or "none of AVX2, AVX-512, VNNI, AMX"
    else:
        features = "int8 features not recorded"
    cores = machine.get("cores", machine.get("cpus"))
    cores = f", {cores} cores" if cores else ""
    return f"{cpu} ({features}){cores}"


def int8_flags(machine: dict | None) -> str:
    """Which of AVX-512, VNNI and AMX the machine record lists ("-": none, or not recorded)."""
    int8 = machine.get("int8") if isinstance(machine, dict) else None
    features = int8.get("features", []) if isinstance(int8, dict) else []
    return ", ".join(name for name in INT8_FLAGS if name in features) or "-"


def fmt(value) -> str:
    """A JSON value as a table cell: floats rounded to 4 decimals, nothing else changed."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 4))
    if isinstance(value, list):
        if len(value) > 12:
            return f"({len(value)} values)"
        return "[" + ", ".join(fmt(item) for item in value) + "]"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {fmt(item)}" for key, item in value.items() if key not in BULKY)
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _is_scalar(value) -> bool:
    return not isinstance(value, (dict, list)) or (
        isinstance(value, list) and all(not isinstance(item, (dict, list)) for item in value))


def flatten(record: dict, prefix: str = "", depth: int = 2) -> dict:
    """``record``'s figures as ``{"a.b": value}``, ``depth`` levels deep; deeper dicts stay
    whole (shown inline), bulky keys are left to the JSON file."""
    flat = {}
    for key, value in record.items():
        if key in BULKY or key == "machine":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth > 1:
            flat.update(flatten(value, f"{name}.", depth - 1))
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            flat[name] = f"({len(value)} records)"
        else:
            flat[name] = value
    return flat


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _label(record: dict, index: int) -> str:
    """A column title for one record: its model and label, name, run, setting or artifact."""
    model, label = record.get("model"), record.get("label")
    if isinstance(model, str) and isinstance(label, str) and label != model:
        return f"{model}: {label}"
    for key in ("label", "name", "model", "run", "setting", "artifact"):
        if isinstance(record.get(key), str):
            threads = record.get("threads") if key == "setting" else None
            return record[key].rsplit("/", 1)[-1] + (f" ({threads} thr)" if threads else "")
    return f"#{index}"


def records_table(records: list[dict], newest: str | None) -> str:
    """A list of records: one column per record when they have many fields, else one row each.
    Records with a machine of their own get a machine row/column."""
    flats = [flatten(record) for record in records]
    own_machines = any(isinstance(record.get("machine"), dict) for record in records)
    fields: list[str] = []
    for flat in flats:
        fields += [key for key in flat if key not in fields]
    if own_machines:
        fields = ["machine"] + fields
        for flat, record in zip(flats, records):
            label = machine_label(record.get("machine"))
            flat["machine"] = label + ("" if label == newest or newest is None else
                                       " **(an older machine)**")
    if len(fields) <= 10:
        return table(fields, [[fmt(flat.get(key)) for key in fields] for flat in flats])
    header = ["field"] + [_label(record, i) for i, record in enumerate(records)]
    return table(header, [[f"`{key}`"] + [fmt(flat.get(key)) if key != "machine"
                                          else flat.get(key, "-") for flat in flats]
                          for key in fields])


def generic(document, newest: str | None) -> str:
    """Every figure of a results file, top-level scalars first, then each group of records."""
    if isinstance(document, list):
        return records_table(document, newest)
    out = []
    scalars = {key: value for key, value in document.items()
               if key not in ("machine", "command") and key not in BULKY and _is_scalar(value)}
    if scalars:
        out.append(table(["field", "value"], [[f"`{key}`", fmt(value)]
                                              for key, value in scalars.items()]))
    for key, value in document.items():
        if key in ("machine", "command") or key in BULKY or key in scalars:
            continue
        out.append(f"**`{key}`**\n")
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            out.append(records_table(value, newest))
        elif isinstance(value, dict):
            nested = {k: v for k, v in value.items() if isinstance(v, list) and v
                      and all(isinstance(item, dict) for item in v)}
            flat = flatten({k: v for k, v in value.items() if k not in nested})
            if flat:
                out.append(table(["field", "value"], [[f"`{k}`", fmt(v)] for k, v in flat.items()]))
            for name, records in nested.items():
                out.append(f"*`{key}.{name}`*\n")
                out.append(records_table(records, newest))
        else:
            out.append(fmt(value) + "\n")
    return "\n".join(out)


BENCH_COLUMNS = ("artifact", "format", "target", "threads", "batch", "status", "accuracy",
                 "size_bytes", "p50_ms", "p50_ci_ms", "throughput_per_s", "speedup_vs_fp32",
                 "integer_kernels", "reason")


def _bench_cell(row: dict, column: str) -> str:
    """One cell of a bench row: integer kernels as "fused of quantized", a reason only for a
    row that did not run (an ok row's reason is empty)."""
    value = row.get(column)
    if column == "integer_kernels" and isinstance(value, dict):
        return f"{value.get('integer')} of {value.get('quantized')}"
    if column == "reason" and row.get("status") == "ok":
        return "-"
    return fmt(value)


def bench_report(document: dict, newest: str | None) -> str:
    """An ``edgecv bench --json`` report: its settings, recommendations and rows."""
    out = [table(["setting", "value"], [[f"`{k}`", fmt(v)] for k, v in
                                        document.get("settings", {}).items()])]
    if document.get("created"):
        out.append(f"Written {document['created']} by edgecv {document.get('edgecv_version')}.\n")
    for warning in document.get("warnings", []):
        out.append(f"- warning recorded: {fmt(warning)}")
    out.append("\n**Recommendations** (`recommendations`)\n")
    out.append(table(["summary", "why"], [[fmt(r.get("summary")), fmt(r.get("reason"))]
                                          for r in document.get("recommendations", [])]))
    out.append("\n**Rows** (`rows`; per-run samples and the rest in the JSON file)\n")
    rows = document.get("rows", [])
    columns = [c for c in BENCH_COLUMNS if any(c in row for row in rows)]
    out.append(table(columns, [[_bench_cell(row, c) for c in columns] for row in rows]))
    return "\n".join(out)


def load_all() -> dict[str, dict]:
    """Every results file: its document, machine label and commit date."""
    found = {}
    for path in sorted(RESULTS.glob("*.json")):
        document = json.loads(path.read_text())
        machine = document.get("machine") if isinstance(document, dict) else None
        found[path.name] = {"document": document, "machine": machine,
                            "label": machine_label(machine), "date": _git_date(path)}
    return found


def newest_machine(found: dict[str, dict]) -> str | None:
    """The machine of the results file committed last (None without git dates)."""
    dated = [(info["date"], info["label"]) for info in found.values()
             if info["date"] and isinstance(info["machine"], dict)]
    return max(dated)[1] if dated else None


def file_section(name: str, what: str, info: dict, newest: str | None) -> str:
    document = info["document"]
    command = document.get("command") if isinstance(document, dict) else None
    lines = [f"## {name}", "", f"{what}.", "",
             f"- **File:** `benchmarks/results/{name}`",
             f"- **Machine:** {info['label']}",
             f"- **AVX-512 / VNNI / AMX:** {int8_flags(info['machine'])}",
             f"- **Command:** `{command}`" if command else "- **Command:** command not recorded",
             ""]
    if newest is not None and info["label"] != newest:
        lines += ['!!! note "An older machine\'s figures"',
                  f"    Measured on {info['label']}, not on the newest machine ({newest}): "
                  "int8 and training speed ratios from different CPUs must not be compared.", ""]
    if isinstance(document, dict) and "rows" in document and "recommendations" in document:
        lines.append(bench_report(document, newest))
    else:
        lines.append(generic(document, newest))
    return "\n".join(lines) + "\n"


def render_pages() -> dict[str, str]:
    """Every Results page's Markdown, by its path under docs/."""
    found = load_all()
    newest = newest_machine(found)
    pages = {}
    claimed = set()
    for page in PAGES:
        parts = [f"# Results: {page.title}", "", page.intro, "",
                 "Generated when the manual is built, from the committed files in "
                 "`benchmarks/results/`: every figure is quoted from its file (floats to 4 "
                 "decimals; accuracies and agreements are fractions, as the files hold them).",
                 ""]
        for name, what in page.files:
            if name in found:
                parts.append(file_section(name, what, found[name], newest))
                claimed.add(name)
        pages[page.path] = "\n".join(parts)
    others = [name for name in found if name not in claimed]
    parts = ["# Results: other files", "",
             "Results files no other page describes yet, rendered field by field.", ""]
    parts += [file_section(name, "a results file", found[name], newest) for name in others]
    if not others:
        parts.append("Every results file is on one of the pages above.")
    pages[OTHER] = "\n".join(parts)
    machines = {}
    for name, info in found.items():
        machines.setdefault(info["label"], []).append((info["date"] or "", name))
    rows = [[label + (" **(newest)**" if label == newest else ""),
             max(dates)[0][:10] or "-", ", ".join(f"`{n}`" for _, n in sorted(dates))]
            for label, dates in sorted(machines.items(), key=lambda item: max(item[1]),
                                       reverse=True)]
    pages["results/index.md"] = "\n".join([
        "# Results", "",
        "Every figure in this manual comes from a script whose output is committed under "
        "`benchmarks/results/`; these pages are generated from those files when the manual is "
        "built, so they cannot drift from them. Each file records the machine it ran on. The "
        "machines differ in what decides int8 and training speed (AVX-512, VNNI, AMX), so "
        "speed ratios from two machines must not be compared; figures from any machine but the "
        "newest are marked as older machines'.", "",
        "| page | what |", "|---|---|",
        *[f"| [{page.title}]({page.path.split('/', 1)[1]}) | {page.intro} |" for page in PAGES],
        f"| [Other results](other.md) | results files not yet described |", "",
        "## Machines", "",
        table(["machine (CPU, int8 features, cores)", "last file committed", "files"], rows),
        experiment_scripts(),
    ])
    return pages


def experiment_scripts() -> str:
    """The scripts that write the results files, each with its docstring's first sentence
    (nothing when the folder is not there)."""
    rows = []
    for path in sorted(EXPERIMENTS.glob("*.py")) if EXPERIMENTS.is_dir() else []:
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = " ".join(doc.split("\n\n", 1)[0].split())
        rows.append([f"`python benchmarks/experiments/{path.name}`", fmt(first)])
    if not rows:
        return ""
    return "## The scripts\n\n" + table(["script", "what it measures"], rows)


def on_files(files, config):
    """Add the generated Results pages to the build."""
    for path, content in render_pages().items():
        files.append(File.generated(config, path, content=content))
    return files
