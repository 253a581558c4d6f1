"""The report's table: its columns and display cells (shared by the terminal, Markdown and HTML
tables), the terminal table and the Markdown report.

A row that is not "ok" shows its status and reason, and "-" in every measurement cell.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgecv.benchmarks.report.schema import validate_report
from edgecv.io import write_text_atomic
from edgecv.runtime.base import agreement_text

# The columns of the terminal, Markdown and HTML tables (docs/guides/benchmarking.md); the JSON
# report has every field, std/min/max and the per-run samples included.
TABLE_COLUMNS = ("artifact", "format", "target", "threads", "batch", "status", "size MB", "accuracy",
                 "init ms", "first ms", "mean ms", "p50 ms", "p50 CI ms", "p90 ms", "p99 ms", "FPS",
                 "preprocess ms", "peak RSS MB", "RSS delta MB", "speedup vs fp32")
# Added after TABLE_COLUMNS when a row is on the mcu target (TFLite Micro on this machine): the
# arena measured, top-1 agreement with the same file on LiteRT, the time of TFLM's reference
# kernels on this host (named so: it is no microcontroller's latency), the fit per profile.
MCU_COLUMNS = ("arena KB", "agreement vs LiteRT", "host reference kernels p50 ms", "fits")
# Cells that hold a measurement: always "-" for a row that is not "ok" (right-aligned, as the
# MCU_COLUMNS are).
MEASUREMENT_COLUMNS = TABLE_COLUMNS[6:]
DEVICE_COLUMN = "device"  # first, when the rows come from `edgecv bench --on` devices
# after accuracy, when a row has one (`--on`: top-1 agreement with the reference device)
AGREEMENT_COLUMN = "agreement"
RIGHT_ALIGNED = (*MEASUREMENT_COLUMNS, AGREEMENT_COLUMN, *MCU_COLUMNS)
EMULATED = " (emulated)"  # after the target of a row timed under emulation
DEFAULT_TITLE = "edgecv benchmark"  # a report written by code that did not say what it measured


def report_title(command: str, subjects: Sequence[str]) -> str:
    """The report's title: the command that wrote it and what it measured, e.g. ``"edgecv
    pipeline: runs/digits-resnet8"``; past three subjects, how many more."""
    names = [str(subject) for subject in subjects]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"edgecv {command}: {shown}" if shown else f"edgecv {command}"


def columns(rows: list[dict]) -> tuple[str, ...]:
    """TABLE_COLUMNS, led by ``device`` when a row names the device that measured it, with
    ``agreement`` after ``accuracy`` when a row has one, followed by MCU_COLUMNS when a row is on
    the mcu target."""
    shown = list(TABLE_COLUMNS)
    if any(r.get("agreement") is not None for r in rows):
        shown.insert(shown.index("accuracy") + 1, AGREEMENT_COLUMN)
    if any(r.get("device") for r in rows):
        shown.insert(0, DEVICE_COLUMN)
    if any(r.get("target") == "mcu" for r in rows):
        shown += MCU_COLUMNS
    return tuple(shown)


def row_cells(row: dict, shown: tuple[str, ...]) -> list[str]:
    """:func:`table_cells` for the ``shown`` columns (:func:`columns`)."""
    cells = dict(zip(TABLE_COLUMNS, table_cells(row)))
    cells.update(zip(MCU_COLUMNS, mcu_cells(row)))
    cells[DEVICE_COLUMN] = str(row.get("device") or "-")
    agreement = row.get("agreement")
    cells[AGREEMENT_COLUMN] = f"{100 * agreement:.2f}%" \
        if row["status"] == "ok" and agreement is not None else "-"
    return [cells[column] for column in shown]


def mcu_cells(row: dict) -> list[str]:
    """The MCU_COLUMNS of a row: arena in KB (10^3 bytes, as ``size MB`` is in 10^6), agreement
    with LiteRT in percent, the host reference kernels' p50, and which profiles it fits
    (``nano33ble yes, pico no``); "-" where the row has none (any other target)."""
    ok = row["status"] == "ok"

    def shown(key, fmt):
        value = row.get(key)
        return fmt(value) if ok and value is not None else "-"

    return [shown("arena_bytes", lambda b: f"{b / 1e3:.1f}"),
            shown("agreement_litert", lambda a: agreement_text(
                a, row.get("agreement_litert_counting_ties"))),
            shown("host_reference_kernels_p50_ms", _format_ms),
            shown("mcu_fit", lambda fits: ", ".join(
                f"{f['profile']} {'yes' if f['fits'] else 'no'}" for f in fits) or "-")]


def table_cells(row: dict) -> list[str]:
    """The row as display strings, one per TABLE_COLUMNS entry (shared by Markdown and HTML).

    A row that is not "ok" shows "STATUS: REASON" in the status cell and "-" in every
    measurement cell; a missing measurement of an ok row is "-" too. Sizes are in MB (10^6
    bytes), accuracy in percent with 2 decimals, the p50 interval as "low-high" (90%, over the
    interleaved rounds), FPS is ``throughput_per_s``, RSS in MB (the delta signed). The target of
    a row timed under emulation reads "cpu (emulated)".
    """
    status = row["status"]
    ok = status == "ok"
    threads = row.get("threads")
    batch = row.get("batch")
    target = str(row["target"]) + (EMULATED if row.get("emulated") else "")
    cells = [str(row["artifact"]), str(row.get("format") or "-"), target,
             "-" if threads is None else str(threads), "-" if batch is None else str(batch)]
    cells.append("ok" if ok else f"{status}: {row.get('reason') or '(no reason given)'}")

    def measured(key, fmt):
        value = row.get(key)
        return fmt(value) if ok and value is not None else "-"

    cells += [measured("size_bytes", lambda b: f"{b / 1e6:.3f}"),
              measured("accuracy", lambda a: f"{100 * a:.2f}%"),
              *(measured(key, _format_ms) for key in ("init_ms", "first_ms", "mean_ms", "p50_ms")),
              measured("p50_ci_ms", lambda ci: f"{_format_ms(ci[0])}-{_format_ms(ci[1])}"),
              *(measured(key, _format_ms) for key in ("p90_ms", "p99_ms")),
              measured("throughput_per_s", lambda f: f"{f:.0f}" if f >= 100 else f"{f:.1f}"),
              measured("preprocess_ms", _format_ms),
              measured("peak_rss_mb", lambda m: f"{m:.1f}"),
              measured("rss_delta_mb", lambda m: f"{m:+.1f}"),
              measured("speedup_vs_fp32", lambda s: f"{s:.2f}x")]
    return cells


def _format_ms(value: float) -> str:
    if value >= 100:
        return f"{value:.1f}"
    if value >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}"


def answer_lines(report: dict) -> list[str]:
    """What the report opens with: per target, "deploy ... on ... with N threads: p50, FPS,
    accuracy, size" and why (:mod:`edgecv.benchmarks.recommend`)."""
    from edgecv.benchmarks.recommend import sentence

    lines = []
    for choice in report.get("recommendations") or []:
        device = f"on {choice['device']}: " if choice.get("device") else ""
        lines += [device + sentence(choice), f"  why: {choice['reason']} (budget from "
                                    f"{choice.get('max_drop_from', '--max-drop')})"]
    return lines + emulated_lines(report)


def emulation_summary(emulation: dict) -> str:
    """``QEMU user mode (binfmt_misc handler qemu-aarch64, QEMU_CPU cortex-a76)``."""
    kind = "QEMU user mode" if "qemu" in f"{emulation.get('handler')} " \
        f"{emulation.get('interpreter')}".lower() else "an emulator"
    cpu = f"QEMU_CPU {emulation['qemu_cpu']}" if emulation.get("qemu_cpu") else "default CPU"
    return f"{kind} (binfmt_misc handler {emulation.get('handler')}, {cpu})"


def emulated_lines(report: dict) -> list[str]:
    """One line per machine (the report's, or each ``--on`` device's) that benched under
    emulation: its rows' timings are not a board's, so it gets no recommendation."""
    machines = [(device["name"], device.get("machine") or {})
                for device in report.get("devices") or []] \
        or [(None, report.get("machine") or {})]
    lines = []
    for name, machine in machines:
        if machine.get("emulation") and any(
                row["status"] == "ok" for row in report["rows"]
                if name is None or row.get("device") == name):
            lines.append(f"{f'on {name}: ' if name else ''}no recommendation: measured under "
                         f"{emulation_summary(machine['emulation'])}; its rows' timings (target "
                         "marked 'emulated') say nothing about a real board's speed, its accuracy"
                         " and agreement are real")
    return lines


def agreement_lines(report: dict) -> list[str]:
    """Per device compared with a reference (``--on``): the lowest top-1 agreement over its
    files and the largest accuracy difference from the reference's same file."""
    lines = []
    for device in dict.fromkeys(row.get("device") for row in report["rows"]
                                if row.get("agreement") is not None):
        rows = [row for row in report["rows"] if row.get("device") == device
                and row.get("agreement") is not None and row["status"] == "ok"]
        if not rows:
            continue
        reference = rows[0]["agreement_with"]
        accuracy = {(row.get("sha256"), row["target"]): row.get("accuracy")
                    for row in report["rows"] if row.get("device") == reference}
        gaps = [abs(row["accuracy"] - accuracy[key]) * 100 for row in rows
                if row.get("accuracy") is not None
                and accuracy.get(key := (row.get("sha256"), row["target"])) is not None]
        lowest = min(rows, key=lambda row: row["agreement"])
        lines.append(f"top-1 agreement of {device} with {reference} on the same files: lowest "
                     f"{100 * lowest['agreement']:.2f}% ({lowest['artifact']}, "
                     f"{len({row['sha256'] for row in rows})} file(s) compared)"
                     + (f"; accuracy differs by at most {max(gaps):.2f} pp" if gaps else ""))
    return lines


def int8_lines(report: dict) -> list[str]:
    """What int8 can gain on this CPU (machine record), when the report has an int8 row; with
    ``--on`` devices, on each device's CPU."""
    if report.get("devices"):
        lines = []
        for device in report["devices"]:
            rows = [row for row in report["rows"] if row.get("device") == device["name"]]
            part = int8_lines({"machine": device.get("machine") or {}, "rows": rows})
            if part:
                lines += [part[0].replace("on this CPU", f"on {device['name']}"), *part[1:]]
        return lines
    if not any("int8" in str(row.get("format") or "") and row["status"] == "ok"
               for row in report["rows"]):
        return []
    int8 = (report.get("machine") or {}).get("int8") or {}
    features = ", ".join(int8.get("features") or []) or "none known"
    fused = {}
    for row in report["rows"]:
        kernels = row.get("integer_kernels")
        if kernels and row["artifact"] not in fused:
            fused[row["artifact"]] = (
                f"- {row['artifact']}: ONNX Runtime runs {kernels['integer']} of its "
                f"{kernels['quantized']} quantized convolutions / matrix products as integer "
                "kernels" + (f"; {kernels['float']} fall back to dequantize -> float -> quantize"
                             if kernels["float"] else " (all fused)"))
    return [f"int8 on this CPU (int8-relevant features: {features}):",
            *(f"- {line}" for line in int8.get("outlook") or []), *fused.values()]


def mcu_lines(report: dict) -> list[str]:
    """Under the table, when a row ran on the mcu target: what its figures are, then per row
    the arena and each profile's fit with its margins, and what is not measured."""
    rows = [row for row in report["rows"] if row.get("target") == "mcu" and row["status"] == "ok"]
    if not rows:
        return []
    from edgecv.runtime.boards import NOT_COUNTED, fit_text

    lines = ["mcu: TFLite Micro's interpreter on this machine: the tensor arena its recording "
             "allocator measured (reserved: kTensorArenaSize), agreement with the same file on "
             "LiteRT; its time is that of the reference kernels on this host's CPU, not a "
             "microcontroller's latency, and is never recommended:"]
    for row in rows:
        where = f"{row['device']}: " if row.get("device") else ""
        lines.append(f"- {where}{row['artifact']}: arena {row['arena_bytes']:,} bytes (head "
                     f"{row['arena_head_bytes']:,}, tail {row['arena_tail_bytes']:,}; reserve "
                     f"{row['arena_reserved_bytes']:,}), model {row['size_bytes']:,} bytes"
                     + (f", {row['max_diff_steps_litert']} step(s) at most from LiteRT"
                        if row.get("max_diff_steps_litert") is not None else ""))
        lines += [f"- {where}{row['artifact']} on {fit_text(fit)}"
                  for fit in row.get("mcu_fit") or []]
    lines.append(f"- {NOT_COUNTED}")
    return lines


def _machine_summary(machine: dict) -> str:
    parts = [str(machine.get("cpu") or "unknown CPU")]
    if machine.get("emulation"):
        parts[0] += f", emulated by {emulation_summary(machine['emulation'])}"
    if machine.get("cores") is not None:
        parts.append(f"{machine['cores']} cores")
    parts.append(f"governor {machine.get('governor') or 'unknown'}")
    if machine.get("platform"):
        parts.append(str(machine["platform"]))
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    versions = machine.get("versions") or {}
    line = ", ".join(parts)
    if versions:
        line += "; " + ", ".join(f"{name} {version or '-'}" for name, version in versions.items())
    return line


def machine_lines(report: dict) -> list[tuple[str, str]]:
    """(label, one-line machine record): "Machine" for a one-machine report; with ``--on``
    devices, one per device (its record, or why it has none) after the machine that ran the
    command."""
    lines = [("Machine", _machine_summary(report.get("machine") or {}))]
    for device in report.get("devices") or []:
        if device.get("machine"):
            summary = _machine_summary(device["machine"])
            transfer = device.get("transfer")
            if transfer:
                summary += (f"; copied {transfer['copied']} file(s), "
                            f"{transfer['copied_bytes'] / 1e6:.2f} MB, {transfer['reused']} reused")
        else:
            summary = f"no record ({device.get('reason') or 'not measured'})"
        lines.append((f"Device {device['name']}", summary))
    return lines


def _settings_summary(settings: dict) -> str:
    return ", ".join(f"{key} {plain_value(value)}" for key, value in settings.items())


def plain_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(plain_value(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {plain_value(v)}" for k, v in value.items()) or "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def markdown_table(report: dict, title: str = DEFAULT_TITLE) -> str:
    """The whole Markdown report: ``title`` as its heading, the machine line, settings,
    warnings as a bullet list, then one results table (columns: TABLE_COLUMNS)."""
    validate_report(report)
    lines = [f"# {_md_escape(title)}", ""]
    for line in answer_lines(report):
        lines += [f"**{_md_escape(line)}**" if not line.startswith(" ") else _md_escape(line), ""]
    stamp = ", ".join(filter(None, [f"edgecv {report['edgecv_version']}"
                                    if report.get("edgecv_version") else "",
                                    str(report.get("created") or "")]))
    if stamp:
        lines += [stamp, ""]
    lines += [f"**{label}:** {_md_escape(summary)}" for label, summary in machine_lines(report)]
    lines.append("")
    if report.get("settings"):
        lines += [f"**Settings:** {_md_escape(_settings_summary(report['settings']))}", ""]
    if report.get("warnings"):
        lines += ["**Warnings:**", ""]
        lines += [f"- {_md_escape(str(warning))}" for warning in report["warnings"]]
        lines.append("")
    shown = columns(report["rows"])
    lines.append("| " + " | ".join(shown) + " |")
    lines.append("|" + "|".join("---:" if c in RIGHT_ALIGNED else "---"
                                for c in shown) + "|")
    for row in report["rows"]:
        lines.append("| " + " | ".join(_md_escape(cell) for cell in row_cells(row, shown)) + " |")
    agreement = agreement_lines(report)
    if agreement:
        lines += ["", *(_md_escape(line) for line in agreement)]
    for block in (int8_lines(report), mcu_lines(report)):
        if block:
            lines += ["", _md_escape(block[0]), "",
                      *(f"- {_md_escape(line[2:])}" for line in block[1:])]
    return "\n".join(lines) + "\n"


def write_markdown(report: dict, path, title: str = DEFAULT_TITLE) -> None:
    """Write ``markdown_table(report, title)`` to ``path``, atomically."""
    write_text_atomic(path, markdown_table(report, title))


def _md_escape(text: str) -> str:
    # A pipe would split the cell, a newline the row; "<" would let a renderer eat "<script>".
    text = " ".join(str(text).split())
    for char in ("\\", "|", "<", "*", "`"):
        text = text.replace(char, "\\" + char)
    return text



def print_table(report: dict, console=None) -> None:
    """Print the rows as a terminal table (the cells of the Markdown/HTML report) to ``console``
    (default: stdout, 200 columns wide when piped); the reasons of rows that did not run become
    numbered notes under it."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    shown = columns(report["rows"])
    status_column = shown.index("status")
    # 20 columns: one word per header line and one space between columns keep it about 155
    # characters wide; cells never wrap (a number split over two lines misreads).
    table = Table(title="edgecv bench", box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
    for column in shown:
        table.add_column("\n".join(column.split()), no_wrap=column != "status",
                         justify="right" if column in RIGHT_ALIGNED else "left")
    notes: list[str] = []
    for row in report["rows"]:
        cells = row_cells(row, shown)
        if row["status"] != "ok":
            if row["reason"] not in notes:
                notes.append(row["reason"])
            cells[status_column] = f"{row['status']} [{notes.index(row['reason']) + 1}]"
        table.add_row(*cells)
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped: don't squeeze the table into 80 columns
            console = Console(width=200)
    for line in answer_lines(report):
        console.print(line, highlight=False, markup=False, style=None if line.startswith(" ")
                      else "bold")
    console.print(table)
    for number, note in enumerate(notes, 1):
        console.print(f"[{number}] {note}", highlight=False, markup=False)
    for line in [*agreement_lines(report), *int8_lines(report), *mcu_lines(report)]:
        console.print(line, highlight=False, markup=False)
