"""Display strings of a report: escaping, labels of engines and tasks, numbers with units, one row per case."""

from __future__ import annotations

import re
from typing import Any

from uda.harness.results import engine_name

MIB = 2**20
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def md_escape(text: Any) -> str:
    """Escape a string from data for a Markdown table cell (no markup, no line breaks)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\r", " ").replace("\n", " ")


def plot_text(text: Any, limit: int = 70) -> str:
    """A string from data made safe for matplotlib (no mathtext), at most ``limit`` characters
    (a plot label; the tables carry the whole string)."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def engine_label(case: dict[str, Any]) -> str:
    """Engine and scheduler, marked ``(compile)`` for a case whose cold call compiled from scratch."""
    label = engine_name(case)
    if is_compile(case):
        label += " (compile)"
    return label


def task_key(case: dict[str, Any]) -> str:
    """The task with its options, ``flow[models=ridge]`` (the key of the sizing curves)."""
    opts = ",".join(f"{k}={v}" for k, v in sorted((case.get("options") or {}).items()))
    return case["task"] if not opts else f"{case['task']}[{opts}]"


def is_compile(case: dict[str, Any]) -> bool:
    """Whether the case's cold call compiled from scratch (``cold = "compile"``)."""
    return (case.get("limits") or {}).get("cold") == "compile"


def _si(v: float, spec: str = ".3g", sep: str = "", plain: str = ".3g") -> str:
    """``v`` with a k/M/G prefix (``20k``, ``1.5M``, ``0.25``): the smallest prefix whose
    rounded mantissa stays below 1000 (999,999 is ``1M``, not ``1e+03k``)."""
    for unit, div in (("", 1.0), ("k", 1e3), ("M", 1e6), ("G", 1e9)):
        text = f"{v / div:{spec if unit else plain}}"
        if abs(float(text)) < 1000 or unit == "G":
            return f"{text}{sep}{unit}" if unit else text
    return text


def compact(v: float) -> str:
    """A tick label: ``20k``, ``1.5M``, ``0.25``."""
    return _si(v)


def fmt_s(x: float | None) -> str:
    """Seconds for display: three significant digits, whole seconds from 100 s, "–" for none."""
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def fmt_rows(x: float | None, spec: str = ".3g", sep: str = "") -> str:
    """A count with a k/M/G prefix (``1.5M``); "–" for none or zero."""
    return _si(x, spec, sep, plain=".0f") if x else "–"


def pct(x: float) -> str:
    """A share as a signed percentage with a true minus sign (``+12.5 %``, ``−3.0 %``)."""
    return f"{x * 100:+.1f} %".replace("-", "−")


def quality_text(q: dict[str, float], n: int = 3) -> str:
    """The first ``n`` quality metrics as ``name=value``, "–" for none."""
    return ", ".join(f"{k}={v:.4g}" for k, v in list(q.items())[:n]) if q else "–"


def case_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row of display strings per case (shared by the Markdown, HTML and terminal tables)."""
    rows = []
    for c in results["cases"]:
        s = c.get("summary") or {}
        spread = (f"{fmt_s(s.get('wall_s_min'))}–{fmt_s(s.get('wall_s_max'))}"
                  if s.get("n_warm", 0) > 1 else "–")
        rows.append({
            "case": c["id"], "task": c["task"], "engine": engine_label(c),
            "scale": c.get("scale") or "–", "status": c["status"],
            "cold s": fmt_s((c.get("cold") or {}).get("wall_s")) if c["status"] == "ok" else "–",
            "warm s": fmt_s(s.get("wall_s_median")) if s.get("n_warm") else "–", "min–max": spread,
            "CPU s": fmt_s(s.get("cpu_s_median")),
            "peak MiB": f"{s['peak_rss_bytes'] / MIB:,.0f}" if s.get("peak_rss_bytes") else "–",
            "rows/s": fmt_rows(s.get("rows_per_s"), ".2f", " ") if s.get("n_warm") else "–",
            "quality": quality_text(c.get("quality") or {}) if c.get("quality") else "–",
            "quality1": quality_text(c.get("quality") or {}, 1) if c.get("quality") else "–",
        })
    return rows


COLUMNS = ["task", "engine", "scale", "status", "cold s", "warm s", "min–max", "CPU s",
           "peak MiB", "rows/s", "quality"]
#: Columns of ``uda bench``'s summary table (``quality1``: the first quality metric).
SUMMARY_COLUMNS = ["task", "engine", "scale", "status", "cold s", "warm s", "min–max",
                   "peak MiB", "rows/s", "quality1"]
