"""The report's data: the headline per task and scale (fastest engine, answer quality, agreement) and the relative table."""

from __future__ import annotations

import math
import re
from typing import Any

from uda.harness.compare import MIN_REPEATS, ratio_ci
from uda.harness.report.inputs import is_finite
from uda.harness.report.text import MIB, fmt_s, is_compile, pct, quality_text, task_key
from uda.harness.results import engine_name, warm_values

# ---------------------------------------------------------------- headline

#: Forecasters that learn nothing beyond a copy or an average of the history: the baselines
#: a learnt model (Holt-Winters, the ridge family, …) must beat (names of ``uda.forecasting.registry.MODELS``).
NAIVE_FORECASTERS = ("last", "snaive_day", "snaive_week", "ha", "ha_slot")
_FLOW_MAE = re.compile(r"^(?P<model>.+)_mae_h(?P<h>\d+)$")


def flow_skill(quality: dict[str, float]) -> dict[str, Any] | None:
    """Skill of the best learnt forecaster over the best naive one, from ``<model>_mae_h<h>``.

    Each side's best model is the one with the lowest MAE averaged over the horizons both
    sides scored; skill is ``1 − MAE(learnt) / MAE(naive)`` (positive: the learnt model is
    better), overall (on the mean MAE) and per horizon.

    Returns
    -------
    dict or None
        ``{"model", "baseline", "skill", "by_horizon": {h: skill}}``; ``None`` without
        both a naive and a learnt model.
    """
    mae: dict[str, dict[int, float]] = {}
    for k, v in quality.items():
        m = _FLOW_MAE.match(k)
        if m and is_finite(v):
            mae.setdefault(m["model"], {})[int(m["h"])] = float(v)
    naive = [m for m in mae if m in NAIVE_FORECASTERS]
    learnt = [m for m in mae if m not in NAIVE_FORECASTERS]
    if not naive or not learnt:
        return None
    hs = sorted(set.intersection(*(set(mae[m]) for m in naive + learnt)))
    if not hs:
        return None

    def mean(m: str) -> float:
        return sum(mae[m][h] for h in hs) / len(hs)

    best, base = min(learnt, key=mean), min(naive, key=mean)
    if not mean(base) > 0:
        return None
    by_h = {h: 1 - mae[best][h] / mae[base][h] for h in hs if mae[base][h] > 0}
    return {"model": best, "baseline": base, "skill": 1 - mean(best) / mean(base), "by_horizon": by_h,
            "mae": mean(best), "baseline_mae": mean(base)}


def _shares(quality: dict[str, float], suffix: str) -> str | None:
    parts = [f"{k[: -len(suffix)]} {v:.1%}" for k, v in quality.items() if k.endswith(suffix)]
    return ", ".join(parts) if parts else None


def quality_headline(task: str, quality: dict[str, float]) -> tuple[str, dict[str, Any]]:
    """The answer quality a reader of ``task`` acts on: text and the values behind it.

    flow: skill of the best learnt forecaster over the best naive baseline
    (:func:`flow_skill`); water: the best detector's F1; route: the relative gap of the
    assignment; utilisation: the used share per table; standardise: the integrated share;
    any other task: its first two metrics.
    """
    if not quality:
        return "–", {}
    if task == "flow":
        sk = flow_skill(quality)
        if sk is None:
            return quality_text(quality, 2), {}
        hs = sorted(sk["by_horizon"])
        per = (f"h{hs[0]} {pct(sk['by_horizon'][hs[0]])} … h{hs[-1]} {pct(sk['by_horizon'][hs[-1]])}"
               if len(hs) > 1 else f"h{hs[0]}")
        verdict = "beats" if sk["skill"] > 0 else "does not beat"
        return (f"{sk['model']} {verdict} {sk['baseline']}: MAE skill {pct(sk['skill'])} ({per})",
                {"flow_skill": sk})
    if task == "water":
        f1 = {k[:-3]: v for k, v in quality.items() if k.endswith("_f1")}
        if f1:
            best = max(f1, key=lambda k: f1[k])
            return f"best detector {best}: F1 {f1[best]:.3f} (of {len(f1)})", {"best_detector": best, "f1": f1[best]}
    if task == "route" and "relative_gap" in quality:
        it = quality.get("iterations")
        conv = quality.get("converged")
        text = f"relative gap {quality['relative_gap']:.2g}"
        if it is not None:
            text += f" after {it:.0f} iterations"
        if conv is not None:
            text += " (converged)" if conv else " (not converged)"
        return text, {"relative_gap": quality["relative_gap"]}
    if task == "utilisation":
        text = _shares(quality, "_used_share")
        if text:
            return f"used share: {text}", {k: v for k, v in quality.items() if k.endswith("_used_share")}
    if task == "standardise":
        text = _shares(quality, "_integrated_share")
        if text:
            return f"integrated share: {text}", {k: v for k, v in quality.items() if k.endswith("_integrated_share")}
    return quality_text(quality, 2), {}


def _timed(case: dict[str, Any]) -> bool:
    s = case.get("summary") or {}
    return case["status"] == "ok" and s.get("wall_s_median") is not None and not is_compile(case)


def groups(results: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Cases of the same task (with options) and scale, compile-from-scratch cases left out.

    Returns
    -------
    list
        ``(task key, scale, cases)`` in the order of the tasks' first case, scales by input rows.
    """
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in results["cases"]:
        if is_compile(c):
            continue
        by.setdefault((task_key(c), c.get("scale") or "–"), []).append(c)
    order = {}
    for c in results["cases"]:
        order.setdefault(task_key(c), len(order))

    def rows(cases: list[dict[str, Any]]) -> float:
        return max([c.get("rows_in") or 0 for c in cases] or [0])

    keys = sorted(by, key=lambda k: (order[k[0]], rows(by[k]), k[1]))
    return [(t, s, by[(t, s)]) for t, s in keys]


def _agreement(cases: list[dict[str, Any]]) -> tuple[str, bool | None]:
    """Whether the engines of one group gave the same answer (``None``: not known)."""
    engines = {engine_name(c) for c in cases}
    wrong = [engine_name(c) for c in cases if c["status"] == "wrong_answer"
             or (c.get("answer_check") or {}).get("status") == "differs"]
    if wrong:
        return f"differ ({', '.join(sorted(set(wrong)))})", False
    if len(engines) < 2:
        return "one engine", None
    checks = [(c.get("answer_check") or {}) for c in cases if c["status"] == "ok"]
    unchecked = [ch for ch in checks if ch.get("status") == "unchecked"]
    if unchecked:
        return "not checked", None
    if sum(ch.get("status") == "agrees" for ch in checks) >= 1:
        return "agree", True
    failed = [c for c in cases if c["status"] != "ok"]
    return ("not compared (a case failed)" if failed else "not compared"), None


def case_median(case: dict[str, Any], metric: str) -> float | None:
    """A case's warm median wall time (``metric="wall_s"``) or peak RSS, ``None`` when not a positive number."""
    s = case.get("summary") or {}
    v = s.get("wall_s_median") if metric == "wall_s" else s.get("peak_rss_bytes")
    return float(v) if is_finite(v) and v > 0 else None


def headline(results: dict[str, Any], *, confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per task and scale: the fastest engine and by how much, answer quality, agreement.

    "By how much" is the next engine's warm median over the fastest's, with the bootstrap
    confidence interval of :func:`uda.harness.compare.ratio_ci` when both have at least
    :data:`~uda.harness.compare.MIN_REPEATS` warm repeats; ``distinct`` says whether that
    interval excludes 1.
    """
    out = []
    for task, scale, cases in groups(results):
        timed = sorted((c for c in cases if _timed(c)), key=lambda c: c["summary"]["wall_s_median"])
        row: dict[str, Any] = {"task": task, "scale": scale,
                               "rows_in": max([c.get("rows_in") or 0 for c in cases]) or None,
                               "times": {engine_name(c): c["summary"]["wall_s_median"] for c in timed},
                               "fastest": engine_name(timed[0]) if timed else None,
                               "runner_up": engine_name(timed[1]) if len(timed) > 1 else None,
                               "ratio": None, "ci": None, "distinct": None,
                               "failed": {engine_name(c): c["status"] for c in cases if c["status"] != "ok"},
                               "one_call": bool(timed) and not timed[0]["summary"].get("n_warm")}
        if len(timed) > 1:
            a, b = warm_values(timed[0]), warm_values(timed[1])
            if len(a) >= MIN_REPEATS and len(b) >= MIN_REPEATS and min(a) > 0 and min(b) > 0:
                ratio, lo, hi = ratio_ci(a, b, confidence=confidence)
                row.update(ratio=ratio, ci=[lo, hi], distinct=lo > 1)
            else:
                row["ratio"] = timed[1]["summary"]["wall_s_median"] / timed[0]["summary"]["wall_s_median"]
        ref = next((c for c in cases if c["status"] == "ok" and (c.get("answer_check") or {}).get("status")
                    == "reference"), next((c for c in cases if c["status"] == "ok"), None))
        text, values = quality_headline(ref["task"], ref.get("quality") or {}) if ref else ("–", {})
        row.update(quality=text, quality_values=values)
        row["agreement"], row["agree"] = _agreement(cases)
        row["unchecked_reason"] = next((str(ch.get("reason") or "no reason given") for c in cases
                                        if c["status"] == "ok" and (ch := c.get("answer_check") or {}).get("status")
                                        == "unchecked"), None) if row["agreement"] == "not checked" else None
        out.append(row)
    return out


def speed_text(row: dict[str, Any]) -> str:
    """``polars 0.27 s, 1.9× faster than dask-threads (CI 1.5–2.4)`` for a headline row; ``≈`` when
    the interval holds 1 (the difference is within the noise of the repeats)."""
    if row["fastest"] is None:
        return "no case passed" if row["failed"] else "not timed"
    first = f"{row['fastest']} {fmt_s(row['times'][row['fastest']])} s"
    if row["runner_up"] is None:
        return f"{first} ({'one call' if row.get('one_call') else 'only engine timed'})"
    r = row["ratio"]
    ci = f"CI {row['ci'][0]:.2f}–{row['ci'][1]:.2f}" if row["ci"] else "no CI: too few repeats"
    if row["distinct"] is False:
        return f"{first} ≈ {row['runner_up']} ({r:.2f}×, {ci})"
    return f"{first}, {r:.2f}× faster than {row['runner_up']} ({ci})"


#: Ratio at which a relative-table cell is fully red (log colour scale from 1 = green).
RED_AT = 4.0


def relative_table(results: dict[str, Any], metric: str = "wall_s") -> dict[str, Any]:
    """ClickBench-style table: each cell the ratio of an engine's value to the best engine's.

    Parameters
    ----------
    metric
        ``"wall_s"`` (warm median wall time) or ``"peak_rss_bytes"`` (peak memory).

    Returns
    -------
    dict
        ``{"metric", "engines": [...], "rows": [{"task", "scale", "rows_in", "cells": {engine:
        {"ratio", "value", "status", "n_warm", "min", "max"}}}], "geomean": {engine: {"ratio", "n"}}}``;
        a failed case's cell has ``status`` and no ratio.
    """
    engines: list[str] = []
    rows = []
    for task, scale, cases in groups(results):
        cells: dict[str, dict[str, Any]] = {}
        for c in cases:
            name = engine_name(c)
            if name not in engines:
                engines.append(name)
            v = case_median(c, metric) if c["status"] == "ok" else None
            s = c.get("summary") or {}
            cells[name] = {"value": v, "status": c["status"], "n_warm": s.get("n_warm", 0),
                           "min": s.get("wall_s_min") if metric == "wall_s" else None,
                           "max": s.get("wall_s_max") if metric == "wall_s" else None, "ratio": None}
        vals = [x["value"] for x in cells.values() if x["value"]]
        if not vals:
            if any(x["status"] != "ok" for x in cells.values()):
                rows.append({"task": task, "scale": scale, "rows_in": None, "cells": cells})
            continue
        best = min(vals)
        for x in cells.values():
            if x["value"]:
                x["ratio"] = x["value"] / best
        rows.append({"task": task, "scale": scale,
                     "rows_in": max([c.get("rows_in") or 0 for c in cases]) or None, "cells": cells})
    geo = {}
    for e in engines:
        rs = [r["cells"][e]["ratio"] for r in rows if e in r["cells"] and r["cells"][e]["ratio"]]
        geo[e] = {"ratio": math.exp(sum(math.log(x) for x in rs) / len(rs)) if rs else None, "n": len(rs)}
    return {"metric": metric, "engines": engines, "rows": rows, "geomean": geo}


def cell_text(cell: dict[str, Any] | None) -> str:
    """A relative-table cell as text: ``1.25×``, a failed case's status, or blank for no case."""
    if cell is None:
        return ""
    if cell["ratio"] is None:
        return cell["status"] if cell["status"] != "ok" else "–"
    return f"{cell['ratio']:.2f}×"


def cell_title(cell: dict[str, Any], metric: str) -> str:
    """The absolute value behind a relative-table cell (HTML hover, brackets in text)."""
    v = cell["value"]
    if v is None:
        return cell["status"]
    if metric != "wall_s":
        return f"peak memory {v / MIB:,.1f} MiB"
    n = cell["n_warm"]
    if not n:
        return f"{fmt_s(v)} s (one call)"
    spread = f", min–max {fmt_s(cell['min'])}–{fmt_s(cell['max'])} s" if n > 1 else ""
    return f"{fmt_s(v)} s warm median of {n}{spread}"


def change_colour(ratio: float | None) -> str:
    """Background of a B/A cell: white at 1, red as B gets slower (full at 2×), green as it gets faster."""
    if not ratio:
        return "#eeeeee"
    f = min(1.0, abs(math.log(ratio)) / math.log(2.0))
    hue = 0 if ratio > 1 else 120
    return f"hsl({hue}, 65%, {97 - 27 * f:.0f}%)"


def cell_colour(ratio: float | None) -> str:
    """Background colour of a relative cell: green at 1, through yellow to red at :data:`RED_AT`."""
    if ratio is None:
        return "#eeeeee"
    f = min(1.0, math.log(max(ratio, 1.0)) / math.log(RED_AT))
    return f"hsl({120 * (1 - f):.0f}, 70%, {85 - 10 * f:.0f}%)"


def headline_value(task: str, quality: dict[str, float]) -> tuple[str, float] | None:
    """The one number of :func:`quality_headline` (for plots): name and value."""
    text, values = quality_headline(task, quality)
    if "flow_skill" in values:
        sk = values["flow_skill"]
        return "MAE skill, best learnt over best naive", sk["skill"]
    if "f1" in values:
        return "best detector F1", values["f1"]
    if "relative_gap" in values:
        return "relative gap", values["relative_gap"]
    shares = [(k, v) for k, v in values.items() if k.endswith("_share")]
    if shares:
        return shares[0]
    first = next(iter(quality.items()), None) if text != "–" else None
    return first
