"""Benchmark report writers: JSON, Markdown and self-contained HTML, from synthetic reports.

No TensorFlow; matplotlib is used where present and simulated away where its absence matters.
"""

import base64
import html
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgecv.benchmarks.report import (MEASUREMENT_COLUMNS, TABLE_COLUMNS, Section, markdown_table,
                                      table_cells, validate_report, write_html, write_json,
                                      write_markdown)
from edgecv.benchmarks.report.html import PNG_SIGNATURE
from edgecv.benchmarks.report.plots import MATPLOTLIB_NOTE, pareto_front

SCRIPT_REASON = "<script>alert('x')</script> runtime crashed"


def ok_row(artifact, fmt, runtime, threads, p50, accuracy, size_bytes, *, target="cpu",
           speedup=None, seed=0, samples=True):
    rng = np.random.default_rng(seed)
    samples_ms = (p50 * rng.lognormal(0.0, 0.08, 120)).round(4).tolist() if samples else []
    return {
        "artifact": artifact, "path": f"/runs/x/export/{artifact}", "format": fmt,
        "runtime": runtime, "target": target, "threads": threads, "status": "ok", "reason": None,
        "size_bytes": size_bytes, "sha256": "ab" * 32, "accuracy": accuracy, "test_images": 270,
        "init_ms": 3.1, "first_ms": 2 * p50, "mean_ms": p50 * 1.02, "std_ms": p50 * 0.05,
        "min_ms": p50 * 0.9, "p50_ms": p50, "p90_ms": p50 * 1.1, "p99_ms": p50 * 1.3,
        "max_ms": p50 * 1.6, "throughput_per_s": 1000.0 / (p50 * 1.02), "runs": 120,
        "preprocess_ms": 0.02, "rss_delta_mb": 1.5, "peak_rss_mb": 210.0,
        "speedup_vs_fp32": speedup, "baseline": "model_fp32.tflite" if speedup else None,
        "samples_ms": samples_ms,
    }


def not_ok_row(artifact, fmt, target, status, reason, threads=None, **numbers):
    row = {"artifact": artifact, "path": None, "format": fmt, "runtime": None, "target": target,
           "threads": threads, "status": status, "reason": reason, "size_bytes": None,
           "sha256": None, "accuracy": None, "test_images": None, "runs": None,
           "speedup_vs_fp32": None, "baseline": None}
    for key in ("init_ms", "first_ms", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms",
                "p99_ms", "max_ms", "throughput_per_s", "preprocess_ms", "rss_delta_mb",
                "peak_rss_mb"):
        row[key] = None
    row.update(numbers)
    return row


def make_report():
    rows = []
    for threads in (1, 2):
        scale = 1.0 if threads == 1 else 0.62
        rows += [
            ok_row("model_fp32.tflite", "tflite_fp32", "litert", threads, 0.40 * scale, 0.9963,
                   320_424, speedup=1.0, seed=threads),
            ok_row("model_int8.tflite", "tflite_int8", "litert", threads, 0.21 * scale, 0.9963,
                   98_112, speedup=1.9, seed=10 + threads),
            ok_row("model_fp16.tflite", "tflite_fp16", "litert", threads, 0.41 * scale, 0.9963,
                   163_000, speedup=0.98, seed=20 + threads),
            ok_row("model.onnx", "onnx", "onnxruntime", threads, 0.31 * scale, 0.9926, 318_000,
                   seed=30 + threads),
            ok_row("model_int8.onnx", "onnx_int8", "onnxruntime", threads, 0.25 * scale, 0.9889,
                   114_190, seed=40 + threads),
        ]
    rows += [
        not_ok_row("*", "*", "gpu", "unavailable", "no CUDA provider"),
        not_ok_row("model_fp32.tflite", "tflite_fp32", "edgetpu", "n/a",
                   "only model_edgetpu.tflite runs on the Edge TPU"),
        # A failed row that still carries numbers: none of them may be shown or plotted.
        not_ok_row("model_dynamic.tflite", "tflite_dynamic", "cpu", "failed", SCRIPT_REASON,
                   threads=1, p50_ms=9.0, p90_ms=9.5, accuracy=0.5, size_bytes=77_000,
                   throughput_per_s=111.0, speedup_vs_fp32=0.04, samples_ms=[9.0, 9.1, 9.2]),
    ]
    return {
        "edgecv_version": "0.1.0", "created": "2026-11-23T08:00:00Z",
        "machine": {"cpu": "Intel Xeon Test CPU @ 2.2GHz", "cores": 2,
                    "governor": "unknown (no cpufreq)", "platform": "Linux-6.1-x86_64",
                    "python": "3.11.7",
                    "versions": {"ai_edge_litert": "2.3.0", "onnxruntime": "1.32.0",
                                 "numpy": "2.3.1"}},
        "settings": {"runs": 100, "min_time_s": 1.0, "warmup": 10, "threads": [1, 2],
                     "targets": ["cpu", "gpu", "tpu", "edgetpu"], "batch": 1, "testset": None},
        "warnings": ["CPU frequency governor is 'powersave', not 'performance': latency is noisy"],
        "rows": rows,
    }


def markdown_rows(text):
    """Table rows (header first) as lists of cells; '\\|' inside a cell is not a separator."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


# ---------------------------------------------------------------------------------------------
# Markdown


def test_reports_are_titled_with_the_command_and_what_it_measured(tmp_path):
    """Issue 31: a pipeline's report was titled "edgecv benchmark"."""
    from edgecv.benchmarks.report import report_title, write_reports

    title = report_title("bench", ["runs/digits", "model_int8.onnx"])
    assert title == "edgecv bench: runs/digits, model_int8.onnx"
    assert report_title("bench", list("abcde")) == "edgecv bench: a, b, c and 2 more"
    write_reports(make_report(), md_path=tmp_path / "b.md", html_path=tmp_path / "b.html",
                  title=title)
    page = (tmp_path / "b.html").read_text()
    assert f"<title>{title}</title>" in page and f"<h1>{title}</h1>" in page
    assert (tmp_path / "b.md").read_text().startswith(f"# {title}\n")


def test_markdown_has_heading_machine_warnings_and_one_table():
    report = make_report()
    text = markdown_table(report)
    assert text.startswith("# ")
    machine_line = next(line for line in text.splitlines() if "Intel Xeon Test CPU" in line)
    for fragment in ("2 cores", "governor unknown (no cpufreq)", "ai_edge_litert 2.3.0",
                     "onnxruntime 1.32.0"):
        assert fragment in machine_line
    assert "- CPU frequency governor is 'powersave'" in text
    separators = [line for line in text.splitlines() if line.startswith("|-") or line == "|---|"]
    assert len(separators) == 1
    table = markdown_rows(text)
    assert table[0] == list(TABLE_COLUMNS)
    assert len(table) == 1 + len(report["rows"])
    assert all(len(cells) == len(TABLE_COLUMNS) for cells in table)


def test_markdown_ok_row_formats_accuracy_fps_and_speedup():
    report = make_report()
    table = markdown_rows(markdown_table(report))
    cells = dict(zip(table[0], table[2]))  # model_int8.tflite, 1 thread
    row = report["rows"][1]
    assert cells["artifact"] == "model_int8.tflite" and cells["threads"] == "1"
    assert cells["batch"] == ("-" if row.get("batch") is None else str(row["batch"]))
    assert cells["status"] == "ok"
    assert cells["accuracy"] == "99.63%"
    assert cells["size MB"] == "0.098"
    assert cells["p50 ms"] == "0.210" and cells["p90 ms"] == "0.231"
    assert cells["FPS"] == f"{row['throughput_per_s']:.0f}"
    assert cells["speedup vs fp32"] == "1.90x"
    assert cells["init ms"] == "3.100" and cells["first ms"] == "0.420"
    assert cells["mean ms"] == "0.214" and cells["p99 ms"] == "0.273"
    assert cells["preprocess ms"] == "0.020"
    assert cells["peak RSS MB"] == "210.0" and cells["RSS delta MB"] == "+1.5"
    onnx = dict(zip(table[0], table[4]))
    assert onnx["speedup vs fp32"] == "-"  # no baseline for ONNX: a dash, not 0 or 1


def test_markdown_non_ok_rows_show_reason_and_no_numbers():
    report = make_report()
    table = markdown_rows(markdown_table(report))
    by_status = {}
    for cells in table[1:]:
        row = dict(zip(table[0], cells))
        by_status.setdefault(row["status"].split(":")[0], []).append(row)
    assert set(by_status) == {"ok", "unavailable", "n/a", "failed"}
    assert by_status["unavailable"][0]["status"] == "unavailable: no CUDA provider"
    assert by_status["n/a"][0]["status"].startswith("n/a: only model")
    failed = by_status["failed"][0]
    assert "runtime crashed" in failed["status"]
    assert failed["status"].startswith(r"failed: \<script>")  # a renderer cannot swallow it
    for rows in (by_status["unavailable"], by_status["n/a"], by_status["failed"]):
        for row in rows:
            assert [row[c] for c in MEASUREMENT_COLUMNS] == ["-"] * len(MEASUREMENT_COLUMNS)


def test_tables_have_the_columns_the_manual_lists():
    """The benchmarking guide names the table columns; the terminal, Markdown and HTML tables
    show exactly those, and they include what the review found missing (init, first, mean, p99,
    preprocess, RSS)."""
    guide = Path(__file__).parents[1] / "docs" / "guides" / "benchmarking.md"
    text = " ".join(guide.read_text().split())
    listed = text.split("The terminal table, `--md` and `--html` show these columns: ", 1)[1]
    assert re.findall(r"`([^`]+)`", listed.split(" (a row", 1)[0]) == list(TABLE_COLUMNS)
    for column in ("init ms", "first ms", "mean ms", "p99 ms", "preprocess ms", "peak RSS MB",
                   "RSS delta MB"):
        assert column in TABLE_COLUMNS


def test_terminal_table_shows_every_column_of_every_ok_row(capsys):
    from edgecv.benchmarks.report import print_table

    report = make_report()
    print_table(report)
    lines = capsys.readouterr().out.splitlines()
    for row in report["rows"]:
        if row["status"] == "ok":
            cells = table_cells(row)
            assert any(line.split() == cells for line in lines), (cells, lines)
    header = [line.split() for line in lines[:6]]
    for word in ("init", "first", "mean", "p99", "preprocess", "peak", "delta", "RSS"):
        assert any(word in words for words in header), word


def test_markdown_cell_with_pipe_and_newline_stays_one_cell():
    report = make_report()
    report["rows"] = [not_ok_row("a|b.tflite", "tflite_fp32", "cpu", "failed", "line one\nx | y")]
    table = markdown_rows(markdown_table(report))
    assert len(table) == 2 and len(table[1]) == len(TABLE_COLUMNS)
    assert table[1][TABLE_COLUMNS.index("status")] == r"failed: line one x \| y"


def test_non_ok_row_without_reason_says_so():
    cells = table_cells(not_ok_row("m.onnx", "onnx", "gpu", "unavailable", None))
    assert cells[TABLE_COLUMNS.index("status")] == "unavailable: (no reason given)"


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize("mutate, fragment", [
    (lambda r: r["rows"][0].update(status="skipped"), "status='skipped'"),
    (lambda r: r["rows"][0].update(accuracy=99.6), "accuracy=99.6"),
    (lambda r: r["rows"][0].update(p50_ms=float("nan")), "p50_ms=nan"),
    (lambda r: r["rows"][0].update(threads=0), "threads=0"),
    (lambda r: r["rows"][0].update(samples_ms=[1.0, "fast"]), "samples_ms=[1.0, 'fast']"),
    (lambda r: r["rows"][0].update(samples_ms=[1.0, -0.5]), "samples_ms=[1.0, -0.5]"),
    (lambda r: r["rows"][0].pop("artifact"), "artifact=None"),
    (lambda r: r.update(rows="none"), "rows='none'"),
])
def test_invalid_reports_are_refused_with_the_value(mutate, fragment, tmp_path):
    report = make_report()
    mutate(report)
    with pytest.raises(ValueError) as info:
        validate_report(report)
    assert fragment in str(info.value)
    with pytest.raises(ValueError):
        write_json(report, tmp_path / "bench.json")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Pareto front


def test_pareto_front_on_hand_made_points():
    points = [
        (1.0, 0.90, 100),  # 0: fastest
        (2.0, 0.95, 100),  # 1: more accurate
        (2.0, 0.90, 100),  # 2: dominated by 0 (slower, same accuracy and size)
        (3.0, 0.95, 50),   # 3: slower than 1 but smaller: on the 3-D front
        (3.0, 0.95, 60),   # 4: dominated by 3 (bigger, otherwise equal)
        (1.0, 0.90, 100),  # 5: exact tie with 0: neither dominates, both kept
        (5.0, 0.80, 500),  # 6: dominated by everything
    ]
    assert pareto_front(points) == [0, 1, 3, 5]


def test_pareto_front_edge_cases():
    assert pareto_front([]) == []
    assert pareto_front([(4.0, 0.5, 10)]) == [0]
    # unknown size as inf: loses to a known size, otherwise stays on the front
    assert pareto_front([(1.0, 0.9, float("inf")), (1.0, 0.9, 10), (0.5, 0.8, float("inf"))]) \
        == [1, 2]
    assert pareto_front(np.array([[2.0, 0.9, 1.0], [1.0, 0.9, 1.0]])) == [1]
    with pytest.raises(ValueError, match=r"point 1 .*Received: \(1.0, nan, 3\)"):
        pareto_front([(1.0, 0.9, 3), (1.0, float("nan"), 3)])
    with pytest.raises(ValueError, match="point 0"):
        pareto_front([(1.0, 0.9)])


# ---------------------------------------------------------------------------------------------
# JSON


def test_json_keeps_samples_and_converts_numpy(tmp_path):
    report = make_report()
    report["rows"][0]["runs"] = np.int64(120)
    report["rows"][0]["samples_ms"] = np.array(report["rows"][0]["samples_ms"])
    path = tmp_path / "bench.json"
    write_json(report, path)
    again = json.loads(path.read_text())
    assert again["rows"][0]["runs"] == 120
    assert again["rows"][0]["samples_ms"] == pytest.approx(report["rows"][0]["samples_ms"].tolist())
    assert again["rows"][-1]["reason"] == SCRIPT_REASON
    assert again["machine"] == report["machine"]


# ---------------------------------------------------------------------------------------------
# HTML

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="the plot tests need matplotlib")


def img_sources(text):
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", text)


def assert_self_contained(text):
    assert 'src="http' not in text and "href=" not in text
    assert "<link" not in text and "<script" not in text
    for src in img_sources(text):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_SIGNATURE)


@needs_matplotlib
def test_html_is_self_contained_with_table_plots_and_escaped_reason(tmp_path):
    report = make_report()
    path = tmp_path / "bench.html"
    write_html(report, path)
    text = path.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert len(img_sources(text)) == 3  # distribution, latency vs accuracy, thread scaling
    for row in report["rows"]:
        assert row["artifact"] in text
    for reason in ("no CUDA provider", "only model_edgetpu.tflite runs on the Edge TPU"):
        assert reason in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; runtime crashed" in text
    assert "Intel Xeon Test CPU" in text and "governor is &#x27;powersave&#x27;" in text
    results = text.split("<h2>Results</h2>", 1)[1].split("</table>", 1)[0]
    headers = re.findall(r"<th>(.*?)</th>", results)  # one word a line
    assert [h.replace("<br>", " ") for h in headers] == [html.escape(c) for c in TABLE_COLUMNS]
    first = re.findall(r"<td[^>]*>(.*?)</td>", results.split("<tbody>", 1)[1].split("</tr>")[0])
    assert first == [html.escape(c) for c in table_cells(report["rows"][0])]
    # a row that did not run: its status and a note number; the reasons are notes under it
    body = text.split("<h2>Results</h2>", 1)[1].split("<h2>", 1)[0]
    notes = re.findall(r"<li>(.*?)</li>", body.split('<ol class="notes">', 1)[1])
    assert notes == ["no CUDA provider", "only model_edgetpu.tflite runs on the Edge TPU",
                     html.escape(SCRIPT_REASON)]
    assert ">unavailable [1]</td>" in body and ">failed [3]</td>" in body
    assert MATPLOTLIB_NOTE not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.html"]


@needs_matplotlib
def test_plots_use_only_ok_rows():
    from edgecv.benchmarks.report.plots import (plot_latency_distribution,
                                                plot_latency_vs_accuracy, plot_thread_scaling)

    rows = make_report()["rows"]
    ok = [row for row in rows if row["status"] == "ok"]

    boxes = plot_latency_distribution(rows).axes[0]
    labels = [t.get_text() for t in boxes.get_yticklabels()]
    assert len(labels) == len(ok)
    assert not any("dynamic" in label for label in labels)

    scatter = plot_latency_vs_accuracy(rows).axes[0]
    offsets = np.concatenate([c.get_offsets() for c in scatter.collections])
    assert len(offsets) == len(ok)
    assert 9.0 not in offsets[:, 0] and 50.0 not in offsets[:, 1]
    # int8 TFLite at 2 threads is the fastest, most accurate and smallest: the whole front
    assert [t.get_text() for t in scatter.texts] == ["model_int8.tflite · cpu · 2 thr"]

    scaling = plot_thread_scaling(rows).axes[0]
    assert len(scaling.get_lines()) == 5  # one line per artifact on cpu
    assert all(len(line.get_xdata()) == 2 for line in scaling.get_lines())


@needs_matplotlib
def test_plots_with_nothing_to_show_are_left_out_with_a_note(tmp_path):
    from edgecv.benchmarks.report.plots import plot_thread_scaling

    report = make_report()
    report["rows"] = [ok_row("m.tflite", "tflite_fp32", "litert", 1, 0.5, None, 1000,
                             samples=False)] + report["rows"][-3:]
    assert plot_thread_scaling(report["rows"]) is None
    path = tmp_path / "bench.html"
    write_html(report, path)
    text = path.read_text()
    assert img_sources(text) == []
    assert "No ok row has per-run samples" in text and "benchmark with a test set" in text


def test_html_without_matplotlib_still_writes_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    path = tmp_path / "bench.html"
    write_html(make_report(), path, sections=[Section("training", text="curves")])
    text = path.read_text()
    assert MATPLOTLIB_NOTE in text
    assert img_sources(text) == []
    assert "model_int8.onnx" in text and "no CUDA provider" in text and "curves" in text


@needs_matplotlib
def test_sections_embed_images_tables_and_note_missing_files(tmp_path):
    from edgecv.benchmarks.report.plots import figure_png, plot_thread_scaling

    curves = tmp_path / "training_curves.png"
    curves.write_bytes(figure_png(plot_thread_scaling(make_report()["rows"])))
    not_png = tmp_path / "photo.png"
    not_png.write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
    sections = [
        Section("Training", text="first paragraph\n\nsecond <b>paragraph</b>",
                images=(curves, tmp_path / "confusion_matrix.png", not_png)),
        Section("Conversion", table=[{"artifact": "model_int8.tflite", "accuracy": 0.9963},
                                     {"artifact": "model.onnx", "agreement": 1.0,
                                      "note": "<i>x</i>"}]),
    ]
    path = tmp_path / "out" / "report.html"
    write_html(make_report(), path, sections=sections)
    text = path.read_text()
    assert_self_contained(text)
    assert len(img_sources(text)) == 4  # three plots + training_curves.png
    assert "missing: confusion_matrix.png" in text
    assert "not a PNG file: photo.png" in text
    assert "second &lt;b&gt;paragraph&lt;/b&gt;" in text
    assert text.index("<h2>Results</h2>") < text.index("<h2>Training</h2>") \
        < text.index("<h2>Conversion</h2>")
    header = re.search(r"<h2>Conversion</h2>.*?<thead><tr>(.*?)</tr>", text, re.S).group(1)
    assert re.findall(r"<th>(.*?)</th>", header) == ["artifact", "accuracy", "agreement", "note"]
    assert "&lt;i&gt;x&lt;/i&gt;" in text


def test_section_and_sections_validation(tmp_path):
    with pytest.raises(ValueError, match="title=''"):
        Section("")
    with pytest.raises(ValueError, match="images='a.png'"):
        Section("t", images="a.png")
    assert Section("t", images=["a.png"]).images[0].name == "a.png"
    with pytest.raises(ValueError, match="item 0 is a dict"):
        write_html(make_report(), tmp_path / "r.html", sections=[{"title": "x"}])
    assert list(tmp_path.iterdir()) == []


@needs_matplotlib
def test_atomic_writes_leave_only_the_report_files(tmp_path):
    report = make_report()
    write_json(report, tmp_path / "bench.json")
    write_markdown(report, tmp_path / "bench.md")
    write_html(report, tmp_path / "bench.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.html", "bench.json", "bench.md"]
    assert markdown_table(report) == (tmp_path / "bench.md").read_text()


@pytest.mark.parametrize("writer, name", [("write_json", "bench.json"),
                                          ("write_markdown", "bench.md"),
                                          ("write_html", "bench.html")])
def test_a_write_that_fails_midway_keeps_the_old_file(tmp_path, writer, name):
    """A real failure after the file is opened and half written: in a child process the file
    size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the write fail with EFBIG halfway through
    the new report, as a full disk would. The old complete report must still be there, and no
    temporary file."""
    resource = pytest.importorskip("resource")
    del resource
    old = make_report()
    old["rows"] = old["rows"][:1]  # a short old report, then a longer new one
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(make_report()))
    code = textwrap.dedent(f"""
        import errno, json, os, pathlib, resource, signal, sys
        sys.modules["matplotlib"] = None  # the HTML without plots: the write is what is tested
        from edgecv.benchmarks import report as writers
        folder = pathlib.Path({str(tmp_path)!r})
        write = getattr(writers, {writer!r})
        target = folder / "out" / {name!r}
        write(json.loads((folder / "old.json").read_text()), target)
        old_bytes = target.read_bytes()
        new = json.loads((folder / "new.json").read_text())
        probe = folder / "probe" / {name!r}
        write(new, probe)  # the new report's full size, written without a limit
        limit = probe.stat().st_size // 2  # half of it reaches the disk, then EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            write(new, target)
        except OSError as exc:
            assert exc.errno == errno.EFBIG, exc
        else:
            raise SystemExit("the write did not fail")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert target.read_bytes() == old_bytes, "the old report was damaged"
        print(sorted(p.name for p in target.parent.iterdir()))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == repr([name])  # no temporary file left


def test_importing_the_module_does_not_import_matplotlib():
    code = ("import sys, edgecv.benchmarks.report; "
            "print([m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'tensorflow')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@needs_matplotlib
def test_names_with_mathtext_characters_are_drawn_as_written():
    """Artifact, device and class names come from the user's files: `$^$` made matplotlib's
    mathtext raise (issue 31) and `$x$` would lose its dollars. Every plot draws them as written."""
    from matplotlib.text import Text

    from edgecv.benchmarks.report.plots import (figure_png, plot_latency_distribution,
                                                plot_latency_vs_accuracy, plot_thread_scaling)

    rows = []
    for threads in (1, 2):
        rows += [ok_row("$^$.tflite", "tflite_fp32", "litert", threads, 0.4 / threads, 0.99,
                        300_000, seed=threads),
                 ok_row("a_$x$.onnx", "onnx", "onnxruntime", threads, 0.3 / threads, 0.98,
                        310_000, seed=10 + threads)]
    for plot in (plot_latency_distribution, plot_latency_vs_accuracy, plot_thread_scaling):
        fig = plot(rows)
        assert figure_png(fig).startswith(PNG_SIGNATURE)
        texts = [t for t in fig.findobj(Text) if "$" in t.get_text()]
        assert any("$^$.tflite" in t.get_text() for t in texts), plot.__name__
        assert all(not t.get_parse_math() and not t.get_usetex() for t in texts), plot.__name__
