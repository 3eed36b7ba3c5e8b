"""The report as text: tables for the terminal and Markdown, CSV of the cases, the JSON object of ``uda report --json``."""

from __future__ import annotations

import csv
import io
from typing import Any

from uda.harness.report.comparison import (
    COMPARE_COLUMNS,
    COMPARE_METRICS,
    METRIC_TITLE,
    compare_fact_rows,
    compare_rows,
)
from uda.harness.report.headline import (
    cell_text,
    headline,
    quality_headline,
    relative_table,
    speed_text,
)
from uda.harness.report.text import (
    MIB,
    case_rows,
    engine_label,
    fmt_rows,
    fmt_s,
    is_compile,
    md_escape,
    task_key,
)
from uda.harness.results import engine_name

# ---------------------------------------------------------------- tables as strings

#: A text table: title, columns, rows of strings, and notes printed under it.
Table = tuple[str, list[str], list[list[str]], list[str]]
METRIC_WORD = {"wall_s": "time", "peak_rss_bytes": "peak memory"}


def _rel_cell(cell: dict[str, Any] | None, metric: str) -> str:
    """Ratio and the absolute value, for text formats without hover."""
    if cell is None:
        return ""
    text = cell_text(cell)
    if cell["value"] is None:
        return text
    absolute = f"{fmt_s(cell['value'])} s" if metric == "wall_s" else f"{cell['value'] / MIB:,.0f} MiB"
    return f"{text} ({absolute})"


def headline_table(results: dict[str, Any]) -> Table:
    """The headline as a text table."""
    rows, reasons = [], []
    for r in headline(results):
        agreement = r["agreement"]
        if r.get("unchecked_reason"):
            if r["unchecked_reason"] not in reasons:
                reasons.append(r["unchecked_reason"])
            agreement += f" [{reasons.index(r['unchecked_reason']) + 1}]"
        rows.append([r["task"], r["scale"], fmt_rows(r["rows_in"]), speed_text(r), r["quality"], agreement])
    notes = [f"[{i}] not checked: {why}" for i, why in enumerate(reasons, 1)]
    return ("Headline", ["task", "scale", "rows in", "fastest engine (warm median)", "answer quality",
                         "engines"], rows, notes)


def relative_text_table(rel: dict[str, Any]) -> Table:
    """A relative table as text (each cell: ratio to the best, absolute value in brackets)."""
    metric = rel["metric"]
    rows = [[r["task"], r["scale"]] + [_rel_cell(r["cells"].get(e), metric) for e in rel["engines"]]
            for r in rel["rows"]]
    rows.append(["geometric mean", ""] + [
        f"{g['ratio']:.2f}× (of {g['n']})" if g["ratio"] else "–" for g in rel["geomean"].values()])
    best = "fastest" if metric == "wall_s" else "lowest"
    return (f"{METRIC_WORD[metric].capitalize()} relative to the {best} engine (1.00× = {best})",
            ["task", "scale", *rel["engines"]], rows, [])


def report_tables(results: dict[str, Any]) -> list[Table]:
    """The headline and the relative tables of time and peak memory (what ``uda report`` prints)."""
    out = [headline_table(results)]
    for metric in ("wall_s", "peak_rss_bytes"):
        rel = relative_table(results, metric)
        if rel["rows"] and any(g["ratio"] for g in rel["geomean"].values()):
            out.append(relative_text_table(rel))
    return out


def compare_tables(cmp: dict[str, Any]) -> list[Table]:
    """The two runs' facts and the B/A comparison per metric, as text tables."""
    out: list[Table] = [("Runs", ["", "A", "B"], [list(r) for r in compare_fact_rows(cmp)], [])]
    for metric in COMPARE_METRICS:
        rows = [[r[c] for c in COMPARE_COLUMNS] for r in compare_rows(cmp, metric)]
        out.append((f"{METRIC_TITLE[metric]}: B/A, {cmp['confidence']:.0%} confidence interval",
                    COMPARE_COLUMNS, rows, []))
    return out


def markdown_table(table: Table, *, caption: bool = True) -> list[str]:
    """A text table as Markdown lines (strings from data escaped)."""
    title, cols, rows, notes = table
    lines = ([f"**{md_escape(title)}**", ""] if caption else []) + ["| " + " | ".join(md_escape(c) or " " for c in cols) + " |",
             "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(md_escape(x) for x in r) + " |" for r in rows]
    if notes:
        lines += [""] + [md_escape(n) + "  " for n in notes]
    return [*lines, ""]


def cases_csv(results: dict[str, Any]) -> str:
    """One CSV row per case: raw numbers, ratios to the best engine, the quality headline."""
    rel = {m: {(r["task"], r["scale"], e): cell["ratio"] for r in relative_table(results, m)["rows"]
               for e, cell in r["cells"].items()} for m in ("wall_s", "peak_rss_bytes")}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["case", "task", "engine", "scale", "status", "rows_in", "cold_s", "warm_median_s", "warm_min_s",
                "warm_max_s", "n_warm", "cpu_s", "peak_bytes", "time_vs_best", "memory_vs_best", "quality"])
    for c in results["cases"]:
        s = c.get("summary") or {}
        k = (task_key(c), c.get("scale") or "–", engine_name(c))
        w.writerow([c["id"], task_key(c), engine_label(c), c.get("scale") or "", c["status"], c.get("rows_in") or "",
                    (c.get("cold") or {}).get("wall_s", ""), s.get("wall_s_median", ""), s.get("wall_s_min", ""),
                    s.get("wall_s_max", ""), s.get("n_warm", ""), s.get("cpu_s_median", ""),
                    s.get("peak_rss_bytes", ""),
                    "" if is_compile(c) else rel["wall_s"].get(k) or "",
                    "" if is_compile(c) else rel["peak_rss_bytes"].get(k) or "",
                    quality_headline(c["task"], c.get("quality") or {})[0]])
    return buf.getvalue()


def compare_csv(cmp: dict[str, Any]) -> str:
    """One CSV row per case and metric of a comparison."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["case", "metric", "median_a", "median_b", "ratio", "ci_low", "ci_high", "verdict"])
    for metric, rows in cmp["metrics"].items():
        for r in rows:
            w.writerow([r["id"], metric, *("" if r.get(k) is None else r[k]
                                          for k in ("median_a", "median_b", "ratio", "ci_low", "ci_high")),
                        r["verdict"]])
    return buf.getvalue()


def report_json(results: dict[str, Any]) -> dict[str, Any]:
    """The report's content for machines: headline, relative tables, case rows."""
    return {"run_id": results.get("run_id"), "suite": (results.get("suite") or {}).get("name"),
            "headline": headline(results),
            "relative": {m: relative_table(results, m) for m in ("wall_s", "peak_rss_bytes")},
            "cases": case_rows(results)}
