"""Write every report file `edgecv bench` was asked for, in one call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from edgecv.benchmarks.report.html import Section, write_html
from edgecv.benchmarks.report.schema import write_json
from edgecv.benchmarks.report.tables import DEFAULT_TITLE, write_markdown


def write_reports(report: dict, json_path=None, md_path=None, html_path=None,
                  sections: Sequence[Section] = (),
                  log: Callable[[str], None] | None = None,
                  title: str = DEFAULT_TITLE) -> list[Path]:
    """Write the report as JSON, Markdown and HTML (with ``sections``; both headed ``title``)
    to each path given (default: none), calling ``log("wrote PATH")`` after each file; return
    the paths written."""
    written = []
    for path, write in ((json_path, write_json),
                        (md_path, lambda report, path: write_markdown(report, path, title)),
                        (html_path, lambda report, path: write_html(report, path, sections,
                                                                    title))):
        if path:
            write(report, path)
            written.append(Path(path))
            if log:
                log(f"wrote {path}")
    return written
