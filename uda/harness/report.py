"""Reports of a results file: Markdown and a self-contained HTML page with PNG plots."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from uda.harness.results import STATUSES

MIB = 2**20
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def md_escape(text: Any) -> str:
    """Escape a string from data for a Markdown table cell (no markup, no line breaks)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\r", " ").replace("\n", " ")


def _plain(text: Any) -> str:
    """A string from data made safe for matplotlib (no mathtext)."""
    return str(text).replace("$", r"\$")


def _engine_label(case: dict[str, Any]) -> str:
    """Engine and scheduler, marked ``(compile)`` for a case whose cold call compiled from scratch."""
    label = case["engine"] if not case.get("scheduler") else f"{case['engine']}-{case['scheduler']}"
    if (case.get("limits") or {}).get("cold") == "compile":
        label += " (compile)"
    return label


def _log_axes(ax, xs: list[float], ys: list[float]) -> None:
    """Log axes; minor tick labels only where an axis spans less than a factor of 3."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, vals in ((ax.xaxis, xs), (ax.yaxis, ys)):
        fmt = FuncFormatter(lambda v, _pos: f"{v:.3g}")
        axis.set_major_formatter(fmt)
        wide = bool(vals) and max(vals) / min(vals) >= 3
        axis.set_minor_formatter(NullFormatter() if wide else fmt)


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _fmt_rate(x: float | None) -> str:
    if not x:
        return "–"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.2f} {unit}"
    return f"{x:.0f}"


def _quality_text(q: dict[str, float], n: int = 3) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in list(q.items())[:n]) if q else "–"


def case_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row of display strings per case (shared by the Markdown, HTML and terminal tables)."""
    rows = []
    for c in results["cases"]:
        s = c.get("summary") or {}
        spread = (f"{_fmt_s(s.get('wall_s_min'))}–{_fmt_s(s.get('wall_s_max'))}"
                  if s.get("n_warm", 0) > 1 else "–")
        rows.append({
            "case": c["id"], "task": c["task"], "engine": _engine_label(c),
            "scale": c.get("scale") or "–", "status": c["status"],
            "cold s": _fmt_s((c.get("cold") or {}).get("wall_s")) if c["status"] == "ok" else "–",
            "warm s": _fmt_s(s.get("wall_s_median")) if s.get("n_warm") else "–", "min–max": spread,
            "CPU s": _fmt_s(s.get("cpu_s_median")),
            "peak MiB": f"{s['peak_rss_bytes'] / MIB:,.0f}" if s.get("peak_rss_bytes") else "–",
            "rows/s": _fmt_rate(s.get("rows_per_s")) if s.get("n_warm") else "–",
            "quality": _quality_text(c.get("quality") or {}) if s else "–",
            "quality1": _quality_text(c.get("quality") or {}, 1) if s else "–",
        })
    return rows


COLUMNS = ["task", "engine", "scale", "status", "cold s", "warm s", "min–max", "CPU s",
           "peak MiB", "rows/s", "quality"]


def _facts(results: dict[str, Any]) -> list[tuple[str, str]]:
    m = results.get("machine", {})
    git = results.get("git", {})
    suite = results.get("suite", {})
    pk = results.get("packages", {})
    mem = m.get("memory_bytes")
    load = m.get("load_avg_1m")
    return [
        ("run", results.get("run_id", "")),
        ("created (UTC)", results.get("created_utc", "")),
        ("suite", f"{suite.get('name', '')} ({suite.get('source', '')})"),
        ("git commit", f"{git.get('commit') or 'unknown'}{' (uncommitted changes)' if git.get('dirty') else ''}"),
        ("CPU", f"{m.get('cpu_model', '')}, {m.get('cores_logical', '?')} logical cores"
                f" ({m.get('cpu_affinity', '?')} usable)"),
        ("memory", f"{mem / 2**30:.1f} GiB" if mem else "unknown"),
        ("OS", f"{m.get('os', '')}, Python {m.get('python', '')}"),
        ("load at start (1 min)", f"{load:.2f}" if load is not None else "unknown"),
        ("packages", ", ".join(f"{k} {v}" for k, v in pk.items() if v)),
    ]


# ---------------------------------------------------------------- plots

def _ok_cases(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in results["cases"] if c["status"] == "ok" and c.get("summary")]


def _fig(n: int = 1, *, height: float = 3.4):
    from matplotlib.figure import Figure

    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.4 * cols + 0.6, height * rows), dpi=90, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _by_task(cases: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        out.setdefault(c["task"], []).append(c)
    return out


def _plot_scaling(results: dict[str, Any], value: Callable[[dict[str, Any]], float | None],
                  ylabel: str, title: str):
    tasks = _by_task([c for c in _ok_cases(results) if c.get("rows_in")])
    if not tasks:
        return None
    fig, axes = _fig(len(tasks))
    for ax, (task, cases) in zip(axes, sorted(tasks.items()), strict=True):
        engines: dict[str, list[tuple[float, float, str]]] = {}
        for c in cases:
            y = value(c)
            if y:
                engines.setdefault(_engine_label(c), []).append((c["rows_in"], y, c.get("scale") or ""))
        for eng, pts in sorted(engines.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=_plain(eng))
        allx = [p[0] for pts in engines.values() for p in pts]
        ally = [p[1] for pts in engines.values() for p in pts]
        _log_axes(ax, allx, ally)
        ax.set_title(_plain(task), fontsize=10)
        ax.set_xlabel("rows in (log)", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7, which="both")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return fig


def _plot_bars(results: dict[str, Any], value: Callable[[dict[str, Any]], float | None],
               xlabel: str, title: str, *, log: bool):
    cases = [c for c in _ok_cases(results) if value(c)]
    if not cases:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 0.8 + 0.28 * len(cases)), dpi=90, layout="constrained")
    ax = fig.subplots()
    labels = [_plain(f"{c['task']}/{_engine_label(c)}/{c.get('scale') or '-'}") for c in cases]
    ax.barh(range(len(cases)), [value(c) for c in cases], color="#4c72b0")
    ax.set_yticks(range(len(cases)), labels, fontsize=7)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.set_title(title, fontsize=11)
    return fig


def _plot_cold_warm(results: dict[str, Any]):
    cases = [c for c in _ok_cases(results) if c.get("cold")]
    if not cases:
        return None
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 0.9 + 0.3 * len(cases)), dpi=90, layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(cases))
    cold = [c["cold"]["wall_s"] for c in cases]
    warm = [c["summary"]["wall_s_median"] if c["summary"].get("n_warm") else np.nan for c in cases]
    ax.barh(y - 0.2, cold, height=0.4, label="cold (first call)", color="#dd8452")
    ax.barh(y + 0.2, warm, height=0.4, label="warm median", color="#4c72b0")
    ax.set_yticks(y, [_plain(f"{c['task']}/{_engine_label(c)}/{c.get('scale') or '-'}") for c in cases],
                  fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Cold against warm", fontsize=11)
    return fig


def _plot_quality(results: dict[str, Any]):
    tasks = _by_task([c for c in _ok_cases(results) if c.get("quality")
                      and (c.get("limits") or {}).get("cold") != "compile"])
    if not tasks:
        return None
    fig, axes = _fig(len(tasks))
    for ax, (task, cases) in zip(axes, sorted(tasks.items()), strict=True):
        metric = next(iter(cases[0]["quality"]))
        engines: dict[str, list[tuple[float, float, str]]] = {}
        for c in cases:
            if metric in c["quality"]:
                engines.setdefault(_engine_label(c), []).append(
                    (c["summary"]["wall_s_median"], c["quality"][metric],
                     (c.get("scale") or "").partition(":")[0]))
        for eng, pts in sorted(engines.items()):
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=25, label=_plain(eng))
            for x, y, scale in pts:
                ax.annotate(_plain(scale), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.legend(fontsize=7)
        ax.set_xscale("log")
        ax.set_title(_plain(task), fontsize=10)
        ax.set_xlabel("warm median time, s (log)", fontsize=8)
        ax.set_ylabel(_plain(metric), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    fig.suptitle("Answer quality against time", fontsize=11)
    return fig


def _png(fig) -> bytes:
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
    def wall(c):
        return c["summary"]["wall_s_median"]

    def mem(c):
        return c["summary"]["peak_rss_bytes"] / MIB

    def rate(c):
        return c["summary"].get("rows_per_s") if c["summary"].get("n_warm") else None

    specs = [
        ("time", "Warm median time against data size, per engine (log axes)",
         lambda: _plot_scaling(results, wall, "seconds (log)", "Time against data size")),
        ("memory-scaling", "Peak memory of the process tree against data size (log axes)",
         lambda: _plot_scaling(results, mem, "peak RSS, MiB (log)", "Peak memory against data size")),
        ("throughput", "Throughput: input rows per second of warm median time",
         lambda: _plot_bars(results, rate, "rows/s (log)", "Throughput", log=True)),
        ("memory", "Peak memory of the whole process tree (Dask workers included)",
         lambda: _plot_bars(results, mem, "peak RSS, MiB", "Peak memory", log=False)),
        ("cold", "Cold (first call in a fresh process; '(compile)': Numba compiling from scratch) "
                 "against warm median time",
         lambda: _plot_cold_warm(results)),
        ("quality", "Answer quality against warm time (first quality metric of each task)",
         lambda: _plot_quality(results)),
    ]
    out = []
    for name, caption, build in specs:
        fig = build()
        if fig is None:
            continue
        out.append((name, caption, _png(fig)))
    return out


# ---------------------------------------------------------------- documents

def _failures(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in results["cases"] if c["status"] != "ok"]


def _status_counts(results: dict[str, Any]) -> str:
    counts = {s: sum(c["status"] == s for c in results["cases"]) for s in STATUSES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def render_markdown(results: dict[str, Any], plots: list[tuple[str, str, str]]) -> str:
    """The Markdown report; ``plots`` are ``(name, caption, relative PNG path)``."""
    lines = [f"# uda benchmark report: {md_escape(results.get('suite', {}).get('name', ''))}", ""]
    lines += ["| fact | value |", "| --- | --- |"]
    lines += [f"| {k} | {md_escape(v)} |" for k, v in _facts(results)]
    lines += ["", f"**Cases:** {_status_counts(results)}. Times in seconds: *warm s* is the median of the warm repeats "
              "(min–max beside it); *cold s* is the first call in a fresh process (Numba compile included when the case "
              "ran with `cold = \"compile\"`). Peak memory is the whole process tree. A case "
              "that is not `ok` has no summary: its time does not count.", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in case_rows(results):
        lines.append("| " + " | ".join(md_escape(row[c]) for c in COLUMNS) + " |")
    fails = _failures(results)
    if fails:
        lines += ["", "## Cases that did not pass", ""]
        for c in fails:
            lines.append(f"- **{md_escape(c['id'])}**: {md_escape(c['status'])}: {md_escape(c.get('message', ''))}")
    if results.get("datasets"):
        lines += ["", "## Datasets", "", "| dataset | scale | rows | MB | manifest sha256 |", "|---|---|---|---|---|"]
        for key, d in results["datasets"].items():
            lines.append(f"| {md_escape(key)} | {md_escape(d.get('scale'))} | {d.get('rows') or 0:,} | "
                         f"{(d.get('bytes') or 0) / 1e6:,.1f} | {md_escape(str(d.get('manifest_sha256', ''))[:16])}… |")
    if plots:
        lines += ["", "## Plots", ""]
        for _name, caption, rel in plots:
            lines += [f"![{md_escape(caption)}]({rel})", "", f"*{md_escape(caption)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}
th{background:#f3f3f3}td.num{text-align:right}.ok{color:#1a7f37}.bad{color:#c62828;font-weight:bold}
figure{margin:1.5em 0}figcaption{font-style:italic;font-size:13px}img{max-width:100%}"""


def render_html(results: dict[str, Any], plots: list[tuple[str, str, bytes]]) -> str:
    """A self-contained HTML page: every string from data escaped, PNGs embedded as data URIs."""
    e = html.escape
    title = f"uda benchmark report: {results.get('suite', {}).get('name', '')}"
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1><table>"]
    parts += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in _facts(results)]
    parts.append(f"</table><p><b>Cases:</b> {e(_status_counts(results))}. Times are warm repeats; "
                 "cold is the first call in a fresh process. Peak memory is the whole process tree. "
                 "A case that is not ok has no summary: its time does not count.</p><table><tr>")
    parts += [f"<th>{e(c)}</th>" for c in COLUMNS]
    parts.append("</tr>")
    for row in case_rows(results):
        cells = []
        for c in COLUMNS:
            cls = ""
            if c == "status":
                cls = " class=\"ok\"" if row[c] == "ok" else " class=\"bad\""
            elif c not in ("task", "engine", "scale", "quality"):
                cls = " class=\"num\""
            cells.append(f"<td{cls}>{e(row[c])}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    fails = _failures(results)
    if fails:
        parts.append("<h2>Cases that did not pass</h2><ul>")
        parts += [f"<li><b>{e(c['id'])}</b>: {e(c['status'])}: {e(c.get('message', ''))}</li>" for c in fails]
        parts.append("</ul>")
    if plots:
        parts.append("<h2>Plots</h2>")
        for _name, caption, png in plots:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<figure><img alt=\"{e(caption)}\" src=\"data:image/png;base64,{data}\">"
                         f"<figcaption>{e(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(results: dict[str, Any], *, out_dir: str | Path, stem: str,
                 html_page: bool = True) -> dict[str, Path]:
    """Write ``<stem>.md``, its PNGs (``<stem>-<plot>.png``) and optionally ``<stem>.html``.

    Returns
    -------
    dict
        ``{"markdown": path, "html": path (if written), "<plot>": png path, ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = make_plots(results)
    paths: dict[str, Path] = {}
    md_plots = []
    for name, caption, png in plots:
        p = out / f"{stem}-{name}.png"
        p.write_bytes(png)
        paths[name] = p
        md_plots.append((name, caption, p.name))
    md = out / f"{stem}.md"
    md.write_text(render_markdown(results, md_plots))
    paths["markdown"] = md
    if html_page:
        page = out / f"{stem}.html"
        page.write_text(render_html(results, plots))
        paths["html"] = page
    return paths
