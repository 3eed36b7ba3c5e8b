"""The report's PNG plots: scaling with the sizing fit, cold against warm, quality against time, the ratios of two runs."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

from uda.harness.report.comparison import COMPARE_METRICS, METRIC_TITLE
from uda.harness.report.headline import headline_value
from uda.harness.report.text import (
    MIB,
    compact,
    engine_label,
    fmt_rows,
    is_compile,
    plot_text,
    task_key,
)
from uda.harness.results import engine_name


def _log_axes(ax) -> None:
    """Log axes with compact labels, call after plotting. An axis whose limits span less than
    a factor of 3 labels every minor tick; a wider one showing fewer than two powers of ten
    labels the minor ticks at 2 and 5 times a power of ten; a wider one, none (labels never crowd)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    major = FuncFormatter(lambda v, _pos: compact(v))

    def some(v: float, _pos: int) -> str:
        mantissa = round(v / 10 ** math.floor(math.log10(v)), 6) if v > 0 else 0
        return compact(v) if mantissa in (2.0, 5.0) else ""

    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        axis.set_major_formatter(major)
        lo, hi = min(lo, hi), max(lo, hi)
        if lo <= 0 or hi / lo < 3:
            axis.set_minor_formatter(major)
            continue
        powers = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1
        axis.set_minor_formatter(NullFormatter() if powers >= 2 else FuncFormatter(some))


def _ok_cases(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in results["cases"] if c["status"] == "ok" and c.get("summary")]


def _fig(n: int = 1, *, height: float = 3.4):
    from matplotlib.figure import Figure

    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.6 * cols + 0.6, height * rows), dpi=90, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _by_task(cases: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        out.setdefault(task_key(c), []).append(c)
    return out


def sizing_curves(results: dict[str, Any]) -> tuple[dict[tuple[str, str, str], Any], str | None]:
    """The sizing fits of :func:`uda.harness.sizing.fitting.curves` keyed by ``(task, engine, metric)``.

    Returns the curves and, when they cannot be fitted from these results, why.
    """
    from uda.harness.sizing.fitting import curves

    try:
        found = curves([results])
    except (ValueError, KeyError, ZeroDivisionError, ArithmeticError) as exc:
        return {}, f"the sizing fit could not be drawn ({exc.__class__.__name__}: {exc})"
    return {(c.task, c.engine, c.metric): c for c in found}, None


def _plot_scaling(results: dict[str, Any], value: Callable[[dict[str, Any]], float | None],
                  ylabel: str, title: str, *, metric: str, fits: dict[tuple[str, str, str], Any],
                  scale: float = 1.0):
    """One panel per task: every measured scale per engine, the sizing fit through them
    (dashed) and the held-out point (the largest size predicted by a fit without it)."""
    import numpy as np

    tasks = _by_task([c for c in _ok_cases(results) if c.get("rows_in") and not is_compile(c)
                      and (c["summary"].get("n_warm") or 0) > 0])
    if not tasks:
        return None
    fig, axes = _fig(len(tasks))
    colours = [f"C{i}" for i in range(10)]
    for ax, (task, cases) in zip(axes, sorted(tasks.items()), strict=True):
        engines: dict[str, list[tuple[float, float]]] = {}
        for c in cases:
            y = value(c)
            if y:
                engines.setdefault(engine_name(c), []).append((float(c["rows_in"]), y))
        drew_fit = drew_held = False
        for i, (eng, pts) in enumerate(sorted(engines.items())):
            pts.sort()
            col = colours[i % len(colours)]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle="-", color=col,
                    label=plot_text(eng), linewidth=1.2)
            fit = fits.get((task, eng, metric))
            if fit is None or len(pts) < 2:
                continue
            grid = np.geomspace(min(p[0] for p in pts), max(p[0] for p in pts), 40)
            pred = np.asarray(fit.predict(grid), dtype=float) / scale
            ok = np.isfinite(pred) & (pred > 0)
            if ok.any():
                ax.plot(grid[ok], pred[ok], linestyle="--", color=col, linewidth=1, alpha=0.8)
                drew_fit = True
            if fit.heldout is not None:
                rows, measured, predicted = fit.heldout
                if predicted and predicted > 0:
                    ax.plot([rows], [predicted / scale], marker="x", color=col, markersize=8, mew=2,
                            linestyle="none")
                    ax.plot([rows, rows], [measured / scale, predicted / scale], color=col, linewidth=0.8,
                            linestyle=":")
                    err = predicted / measured - 1 if measured else float("nan")
                    ax.annotate(f"{err:+.0%}".replace("-", "−"), (rows, predicted / scale), fontsize=7,
                                xytext=(4, -3), textcoords="offset points", color=col)
                    drew_held = True
        if drew_fit:
            ax.plot([], [], linestyle="--", color="0.4", label="sizing fit")
        if drew_held:
            ax.plot([], [], marker="x", color="0.4", linestyle="none", mew=2,
                    label="held-out prediction")
        _log_axes(ax)
        ax.set_title(plot_text(task), fontsize=10)
        ax.set_xlabel("rows in (log)", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7, which="both")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return fig


def _case_label(c: dict[str, Any]) -> str:
    return plot_text(f"{task_key(c)} / {engine_label(c)} / {c.get('scale') or '-'}")


def _plot_cold_warm(results: dict[str, Any]):
    cases = [c for c in _ok_cases(results) if c.get("cold") and c["cold"].get("wall_s")]
    if not cases:
        return None
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 0.9 + 0.3 * len(cases)), dpi=90, layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(cases))
    cold = [c["cold"]["wall_s"] for c in cases]
    warm = [c["summary"]["wall_s_median"] if c["summary"].get("n_warm") else np.nan for c in cases]
    ax.barh(y - 0.2, cold, height=0.4, label="cold (first call)", color="#dd8452")
    ax.barh(y + 0.2, warm, height=0.4, label="warm median", color="#4c72b0")
    ax.set_yticks(y, [_case_label(c) for c in cases], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Cold against warm", fontsize=11)
    return fig


def _plot_quality(results: dict[str, Any]):
    """Per task, the headline answer quality against warm time, one point per engine and scale."""
    tasks = _by_task([c for c in _ok_cases(results) if c.get("quality") and not is_compile(c)
                      and c["summary"].get("wall_s_median") and headline_value(c["task"], c["quality"])])
    if not tasks:
        return None
    from matplotlib.ticker import FuncFormatter

    fig, axes = _fig(len(tasks))
    for ax, (task, cases) in zip(axes, sorted(tasks.items()), strict=True):
        label = headline_value(cases[0]["task"], cases[0]["quality"])[0]
        engines: dict[str, list[tuple[float, float, str]]] = {}
        for c in cases:
            name, value = headline_value(c["task"], c["quality"])
            if name == label:
                engines.setdefault(engine_name(c), []).append(
                    (c["summary"]["wall_s_median"], value, fmt_rows(c.get("rows_in")) + " rows"
                     if c.get("rows_in") else (c.get("scale") or "")))
        seen: set[str] = set()
        for eng, pts in sorted(engines.items()):
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=25, label=plot_text(eng))
            for x, y, tag in pts:
                if tag not in seen:  # once per size: the engines' answers agree, so their points share y
                    seen.add(tag)
                    ax.annotate(plot_text(tag, 20), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.legend(fontsize=7)
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: compact(v)))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: compact(v)) if hi / lo < 3
                                     else FuncFormatter(lambda v, _pos: ""))
        ax.set_title(plot_text(task), fontsize=10)
        ax.set_xlabel("warm median time, s (log)", fontsize=8)
        ax.set_ylabel(plot_text(label), fontsize=8)
        ax.tick_params(labelsize=7, which="both")
        ax.grid(True, alpha=0.3)
    fig.suptitle("Answer quality (as in the headline) against time", fontsize=11)
    return fig


def plot_ratios(cmp: dict[str, Any]):
    """B/A per case with its confidence interval, one panel per metric (log axis, 1 marked)."""
    import numpy as np
    from matplotlib.figure import Figure

    ids = [r["id"] for r in cmp["metrics"]["wall_s"] if r["ratio"]]
    if not ids:
        return None
    fig = Figure(figsize=(9.0, 1.0 + 0.28 * len(ids)), dpi=90, layout="constrained")
    axes = fig.subplots(1, len(COMPARE_METRICS), sharey=True, squeeze=False).ravel()
    y = np.arange(len(ids))
    for ax, metric in zip(axes, COMPARE_METRICS, strict=True):
        by = {r["id"]: r for r in cmp["metrics"][metric]}
        for i, cid in enumerate(ids):
            r = by.get(cid)
            if not r or not r["ratio"]:
                continue
            col = {"regression": "#c62828", "failed": "#c62828", "improvement": "#1a7f37"}.get(r["verdict"], "#4c72b0")
            if r.get("ci_low") is not None:
                ax.plot([r["ci_low"], r["ci_high"]], [i, i], color=col, linewidth=2)
            ax.plot([r["ratio"]], [i], marker="o", color=col, markersize=4)
        ax.axvline(1.0, color="0.3", linewidth=0.8)
        xs = [v for r in cmp["metrics"][metric] for v in (r["ratio"], r.get("ci_low"), r.get("ci_high")) if v]
        if xs and max(xs) / min(xs) >= 3:
            ax.set_xscale("log")
        from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}×"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        if ax.get_xscale() == "linear":
            ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_title(f"{METRIC_TITLE[metric].split(',')[0]}: B/A", fontsize=10)
        ax.set_xlabel("ratio B/A (bar: confidence interval)", fontsize=8)
        ax.tick_params(labelsize=7, which="both")
        ax.grid(True, axis="x", which="both", alpha=0.3)
    axes[0].set_yticks(y, [plot_text(i) for i in ids], fontsize=7)
    axes[0].invert_yaxis()
    return fig


def png_bytes(fig) -> bytes:
    """The figure as a small PNG: 64-colour palette (plots have few colours), optimised."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    small = io.BytesIO()
    img.save(small, format="PNG", optimize=True)
    return small.getvalue()


def make_plots(results: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    """The report's plots as ``(name, caption, PNG bytes)``; plots without data are left out."""
    fits, why = sizing_curves(results)
    fit_note = ("; dashed: the sizing fit of `uda size` through them, ×: its prediction of the largest size "
                "from a fit without it (error beside it)" if fits else f"; {why}" if why else "")

    def wall(c):
        return c["summary"]["wall_s_median"]

    def mem(c):
        return (c["summary"].get("peak_rss_bytes") or 0) / MIB

    specs = [
        ("time", f"Warm median time at every measured size, per engine (log axes){fit_note}",
         lambda: _plot_scaling(results, wall, "seconds (log)", "Time against data size", metric="wall_s",
                               fits=fits)),
        ("memory-scaling", f"Peak memory of the process tree at every measured size (log axes){fit_note}",
         lambda: _plot_scaling(results, mem, "peak RSS, MiB (log)", "Peak memory against data size",
                               metric="peak_bytes", fits=fits, scale=MIB)),
        ("cold", "Cold (first call in a fresh process; '(compile)': Numba compiling from scratch) "
                 "against warm median time",
         lambda: _plot_cold_warm(results)),
        ("quality", "The headline's answer quality of each task against warm median time, per engine and size",
         lambda: _plot_quality(results)),
    ]
    out = []
    for name, caption, build in specs:
        fig = build()
        if fig is None:
            continue
        out.append((name, caption, png_bytes(fig)))
    return out
