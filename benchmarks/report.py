"""Benchmark reports: one report dict -> JSON, Markdown and a self-contained HTML page with plots.

The report dict is what `edgecv bench` produces (``edgecv_version``, ``created``, ``machine``,
``settings``, ``warnings``, ``rows``; one row per artifact x target x threads). Every writer
validates the report first and writes its file atomically (``edgecv.io``).

Only rows with ``status == "ok"`` are ever plotted; the others appear in the tables with their
status and reason and "-" in every measurement cell. matplotlib is imported inside the plotting
functions only, so the device side can write JSON and Markdown (and HTML without plots) without
it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecv.io import write_text_atomic

STATUSES = ("ok", "unavailable", "n/a", "failed")
# The columns of the terminal, Markdown and HTML tables (README, `edgecv bench`); the JSON
# report has every field, std/min/max and the per-run samples included.
TABLE_COLUMNS = ("artifact", "format", "target", "threads", "status", "size MB", "accuracy",
                 "init ms", "first ms", "mean ms", "p50 ms", "p90 ms", "p99 ms", "FPS",
                 "preprocess ms", "peak RSS MB", "RSS delta MB", "speedup vs fp32")
# Cells that hold a measurement: always "-" for a row that is not "ok".
MEASUREMENT_COLUMNS = TABLE_COLUMNS[5:]
MATPLOTLIB_NOTE = "plots need matplotlib (pip install matplotlib)"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_NUMERIC_FIELDS = ("size_bytes", "accuracy", "test_images", "init_ms", "first_ms", "mean_ms",
                   "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "throughput_per_s",
                   "runs", "preprocess_ms", "rss_delta_mb", "peak_rss_mb", "speedup_vs_fp32")
_WIDE_RANGE = 10.0  # max/min ratio above which a latency axis becomes logarithmic
_TARGET_MARKERS = {"cpu": "o", "gpu": "s", "tpu": "^", "edgetpu": "D"}


@dataclass
class Section:
    """A titled block appended to the HTML report after the benchmark part.

    ``text`` is plain text (blank lines separate paragraphs), ``images`` are PNG files embedded
    in the page (a missing file shows a "missing: NAME" note), ``table`` is a list of dicts
    rendered with the union of their keys as columns. Defaults: no text, images or table.
    """

    title: str
    text: str = ""
    images: tuple[Path, ...] = ()
    table: list[dict] | None = None

    def __post_init__(self):
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError(f"Section `title` must be a non-empty string. "
                             f"Received: title={self.title!r}")
        if not isinstance(self.text, str):
            raise ValueError(f"Section `text` must be a string. Received: text={self.text!r}")
        if isinstance(self.images, (str, Path)) or not isinstance(self.images, Sequence):
            raise ValueError(f"Section `images` must be a sequence of PNG paths, e.g. "
                             f"(Path('curves.png'),). Received: images={self.images!r}")
        self.images = tuple(Path(image) for image in self.images)
        if self.table is not None and (not isinstance(self.table, list)
                                       or not all(isinstance(r, dict) for r in self.table)):
            raise ValueError(f"Section `table` must be None or a list of dicts. "
                             f"Received: table={self.table!r}")


# ---------------------------------------------------------------------------------------------
# Validation and table cells


def validate_report(report) -> None:
    """Raise ValueError, naming the row and the value, if ``report`` is not a benchmark report.

    Required: a dict with a ``rows`` list; each row a dict with ``artifact``, ``target`` and a
    ``status`` in STATUSES. Optional ``machine``/``settings`` (dicts) and ``warnings`` (list).
    Measurements must be None or finite numbers, ``accuracy`` within 0..1, ``threads`` None or
    a positive int, ``samples_ms`` absent, None or a list of finite numbers >= 0.
    """
    if not isinstance(report, dict):
        raise ValueError(f"A benchmark report must be a dict. Received: {type(report).__name__}")
    if not isinstance(report.get("rows"), list):
        raise ValueError(f"A benchmark report needs a `rows` list. "
                         f"Received: rows={report.get('rows')!r}")
    for key, kind in (("machine", dict), ("settings", dict), ("warnings", list)):
        if report.get(key) is not None and not isinstance(report[key], kind):
            raise ValueError(f"Report `{key}` must be a {kind.__name__}. "
                             f"Received: {key}={report[key]!r}")
    for index, row in enumerate(report["rows"]):
        _validate_row(index, row)


def _validate_row(index: int, row) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"Report row {index} must be a dict. Received: {row!r}")
    where = f"Report row {index} ({row.get('artifact')!r})"
    for key in ("artifact", "target"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise ValueError(f"{where} needs a non-empty string `{key}`. "
                             f"Received: {key}={row.get(key)!r}")
    if row.get("status") not in STATUSES:
        raise ValueError(f"{where}: `status` must be one of {', '.join(STATUSES)}. "
                         f"Received: status={row.get('status')!r}")
    threads = row.get("threads")
    if threads is not None and (not _is_int(threads) or threads < 1):
        raise ValueError(f"{where}: `threads` must be None or an int >= 1. "
                         f"Received: threads={threads!r}")
    for key in _NUMERIC_FIELDS:
        value = row.get(key)
        if value is None:
            continue
        if not _is_number(value) or not math.isfinite(value):
            raise ValueError(f"{where}: `{key}` must be None or a finite number. "
                             f"Received: {key}={value!r}")
    accuracy = row.get("accuracy")
    if accuracy is not None and not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"{where}: `accuracy` is a fraction in [0, 1]. "
                         f"Received: accuracy={accuracy!r}")
    samples = row.get("samples_ms")
    if samples is not None:
        try:
            values = np.asarray(samples, dtype=np.float64)
        except (TypeError, ValueError):
            values = None
        if values is None or values.ndim != 1 or not np.isfinite(values).all() \
                or (values < 0).any():
            shown = samples if len(repr(samples)) < 120 else f"{repr(samples)[:117]}..."
            raise ValueError(f"{where}: `samples_ms` must be a list of finite numbers >= 0. "
                             f"Received: samples_ms={shown}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def table_cells(row: dict) -> list[str]:
    """The row as display strings, one per TABLE_COLUMNS entry (shared by Markdown and HTML).

    A row that is not "ok" shows "STATUS: REASON" in the status cell and "-" in every
    measurement cell; a missing measurement of an ok row is "-" too. Sizes are in MB (10^6
    bytes), accuracy in percent with 2 decimals, FPS is ``throughput_per_s``, RSS in MB (the
    delta signed).
    """
    status = row["status"]
    ok = status == "ok"
    threads = row.get("threads")
    cells = [str(row["artifact"]), str(row.get("format") or "-"), str(row["target"]),
             "-" if threads is None else str(threads)]
    cells.append("ok" if ok else f"{status}: {row.get('reason') or '(no reason given)'}")

    def measured(key, fmt):
        value = row.get(key)
        return fmt(value) if ok and value is not None else "-"

    cells += [measured("size_bytes", lambda b: f"{b / 1e6:.3f}"),
              measured("accuracy", lambda a: f"{100 * a:.2f}%"),
              *(measured(key, _format_ms) for key in ("init_ms", "first_ms", "mean_ms", "p50_ms",
                                                      "p90_ms", "p99_ms")),
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


def _machine_summary(machine: dict) -> str:
    parts = [str(machine.get("cpu") or "unknown CPU")]
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


def _settings_summary(settings: dict) -> str:
    return ", ".join(f"{key} {_plain_value(value)}" for key, value in settings.items())


def _plain_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain_value(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain_value(v)}" for k, v in value.items()) or "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# ---------------------------------------------------------------------------------------------
# JSON and Markdown


def write_json(report: dict, path) -> None:
    """Write the report (``samples_ms`` included) as indented JSON to ``path``, atomically.
    numpy scalars and arrays become plain numbers and lists, paths become strings."""
    validate_report(report)
    write_text_atomic(path, json.dumps(report, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalar or array
        return value.tolist()
    raise TypeError(f"Report value of type {type(value).__name__} is not JSON serializable. "
                    f"Received: {value!r}")


def markdown_table(report: dict) -> str:
    """The whole Markdown report: a heading, the machine line, settings, warnings as a bullet
    list, then one results table (columns: TABLE_COLUMNS)."""
    validate_report(report)
    lines = ["# edgecv benchmark", ""]
    stamp = ", ".join(filter(None, [f"edgecv {report['edgecv_version']}"
                                    if report.get("edgecv_version") else "",
                                    str(report.get("created") or "")]))
    if stamp:
        lines += [stamp, ""]
    lines += [f"**Machine:** {_md_escape(_machine_summary(report.get('machine') or {}))}", ""]
    if report.get("settings"):
        lines += [f"**Settings:** {_md_escape(_settings_summary(report['settings']))}", ""]
    if report.get("warnings"):
        lines += ["**Warnings:**", ""]
        lines += [f"- {_md_escape(str(warning))}" for warning in report["warnings"]]
        lines.append("")
    lines.append("| " + " | ".join(TABLE_COLUMNS) + " |")
    lines.append("|" + "|".join("---" if c in TABLE_COLUMNS[:5] else "---:"
                                for c in TABLE_COLUMNS) + "|")
    for row in report["rows"]:
        lines.append("| " + " | ".join(_md_escape(cell) for cell in table_cells(row)) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(report: dict, path) -> None:
    """Write ``markdown_table(report)`` to ``path``, atomically."""
    write_text_atomic(path, markdown_table(report))


def _md_escape(text: str) -> str:
    # A pipe would split the cell, a newline the row; "<" would let a renderer eat "<script>".
    text = " ".join(str(text).split())
    for char in ("\\", "|", "<", "*", "`"):
        text = text.replace(char, "\\" + char)
    return text


# ---------------------------------------------------------------------------------------------
# Pareto front


def pareto_front(points) -> list[int]:
    """Indices (ascending) of the points that no other point dominates.

    Each point is ``(latency_ms, accuracy, size_bytes)``: latency and size lower-is-better,
    accuracy higher-is-better. A point is dominated when another one is at least as good in all
    three and strictly better in one, so identical points are all kept. ``inf`` is allowed
    (e.g. an unknown size counts as the worst); NaN is not.
    """
    values = []
    for index, point in enumerate(points):
        try:
            triple = [float(v) for v in point]
        except (TypeError, ValueError):
            triple = []
        if len(triple) != 3 or any(math.isnan(v) for v in triple):
            raise ValueError(f"pareto_front: point {index} must be (latency_ms, accuracy, "
                             f"size_bytes) numbers, not NaN. Received: {point!r}")
        values.append(triple)
    if not values:
        return []
    costs = np.asarray(values) * np.array([1.0, -1.0, 1.0])  # everything lower-is-better
    front = []
    for i, cost in enumerate(costs):
        no_worse = (costs <= cost).all(axis=1)
        better = (costs < cost).any(axis=1)
        if not (no_worse & better).any():
            front.append(i)
    return front


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib imported lazily; each returns a Figure, or None when there is nothing to plot)


def _ok_rows(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row.get("status") == "ok"]


def _row_label(row: dict, with_threads: bool = True) -> str:
    parts = [str(row["artifact"]), str(row["target"])]
    if with_threads and row.get("threads") is not None:
        parts.append(f"{row['threads']} thr")
    return " · ".join(parts)


def _new_figure(width: float, height: float):
    """A Figure on the Agg canvas, outside pyplot (no global state, no GUI backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _is_wide(values) -> bool:
    values = [v for v in values if v > 0]
    return bool(values) and max(values) / min(values) > _WIDE_RANGE


def _log_scale(ax, axis: str) -> None:
    """Log scale on ``axis`` ("x" or "y") with plain tick labels (0.1, 1, 10, not 10^-1)."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        # LogFormatter decides which ticks get a label; the label itself is plain "%g"
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    getattr(ax, f"{axis}axis").set_major_formatter(PlainLogFormatter())
    getattr(ax, f"{axis}axis").set_minor_formatter(PlainLogFormatter(minor_thresholds=(1.5, 0.6)))


def _grid(ax, axis: str = "both") -> None:
    ax.grid(axis=axis, which="major", alpha=0.35)
    ax.grid(axis=axis, which="minor", alpha=0.1)


def plot_latency_distribution(rows: list[dict]):
    """Horizontal box plot of ``samples_ms``, one box per ok row that has samples (log x-axis
    when the latencies span more than 10x). None if no ok row has samples."""
    rows = [row for row in _ok_rows(rows) if row.get("samples_ms")]
    if not rows:
        return None
    data = [np.asarray(row["samples_ms"], dtype=np.float64) for row in rows]
    labels = [f"{_row_label(row)} (n={len(d)})" for row, d in zip(rows, data)]
    fig = _new_figure(9, max(2.6, 0.42 * len(rows) + 1.4))
    ax = fig.add_subplot()
    style = dict(widths=0.6, patch_artist=True, showfliers=True,
                 flierprops=dict(marker=".", markersize=3, alpha=0.5),
                 boxprops=dict(facecolor="#cfe0f3"), medianprops=dict(color="#c0392b"))
    try:
        ax.boxplot(data, orientation="horizontal", **style)
    except TypeError:  # matplotlib < 3.10 has no `orientation`
        ax.boxplot(data, vert=False, **style)
    ax.set_yticks(range(1, len(rows) + 1), labels)
    ax.invert_yaxis()  # first row of the report at the top
    if _is_wide(np.concatenate(data)):
        _log_scale(ax, "x")
    ax.set_xlabel("latency per run (ms)" + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_title("latency distribution (box: quartiles and median, whiskers: 1.5 IQR)")
    _grid(ax, "x")
    return fig


def plot_latency_vs_accuracy(rows: list[dict]):
    """p50 latency vs accuracy, one point per ok row with both; marker area ~ file size,
    colour = format, marker = target; the Pareto front over (latency, accuracy, size) is
    ringed, connected and labelled. None if no ok row has both latency and accuracy."""
    rows = [row for row in _ok_rows(rows)
            if row.get("p50_ms") is not None and row.get("accuracy") is not None]
    if not rows:
        return None
    from matplotlib.lines import Line2D

    latency = np.array([row["p50_ms"] for row in rows], dtype=np.float64)
    accuracy = np.array([100 * row["accuracy"] for row in rows], dtype=np.float64)
    sizes = [row.get("size_bytes") for row in rows]
    front = pareto_front([(lat, acc, math.inf if size is None else size)
                          for lat, acc, size in zip(latency, accuracy, sizes)])
    biggest = max((s for s in sizes if s), default=1)
    area = np.array([40 + 460 * (s / biggest) if s else 40 for s in sizes])

    fig = _new_figure(10, 5.8)
    ax = fig.add_subplot()
    formats = list(dict.fromkeys(str(row.get("format")) for row in rows))
    colours = {fmt: f"C{i % 10}" for i, fmt in enumerate(formats)}
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((str(row.get("format")), row["target"]), []).append(i)
    for (fmt, target), members in groups.items():
        ax.scatter(latency[members], accuracy[members], s=area[members], c=colours[fmt],
                   marker=_TARGET_MARKERS.get(target, "P"), alpha=0.75, edgecolors="white",
                   linewidths=0.8, zorder=3)
    order = sorted(front, key=lambda i: (latency[i], -accuracy[i]))
    ax.plot(latency[order], accuracy[order], linestyle="--", color="0.25", linewidth=1,
            marker="o", markersize=16, markerfacecolor="none", markeredgecolor="0.15",
            markeredgewidth=1.2, zorder=4)
    if _is_wide(latency):
        _log_scale(ax, "x")
    ax.set_xlabel("p50 latency (ms)" + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("accuracy (%)")
    ax.set_title("latency vs accuracy (marker area ~ file size)")
    _grid(ax)
    ax.margins(x=0.08, y=0.12)

    texts = []
    data_to_axes = ax.transData + ax.transAxes.inverted()
    for i in order:
        # labels go right of their point, except near the right edge where they would be cut
        on_left = data_to_axes.transform((latency[i], accuracy[i]))[0] > 0.7
        texts.append(ax.annotate(
            _row_label(rows[i]), (latency[i], accuracy[i]), xytext=(-10 if on_left else 10, 8),
            textcoords="offset points", ha="right" if on_left else "left", fontsize=8,
            bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="0.7", alpha=0.9),
            arrowprops=dict(arrowstyle="-", color="0.5", linewidth=0.6), zorder=5))
    handles = [Line2D([], [], linestyle="", marker="o", markersize=8, color=colours[fmt],
                      label=fmt) for fmt in formats]
    targets = list(dict.fromkeys(row["target"] for row in rows))
    handles += [Line2D([], [], linestyle="", marker=_TARGET_MARKERS.get(t, "P"), markersize=8,
                       markerfacecolor="none", markeredgecolor="0.2", label=f"target {t}")
                for t in targets]
    handles.append(Line2D([], [], linestyle="--", color="0.25", marker="o", markersize=10,
                          markerfacecolor="none", label="Pareto front\n(latency, accuracy, size)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    _spread_labels(fig, texts)
    return fig


def _spread_labels(fig, texts) -> None:
    """Push overlapping annotation labels apart vertically (top label stays put)."""
    if len(texts) < 2:
        return
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed = []
    for text in sorted(texts, key=lambda t: -t.get_window_extent(renderer).y1):
        box = text.get_window_extent(renderer)
        for _ in range(len(texts) + 1):
            hit = next((other for other in placed if box.overlaps(other)), None)
            if hit is None:
                break
            shift_points = (box.y1 - hit.y0 + 3) * 72.0 / fig.dpi
            x, y = text.xyann
            text.xyann = (x, y - shift_points)
            box = text.get_window_extent(renderer)
        placed.append(box)


def plot_thread_scaling(rows: list[dict]):
    """p50 latency vs thread count, one line per artifact x target. None unless the ok rows
    with a p50 cover more than one thread count."""
    rows = [row for row in _ok_rows(rows)
            if row.get("p50_ms") is not None and row.get("threads") is not None]
    thread_counts = sorted({row["threads"] for row in rows})
    if len(thread_counts) < 2:
        return None
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        series.setdefault(_row_label(row, with_threads=False), []).append(
            (row["threads"], row["p50_ms"]))
    fig = _new_figure(10, 5)
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(series.items()):
        threads, p50 = zip(*sorted(points))
        ax.plot(threads, p50, marker="o", label=label, color=f"C{i % 10}",
                linestyle="-" if i < 10 else "--")
    if _is_wide([row["p50_ms"] for row in rows]):
        _log_scale(ax, "y")
    ax.set_xticks(thread_counts)
    ax.set_xlabel("threads")
    ax.set_ylabel("p50 latency (ms)" + (", log scale" if ax.get_yscale() == "log" else ""))
    ax.set_title("thread scaling")
    _grid(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def figure_png(fig) -> bytes:
    """Render a matplotlib Figure to PNG bytes (100 dpi)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f3f7; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.status-ok { color: #1e7b34; } td.status-failed { color: #b3261e; }
td.status-unavailable, td.status-na { color: #8a6100; }
.note { background: #fff6d6; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; }
ul.warnings li { color: #8a4b00; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_html(png: bytes, alt: str, caption: str) -> str:
    return (f'<figure><img src="{_data_uri(png)}" alt="{_esc(alt)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _key_value_table(mapping: dict) -> str:
    body = "".join(f"<tr><th>{_esc(key)}</th><td>{_esc(_plain_value(value))}</td></tr>"
                   for key, value in mapping.items())
    return f"<table>{body}</table>"


def _results_table(rows: list[dict]) -> str:
    if not rows:
        return '<p class="note">The report has no rows.</p>'
    head = "".join(f"<th>{_esc(column)}</th>" for column in TABLE_COLUMNS)
    body = []
    for row in rows:
        cells = []
        for column, cell in zip(TABLE_COLUMNS, table_cells(row)):
            if column == "artifact":
                detail = " | ".join(str(row[k]) for k in ("path", "sha256") if row.get(k))
                title = f' title="{_esc(detail)}"' if detail else ""
                cells.append(f"<td{title}>{_esc(cell)}</td>")
            elif column == "status":
                kind = row["status"].replace("/", "")
                cells.append(f'<td class="status-{_esc(kind)}">{_esc(cell)}</td>')
            elif column in MEASUREMENT_COLUMNS or column == "threads":
                cells.append(f'<td class="num">{_esc(cell)}</td>')
            else:
                cells.append(f"<td>{_esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _plots_html(rows: list[dict]) -> str:
    try:
        import matplotlib  # noqa: F401  (optional on the device side)
    except ImportError:
        return f'<p class="note">{_esc(MATPLOTLIB_NOTE)}</p>'
    skipped = len(rows) - len(_ok_rows(rows))
    only_ok = (f" Only rows with status ok are plotted ({skipped} other row(s) left out)."
               if skipped else "")
    parts = []
    plots = [
        (plot_latency_distribution, "latency distribution",
         "Latency of every timed run, per artifact, target and thread count." + only_ok,
         "No ok row has per-run samples (samples_ms), so there is no latency distribution."),
        (plot_latency_vs_accuracy, "latency vs accuracy",
         "p50 latency against test accuracy; ringed points form the Pareto front over latency, "
         "accuracy and size (no other point is at least as good in all three)." + only_ok,
         "No ok row has both a p50 latency and an accuracy (benchmark with a test set to get "
         "accuracy), so there is no latency-vs-accuracy plot."),
        (plot_thread_scaling, "thread scaling",
         "p50 latency against the number of threads, per artifact and target." + only_ok,
         None),  # one thread count: nothing to say
    ]
    for plot, alt, caption, empty_note in plots:
        fig = plot(rows)
        if fig is None:
            if empty_note:
                parts.append(f'<p class="note">{_esc(empty_note)}</p>')
            continue
        parts.append(_figure_html(figure_png(fig), alt, caption))
    return "\n".join(parts)


def _dict_table(records: list[dict]) -> str:
    columns = list(dict.fromkeys(key for record in records for key in record))
    head = "".join(f"<th>{_esc(column)}</th>" for column in columns)
    body = []
    for record in records:
        cells = []
        for column in columns:
            value = record.get(column)
            number = _is_number(value)
            text = json.dumps(value, default=str) if isinstance(value, (dict, list)) \
                else _plain_value(value)
            cells.append(f'<td class="num">{_esc(text)}</td>' if number
                         else f"<td>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section_html(section: Section) -> str:
    parts = [f"<section><h2>{_esc(section.title)}</h2>"]
    for paragraph in (p.strip() for p in section.text.split("\n\n")):
        if paragraph:
            parts.append(f"<p>{_esc(paragraph)}</p>")
    for image in section.images:
        if not image.is_file():
            parts.append(f'<p class="note">missing: {_esc(image.name)} ({_esc(image)})</p>')
            continue
        data = image.read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            parts.append(f'<p class="note">not a PNG file: {_esc(image.name)} ({_esc(image)})</p>')
            continue
        parts.append(_figure_html(data, image.stem, image.name))
    if section.table is not None:
        parts.append(_dict_table(section.table) if section.table
                     else '<p class="note">empty table</p>')
    parts.append("</section>")
    return "\n".join(parts)


def write_html(report: dict, path, sections: Sequence[Section] = ()) -> None:
    """Write a self-contained HTML report to ``path``, atomically: machine, settings, warnings,
    the results table, plots (embedded PNGs; a visible note instead if matplotlib is missing)
    and then ``sections`` (default: none) in order."""
    validate_report(report)
    sections = tuple(sections)
    for index, section in enumerate(sections):
        if not isinstance(section, Section):
            raise ValueError(f"write_html `sections` must hold Section objects; item {index} is "
                             f"a {type(section).__name__}. Received: {section!r}")
    rows = report["rows"]
    meta = " · ".join(filter(None, [f"edgecv {report['edgecv_version']}"
                                    if report.get("edgecv_version") else "",
                                    str(report.get("created") or "")]))
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>edgecv benchmark</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>edgecv benchmark</h1>", f'<p class="meta">{_esc(meta)}</p>' if meta else "",
             "<h2>Machine</h2>", _key_value_table(report.get("machine") or {})]
    if report.get("settings"):
        parts += ["<h2>Settings</h2>", _key_value_table(report["settings"])]
    if report.get("warnings"):
        parts.append("<h2>Warnings</h2>")
        parts.append('<ul class="warnings">' + "".join(
            f"<li>{_esc(warning)}</li>" for warning in report["warnings"]) + "</ul>")
    parts += ["<h2>Results</h2>", _results_table(rows), "<h2>Plots</h2>", _plots_html(rows)]
    parts += [_section_html(section) for section in sections]
    parts.append("</body></html>")
    write_text_atomic(path, "\n".join(p for p in parts if p) + "\n")
