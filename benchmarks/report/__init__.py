"""Benchmark reports: one report dict -> a terminal table, JSON, Markdown and a self-contained
HTML page with plots.

One module per job: ``schema`` (the typed row, validation, bench.json), ``tables`` (columns,
cells, the terminal and Markdown tables), ``plots`` (matplotlib, imported lazily), ``html`` and
``files`` (every requested report file at once).
"""

from edgecv.benchmarks.report.files import write_reports
from edgecv.benchmarks.report.html import Section, write_html
from edgecv.benchmarks.report.schema import STATUSES, validate_report, write_json
from edgecv.benchmarks.row import BenchRow
from edgecv.benchmarks.report.tables import (MEASUREMENT_COLUMNS, TABLE_COLUMNS, markdown_table,
                                             print_table, report_title, table_cells,
                                             write_markdown)

__all__ = ["MEASUREMENT_COLUMNS", "STATUSES", "TABLE_COLUMNS", "BenchRow", "Section",
           "markdown_table", "print_table", "report_title", "table_cells", "validate_report",
           "write_html", "write_json", "write_markdown", "write_reports"]
