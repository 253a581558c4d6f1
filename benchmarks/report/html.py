"""The self-contained HTML report: machine, settings, warnings, the results table, the plots as
embedded PNGs, then extra sections (training curves, conversion table...).

Without matplotlib the page is still written, with a visible note where the plots would be.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgecv.benchmarks.report.plots import (MATPLOTLIB_NOTE, figure_png, ok_rows,
                                            plot_latency_distribution, plot_latency_vs_accuracy,
                                            plot_thread_scaling)
from edgecv.benchmarks.report.schema import is_number, validate_report
from edgecv.benchmarks.report.tables import (DEFAULT_TITLE, RIGHT_ALIGNED, agreement_lines,
                                             answer_lines, columns, int8_lines, mcu_lines,
                                             plain_value,
                                             row_cells)
from edgecv.io import write_text_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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



# Wide tables (the results' 20 columns) are set small with headers that wrap, so that they fit a
# 1280 px window; each table sits in its own box that scrolls sideways when a narrower window
# (or a longer artifact name) still makes it wider than the page: a column is never cut off.
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
.table-box { overflow-x: auto; max-width: 100%; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.9em; }
table.wide { font-size: 0.75em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
table.wide th, table.wide td { padding: 0.25em 0.35em; }
td.name { white-space: nowrap; }  /* file and format names: one line, never split */
th { background: #f0f3f7; } tr:nth-child(even) td { background: #fafafa; }
table.wide th { vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.key-value td { overflow-wrap: anywhere; }
ol.notes { font-size: 0.9em; color: #555; }
td.status-ok { color: #1e7b34; } td.status-failed { color: #b3261e; }
td.status-unavailable, td.status-na { color: #8a6100; }
.note { background: #fff6d6; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; }
ul.warnings li { color: #8a4b00; }
p.answer { font-size: 1.15em; font-weight: bold; margin-bottom: 0.2em; }
p.why { color: #555; margin-top: 0; }
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


def _boxed(table: str) -> str:
    """A table in its own box, which scrolls sideways if the table is wider than the page."""
    return f'<div class="table-box">{table}</div>'


def _header_cell(column: str) -> str:
    # one word per line: narrow columns of numbers under multi-word headers ("p50 CI ms")
    return "<th>" + "<br>".join(_esc(word) for word in column.split()) + "</th>"


def _key_value_table(mapping: dict) -> str:
    body = "".join(f"<tr><th>{_esc(key)}</th><td>{_esc(plain_value(value))}</td></tr>"
                   for key, value in mapping.items())
    return _boxed(f'<table class="key-value">{body}</table>')


def _results_table(rows: list[dict]) -> str:
    """The rows as a table; a row that is not ok says its status and a note number, and the
    reasons follow as numbered notes (as in the terminal table), so the status column stays
    narrow enough for all 20 columns to fit a 1280 px window."""
    if not rows:
        return '<p class="note">The report has no rows.</p>'
    shown = columns(rows)
    head = "".join(_header_cell(column) for column in shown)
    body, notes = [], []
    for row in rows:
        cells = []
        for column, cell in zip(shown, row_cells(row, shown)):
            if column == "artifact":
                detail = " | ".join(str(row[k]) for k in ("path", "sha256") if row.get(k))
                title = f' title="{_esc(detail)}"' if detail else ""
                cells.append(f'<td class="name"{title}>{_esc(cell)}</td>')
            elif column == "status":
                kind = row["status"].replace("/", "")
                if row["status"] != "ok":
                    reason = row.get("reason") or "(no reason given)"
                    if reason not in notes:
                        notes.append(reason)
                    cell = f"{row['status']} [{notes.index(reason) + 1}]"
                cells.append(f'<td class="status-{_esc(kind)}">{_esc(cell)}</td>')
            elif column in RIGHT_ALIGNED or column in ("threads", "batch"):
                cells.append(f'<td class="num">{_esc(cell)}</td>')
            else:
                cells.append(f'<td class="name">{_esc(cell)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = _boxed(f'<table class="wide"><thead><tr>{head}</tr></thead>'
                   f"<tbody>{''.join(body)}</tbody></table>")
    if notes:
        table += '<ol class="notes">' + "".join(f"<li>{_esc(note)}</li>" for note in notes) \
            + "</ol>"
    return table


def _plots_html(rows: list[dict]) -> str:
    try:
        import matplotlib  # noqa: F401  (optional on the device side)
    except ImportError:
        return f'<p class="note">{_esc(MATPLOTLIB_NOTE)}</p>'
    skipped = len(rows) - len(ok_rows(rows))
    only_ok = (f" Only rows with status ok, one image per call and not emulated are plotted "
               f"({skipped} other row(s) left out)."
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
    head = "".join(_header_cell(column) for column in columns)
    body = []
    for record in records:
        cells = []
        for column in columns:
            value = record.get(column)
            number = is_number(value)
            text = json.dumps(value, default=str) if isinstance(value, (dict, list)) \
                else plain_value(value)
            kind = "num" if number else "name" if " " not in text else None
            cells.append(f'<td class="{kind}">{_esc(text)}</td>' if kind
                         else f"<td>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return _boxed(f'<table class="wide"><thead><tr>{head}</tr></thead>'
                  f"<tbody>{''.join(body)}</tbody></table>")


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


def write_html(report: dict, path, sections: Sequence[Section] = (),
               title: str = DEFAULT_TITLE) -> None:
    """Write a self-contained HTML report to ``path``, atomically: ``title`` (the page's title
    and heading; say what wrote it and of what, e.g. :func:`report_title`), machine, settings,
    warnings, the results table, plots (embedded PNGs; a visible note instead if matplotlib is
    missing) and then ``sections`` (default: none) in order."""
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
             f"<title>{_esc(title)}</title>", f"<style>{_CSS}</style></head><body>",
             f"<h1>{_esc(title)}</h1>", f'<p class="meta">{_esc(meta)}</p>' if meta else "",
             *(f'<p class="answer">{_esc(line)}</p>' if not line.startswith(" ")
               else f'<p class="why">{_esc(line.strip())}</p>' for line in answer_lines(report)),
             "<h2>Machine</h2>", _key_value_table(report.get("machine") or {})]
    for device in report.get("devices") or []:
        parts += [f"<h3>Device {_esc(device['name'])}</h3>", _key_value_table(
            {key: value for key, value in device.items() if key != "machine"}
            | (device.get("machine") or {}))]
    if report.get("settings"):
        parts += ["<h2>Settings</h2>", _key_value_table(report["settings"])]
    if report.get("warnings"):
        parts.append("<h2>Warnings</h2>")
        parts.append('<ul class="warnings">' + "".join(
            f"<li>{_esc(warning)}</li>" for warning in report["warnings"]) + "</ul>")
    parts += ["<h2>Results</h2>", _results_table(rows)]
    parts += [f"<p>{_esc(line)}</p>" for line in agreement_lines(report)]
    for block in (int8_lines(report), mcu_lines(report)):
        if block:
            parts += [f"<p>{_esc(block[0])}</p><ul>"
                      + "".join(f"<li>{_esc(line[2:])}</li>" for line in block[1:]) + "</ul>"]
    parts += ["<h2>Plots</h2>", _plots_html(rows)]
    parts += [_section_html(section) for section in sections]
    parts.append("</body></html>")
    write_text_atomic(path, "\n".join(p for p in parts if p) + "\n")
