"""The report's documents: Markdown and self-contained HTML pages, written with their plots (one run, or two side by side)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any
from urllib.parse import quote

from uda.harness.report.comparison import (
    COMPARE_COLUMNS,
    COMPARE_METRICS,
    METRIC_TITLE,
    compare_rows,
    compare_runs,
)
from uda.harness.report.headline import (
    RED_AT,
    cell_colour,
    cell_text,
    cell_title,
    change_colour,
    relative_table,
)
from uda.harness.report.plots import make_plots, plot_ratios, png_bytes
from uda.harness.report.tables import (
    METRIC_WORD,
    Table,
    compare_tables,
    headline_table,
    markdown_table,
    report_tables,
)
from uda.harness.report.text import COLUMNS, case_rows, fmt_rows, md_escape
from uda.harness.results import STATUSES
from uda.store import atomic_write, atomic_write_text, make_folder

# ---------------------------------------------------------------- documents

def _facts(results: dict[str, Any]) -> list[tuple[str, str]]:
    m = results.get("machine", {})
    git = results.get("git", {})
    suite = results.get("suite", {})
    pk = results.get("packages", {})
    mem = m.get("memory_bytes")
    load = m.get("load_avg_1m")
    facts = [
        ("run", results.get("run_id", "")),
        ("created (UTC)", results.get("created_utc", "")),
        ("suite", f"{suite.get('name', '')} ({suite.get('source', '')})"),
        ("git commit", f"{git.get('commit') or 'unknown'}{' (uncommitted changes)' if git.get('dirty') else ''}"),
        ("CPU", f"{m.get('cpu_model', '')}, {m.get('cores_logical', '?')} logical cores"
                f" ({m.get('cpu_affinity', '?')} usable)" if m else "not recorded"),
        ("memory", f"{mem / 2**30:.1f} GiB" if mem else "not recorded"),
        ("OS", f"{m.get('os', '')}, Python {m.get('python', '')}" if m else "not recorded"),
        ("load at start (1 min)", f"{load:.2f}" if load is not None else "not recorded"),
        ("packages", ", ".join(f"{k} {v}" for k, v in pk.items() if v) or "not recorded"),
    ]
    return facts


def _failures(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in results["cases"] if c["status"] != "ok"]


def _status_counts(results: dict[str, Any]) -> str:
    counts = {s: sum(c["status"] == s for c in results["cases"]) for s in STATUSES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def _intro(results: dict[str, Any]) -> str:
    m = results.get("machine") or {}
    if results.get("origin") == "uda run":
        return ("A result of uda run: its answer quality, and the time the task reported for itself "
                "(one call, not measured by the harness; no memory).")
    where = f"{m.get('cpu_affinity', '?')} usable cores of {m.get('cpu_model', 'an unrecorded CPU')}"
    load = m.get("load_avg_1m")
    return (f"Cases: {_status_counts(results)}; run {results.get('run_id', '')} on {where}"
            + (f", load {load:.1f} at the start" if load is not None else "") + ".")


_HEADLINE_NOTE = ("*Fastest engine*: lowest warm median; \"by how much\" is the next engine's median over it, with "
                  "the bootstrap confidence interval of `uda compare`; ≈ when the interval holds 1 (the difference "
                  "is within the noise of the repeats). *Answer "
                  "quality*: flow, the best learnt forecaster's MAE skill over the best naive one (last value, "
                  "seasonal naive, historical average); water, the best detector's F1; route, the relative gap; "
                  "utilisation, the share of collected rows used; standardise, the integrated share. *Engines*: "
                  "the cross-engine answer check.")


def render_markdown(results: dict[str, Any], plots: list[tuple[str, str, str]]) -> str:
    """The Markdown report; ``plots`` are ``(name, caption, relative PNG path)``."""
    lines = [f"# uda benchmark report: {md_escape(results.get('suite', {}).get('name', ''))}", "",
             md_escape(_intro(results)), ""]
    tables = report_tables(results)
    lines += ["## Headline", ""] + markdown_table(tables[0], caption=False) + [_HEADLINE_NOTE, ""]
    if len(tables) > 1:
        lines += ["## Relative to the best engine", "",
                  "Each cell is the engine's warm median (or peak memory) over the best engine's for that task and "
                  "scale, with the absolute value in brackets; the last row is the geometric mean of the ratios.", ""]
        for t in tables[1:]:
            lines += markdown_table(t)
    if plots:
        lines += ["## Plots", ""]
        for _name, caption, rel in plots:
            lines += [f"![{md_escape(caption)}]({quote(rel)})", "", f"*{md_escape(caption)}*", ""]
    lines += ["## Every case", "", "Times in seconds: *warm s* is the median of the warm repeats (min–max beside "
              "it); *cold s* is the first call in a fresh process (Numba compile included when the case ran with "
              "`cold = \"compile\"`). Peak memory is the whole process tree. A case that is not `ok` has no "
              "summary: its time does not count.", ""]
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
    lines += ["", "## About this run", "", "| fact | value |", "| --- | --- |"]
    lines += [f"| {k} | {md_escape(v)} |" for k, v in _facts(results)]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1180px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;
vertical-align:top}th{background:#f3f3f3;text-align:left}td.num{text-align:right;white-space:nowrap}
.ok{color:#1a7f37}.bad{color:#c62828;font-weight:bold}.note{font-size:13px;color:#555;max-width:75em}
td.rel{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums;min-width:6em;cursor:help}
td.best{font-weight:bold}table.relative td:nth-child(2){max-width:24em}tr.geo td{border-top:2px solid #888;font-weight:bold}
caption{text-align:left;font-weight:bold;padding:.3em 0}
figure{margin:1.5em 0}figcaption{font-style:italic;font-size:13px}img{max-width:100%;height:auto}
.regression,.failed{color:#c62828;font-weight:bold}.improvement,.fixed{color:#1a7f37;font-weight:bold}"""


def _wbr(text: str) -> str:
    """Escaped text with line-break opportunities after ``,`` ``/`` ``:`` (long scale names and case ids)."""
    return html.escape(text).replace(",", ",<wbr>").replace("/", "/<wbr>").replace(":", ":<wbr>")


def _html_table(table: Table, *, num_from: int = 99, caption: bool = True) -> str:
    e = html.escape
    NUM = ' class="num"'  # noqa: N806
    title, cols, rows, notes = table
    parts = [(f"<table><caption>{e(title)}</caption>" if caption else "<table>") + "<tr>"
             + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>"]
    for r in rows:
        parts.append("<tr>" + "".join(f"<td{NUM if i >= num_from else ''}>{_wbr(x)}</td>"
                                      for i, x in enumerate(r)) + "</tr>")
    parts.append("</table>")
    parts += [f"<p class=\"note\">{e(n)}</p>" for n in notes]
    return "".join(parts)


def _html_relative(rel: dict[str, Any]) -> str:
    """A ClickBench-style table: ratio in the cell, colour-scaled, the absolute value as its title."""
    e = html.escape
    metric = rel["metric"]
    best = "fastest" if metric == "wall_s" else "lowest"
    parts = [f"<table class=\"relative\"><caption>{e(METRIC_WORD[metric].capitalize())} relative to the {best} "
             f"engine (hover a cell for the absolute value)</caption><tr><th>task</th><th>scale</th>"
             + "".join(f"<th>{e(x)}</th>" for x in rel["engines"]) + "</tr>"]
    for r in rel["rows"]:
        tds = []
        for eng in rel["engines"]:
            cell = r["cells"].get(eng)
            if cell is None:
                tds.append("<td></td>")
                continue
            cls = "rel best" if cell["ratio"] is not None and cell["ratio"] <= 1.0 else "rel"
            tds.append(f"<td class=\"{cls}\" style=\"background:{cell_colour(cell['ratio'])}\" "
                       f"title=\"{e(cell_title(cell, metric))}\">{e(cell_text(cell))}</td>")
        rows_in = f" ({fmt_rows(r['rows_in'])} rows)" if r["rows_in"] else ""
        parts.append(f"<tr><td>{_wbr(r['task'])}</td><td>{_wbr(r['scale'] + rows_in)}</td>{''.join(tds)}</tr>")
    geo = "".join(
        f"<td class=\"rel\" style=\"background:{cell_colour(g['ratio'])}\" title=\"geometric mean over "
        f"{g['n']} rows\">{(format(g['ratio'], '.2f') + '×') if g['ratio'] else '–'}</td>"
        for g in rel["geomean"].values())
    parts.append(f"<tr class=\"geo\"><td colspan=\"2\">geometric mean</td>{geo}</tr></table>")
    return "".join(parts)


def _html_figures(plots: list[tuple[str, str, bytes]]) -> list[str]:
    e = html.escape
    out = []
    for _name, caption, png in plots:
        data = base64.b64encode(png).decode("ascii")
        out.append(f"<figure><img alt=\"{e(caption)}\" src=\"data:image/png;base64,{data}\">"
                   f"<figcaption>{e(caption)}</figcaption></figure>")
    return out


def _html_page(title: str, body: list[str]) -> str:
    e = html.escape
    return "\n".join([f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>",
                      f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>", *body, "</body></html>"]) + "\n"


def render_html(results: dict[str, Any], plots: list[tuple[str, str, bytes]]) -> str:
    """A self-contained HTML page: every string from data escaped, PNGs embedded as data URIs."""
    e = html.escape
    body = [f"<p>{e(_intro(results))}</p>", "<h2>Headline</h2>", _html_table(headline_table(results), caption=False),
            f"<p class=\"note\">{e(_HEADLINE_NOTE.replace('*', ''))}</p>"]
    rels = [relative_table(results, m) for m in ("wall_s", "peak_rss_bytes")]
    rels = [r for r in rels if r["rows"] and any(g["ratio"] for g in r["geomean"].values())]
    if rels:
        body.append("<h2>Relative to the best engine</h2><p class=\"note\">Each cell is the engine's warm median "
                    "(or peak memory) over the best engine's for that task and scale: 1.00× is the best, green to "
                    f"red on a log scale up to {RED_AT:g}×. The last row is the geometric mean of the ratios.</p>")
        body += [_html_relative(r) for r in rels]
    if plots:
        body.append("<h2>Plots</h2>")
        body += _html_figures(plots)
    body.append("<h2>Every case</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "</tr>")
    for row in case_rows(results):
        cells = []
        for c in COLUMNS:
            cls = ""
            if c == "status":
                cls = " class=\"ok\"" if row[c] == "ok" else " class=\"bad\""
            elif c not in ("task", "engine", "scale", "quality"):
                cls = " class=\"num\""
            cells.append(f"<td{cls}>{_wbr(row[c])}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    body.append("</table>")
    fails = _failures(results)
    if fails:
        body.append("<h2>Cases that did not pass</h2><ul>")
        body += [f"<li><b>{e(c['id'])}</b>: {e(c['status'])}: {e(c.get('message', ''))}</li>" for c in fails]
        body.append("</ul>")
    body.append("<h2>About this run</h2><table>")
    body += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in _facts(results)]
    body.append("</table>")
    return _html_page(f"uda benchmark report: {results.get('suite', {}).get('name', '')}", body)


def _write_plots(out: Path, stem: str, plots: list[tuple[str, str, bytes]]
                 ) -> tuple[dict[str, Path], list[tuple[str, str, str]]]:
    """Write each ``(name, caption, png)`` as ``<stem>-<name>.png``; the paths by name and
    the ``(name, caption, file name)`` the Markdown links to."""
    paths: dict[str, Path] = {}
    md_plots = []
    for name, caption, png in plots:
        p = out / f"{stem}-{name}.png"
        atomic_write(p, lambda tmp, png=png: tmp.write_bytes(png))
        paths[name] = p
        md_plots.append((name, caption, p.name))
    return paths, md_plots


def write_report(results: dict[str, Any], *, out_dir: str | Path, stem: str,
                 html_page: bool = True) -> dict[str, Path]:
    """Write ``<stem>.md``, its PNGs (``<stem>-<plot>.png``) and optionally ``<stem>.html``.

    Returns
    -------
    dict
        ``{"markdown": path, "html": path (if written), "<plot>": png path, ...}``.
    """
    out = make_folder(out_dir, "the report folder")
    plots = make_plots(results)
    paths, md_plots = _write_plots(out, stem, plots)
    md = out / f"{stem}.md"
    atomic_write_text(md, render_markdown(results, md_plots))
    paths["markdown"] = md
    if html_page:
        page = out / f"{stem}.html"
        atomic_write_text(page, render_html(results, plots))
        paths["html"] = page
    return paths


def _compare_intro(cmp: dict[str, Any]) -> str:
    n = {v: 0 for v in ("regression", "improvement", "same", "failed", "fixed")}
    for r in cmp["metrics"]["wall_s"]:
        if r["verdict"] in n:
            n[r["verdict"]] += 1
    counts = ", ".join(f"{k} {v}" for k, v in n.items() if v) or "no case compared with an interval"
    machine = "the same machine" if cmp["same_machine"] else "different machines"
    return (f"B = {cmp['b']['run_id']} against A = {cmp['a']['run_id']}, on {machine}. Wall time: {counts} "
            f"(threshold {cmp['threshold']:.0%}, {cmp['confidence']:.0%} bootstrap interval of the ratio of "
            "medians, as uda compare; a ratio without an interval had too few repeats).")


def render_compare_markdown(cmp: dict[str, Any], plots: list[tuple[str, str, str]],
                            headlines: tuple[Table, Table]) -> str:
    """Markdown of two runs side by side."""
    lines = ["# uda report: two runs side by side", "", md_escape(_compare_intro(cmp)), ""]
    tables = compare_tables(cmp)
    for t in tables:
        lines += markdown_table(t)
    for label, t in zip(("A", "B"), headlines, strict=True):
        lines += markdown_table((f"Headline of {label}", *t[1:]))
    for _name, caption, rel in plots:
        lines += [f"![{md_escape(caption)}]({quote(rel)})", "", f"*{md_escape(caption)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def _html_compare_table(cmp: dict[str, Any], metric: str) -> str:
    e = html.escape
    parts = [f"<table><caption>{e(METRIC_TITLE[metric])}: B/A, {cmp['confidence']:.0%} confidence interval"
             "</caption><tr>" + "".join(f"<th>{e(c)}</th>" for c in COMPARE_COLUMNS) + "</tr>"]
    for raw, r in zip(cmp["metrics"][metric], compare_rows(cmp, metric), strict=True):
        colour = change_colour(raw["ratio"])
        parts.append(f"<tr><td>{e(r['case'])}</td><td class=\"num\">{e(r['A'])}</td><td class=\"num\">{e(r['B'])}"
                     f"</td><td class=\"rel\" style=\"background:{colour}\">{e(r['B/A'])}</td><td class=\"num\">"
                     f"{e(r['CI'])}</td><td class=\"{e(raw['verdict'])}\">{e(r['verdict'])}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


def render_compare_html(cmp: dict[str, Any], plots: list[tuple[str, str, bytes]],
                        headlines: tuple[Table, Table]) -> str:
    """A self-contained HTML page of two runs side by side."""
    e = html.escape
    body = [f"<p>{e(_compare_intro(cmp))}</p>", _html_table(compare_tables(cmp)[0])]
    body += [_html_compare_table(cmp, m) for m in COMPARE_METRICS]
    body += _html_figures(plots)
    for label, t in zip(("A", "B"), headlines, strict=True):
        body.append(f"<h2>Headline of {label}</h2>" + _html_table(t, caption=False))
    return _html_page("uda report: two runs side by side", body)


def write_comparison(a: dict[str, Any], b: dict[str, Any], *, out_dir: str | Path, stem: str,
                     html_page: bool = True, confidence: float = 0.95) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write ``<stem>.md`` (and ``.html``, a PNG of the ratios) comparing run B with run A.

    Returns
    -------
    tuple
        The comparison (:func:`compare_runs`) and the written paths.
    """
    cmp = compare_runs(a, b, confidence=confidence)
    out = make_folder(out_dir, "the report folder")
    fig = plot_ratios(cmp)
    plots = [] if fig is None else [("ratios", "B/A per case with its confidence interval; red: "
                                               "regression, green: improvement", png_bytes(fig))]
    paths, md_plots = _write_plots(out, stem, plots)
    heads = (headline_table(a), headline_table(b))
    md = out / f"{stem}.md"
    atomic_write_text(md, render_compare_markdown(cmp, md_plots, heads))
    paths["markdown"] = md
    if html_page:
        page = out / f"{stem}.html"
        atomic_write_text(page, render_compare_html(cmp, plots, heads))
        paths["html"] = page
    return cmp, paths
