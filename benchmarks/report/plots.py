"""The report's plots (matplotlib, imported inside the functions only, so the device side can
write the other reports without it): latency distribution, latency vs accuracy with its Pareto
front, thread scaling.

Only rows with ``status == "ok"`` are ever plotted. Each plot returns a Figure, or None when
there is nothing to plot. Every text is drawn as written (:func:`literal_text`): names come
from files, devices and class folders, and matplotlib would read ``$...$`` in them as math.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np

MATPLOTLIB_NOTE = "plots need matplotlib (pip install matplotlib)"
_WIDE_RANGE = 10.0  # max/min ratio above which a latency axis becomes logarithmic
_TARGET_MARKERS = {"cpu": "o", "gpu": "s", "tpu": "^", "edgetpu": "D"}


@contextlib.contextmanager
def literal_text():
    """Within it (or on a function it decorates), matplotlib draws every text as written: no
    mathtext (``$^$`` raises in its parser, ``a_$x$`` loses its dollars) and no TeX, whatever
    the user's matplotlibrc says. Text objects take these settings when they are made, tick
    labels when the figure is drawn: create and save a figure within it."""
    import matplotlib

    with matplotlib.rc_context({"text.usetex": False, "text.parse_math": False}):
        yield


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



def ok_rows(rows: list[dict]) -> list[dict]:
    """The rows the latency plots show: measured, one image per call (``--batch`` rows above 1
    are throughput figures, in the tables), not under emulation (its timings are not a CPU's)."""
    return [row for row in rows if row.get("status") == "ok" and row.get("batch") in (1, None)
            and not row.get("emulated")]


def _row_label(row: dict, with_threads: bool = True) -> str:
    parts = [str(row["artifact"]), str(row["target"])]
    if row.get("device"):
        parts.insert(0, str(row["device"]))
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


@literal_text()
def plot_latency_distribution(rows: list[dict]):
    """Horizontal box plot of ``samples_ms``, one box per ok row that has samples (log x-axis
    when the latencies span more than 10x). None if no ok row has samples."""
    rows = [row for row in ok_rows(rows) if row.get("samples_ms")]
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


@literal_text()
def plot_latency_vs_accuracy(rows: list[dict]):
    """p50 latency vs accuracy, one point per ok row with both; marker area ~ file size,
    colour = format, marker = target, a horizontal bar = the p50 interval (``p50_ci_ms``); the
    y axis ends at 100%; the Pareto front over (latency, accuracy, size) is
    ringed, connected and labelled. None if no ok row has both latency and accuracy."""
    rows = [row for row in ok_rows(rows)
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
                   linewidths=0.8, zorder=3, clip_on=False)
    for i, row in enumerate(rows):  # the p50 interval over the rounds: overlapping bars are ties
        if row.get("p50_ci_ms"):
            low, high = row["p50_ci_ms"]
            ax.plot([low, high], [accuracy[i]] * 2, color=colours[str(row.get("format"))],
                    linewidth=1.2, alpha=0.8, zorder=2, clip_on=False)
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
    bottom, top = ax.get_ylim()
    if top > 100.0:  # accuracy stops at 100%: the axis does too (markers there are not clipped)
        ax.set_ylim(bottom, 100.0)

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


@literal_text()
def plot_thread_scaling(rows: list[dict]):
    """p50 latency vs thread count, one line per artifact x target. None unless the ok rows
    with a p50 cover more than one thread count."""
    rows = [row for row in ok_rows(rows)
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


@literal_text()
def figure_png(fig) -> bytes:
    """Render a matplotlib Figure to PNG bytes (100 dpi)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()

