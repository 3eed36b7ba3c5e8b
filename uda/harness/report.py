"""Reports of results files: a headline, relative tables, plots; Markdown, HTML, text, CSV, JSON.

A report answers first what a reader acts on (which engine is fastest at each scale and by
how much, how good the best method's answer is against its baseline, whether the engines
agreed), then shows the relative table (each engine's time as a ratio to the best, as
ClickBench does), the scaling plots with the sizing fit drawn through them, and every case.
Two results files give a side-by-side comparison with the ratio and confidence interval
of :func:`uda.harness.compare.compare_results`.

Inputs are results files of ``uda bench`` (any suite, a sweep included) and the outputs of
``uda run flow|route|water|utilisation --out`` (or their ``--json``), read by
:func:`load_report_input`.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from uda.errors import UserError
from uda.harness.compare import MIN_REPEATS, compare_results, ratio_ci
from uda.harness.results import SCHEMA, SCHEMA_VERSION, STATUSES, load_results, warm_values
from uda.store import make_folder

MIB = 2**20
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def md_escape(text: Any) -> str:
    """Escape a string from data for a Markdown table cell (no markup, no line breaks)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\r", " ").replace("\n", " ")


def _plain(text: Any, limit: int = 70) -> str:
    """A string from data made safe for matplotlib (no mathtext), at most ``limit`` characters
    (a plot label; the tables carry the whole string)."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _engine_label(case: dict[str, Any]) -> str:
    """Engine and scheduler, marked ``(compile)`` for a case whose cold call compiled from scratch."""
    label = engine_name(case)
    if _is_compile(case):
        label += " (compile)"
    return label


def engine_name(case: dict[str, Any]) -> str:
    """``polars``, ``dask-threads``, ``dask-local:2`` …, with ``@N`` for a case limited to N cores.

    The same label :mod:`uda.harness.sizing` gives its curves.
    """
    label = case["engine"] if not case.get("scheduler") else f"{case['engine']}-{case['scheduler']}"
    cores = (case.get("limits") or {}).get("cores")
    return label if cores is None else f"{label}@{cores}"


def task_key(case: dict[str, Any]) -> str:
    """The task with its options, ``flow[models=ridge]`` (the key of the sizing curves)."""
    opts = ",".join(f"{k}={v}" for k, v in sorted((case.get("options") or {}).items()))
    return case["task"] if not opts else f"{case['task']}[{opts}]"


def _is_compile(case: dict[str, Any]) -> bool:
    return (case.get("limits") or {}).get("cold") == "compile"


def _si(v: float, spec: str = ".3g", sep: str = "", plain: str = ".3g") -> str:
    """``v`` with a k/M/G prefix (``20k``, ``1.5M``, ``0.25``): the smallest prefix whose
    rounded mantissa stays below 1000 (999,999 is ``1M``, not ``1e+03k``)."""
    for unit, div in (("", 1.0), ("k", 1e3), ("M", 1e6), ("G", 1e9)):
        text = f"{v / div:{spec if unit else plain}}"
        if abs(float(text)) < 1000 or unit == "G":
            return f"{text}{sep}{unit}" if unit else text
    return text


def _compact(v: float) -> str:
    """A tick label: ``20k``, ``1.5M``, ``0.25``."""
    return _si(v)


def _log_axes(ax) -> None:
    """Log axes with compact labels, call after plotting. An axis whose limits span less than
    a factor of 3 labels every minor tick; a wider one showing fewer than two powers of ten
    labels the minor ticks at 2 and 5 times a power of ten; a wider one, none (labels never crowd)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    major = FuncFormatter(lambda v, _pos: _compact(v))

    def some(v: float, _pos: int) -> str:
        mantissa = round(v / 10 ** math.floor(math.log10(v)), 6) if v > 0 else 0
        return _compact(v) if mantissa in (2.0, 5.0) else ""

    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        axis.set_major_formatter(major)
        lo, hi = min(lo, hi), max(lo, hi)
        if lo <= 0 or hi / lo < 3:
            axis.set_minor_formatter(major)
            continue
        powers = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1
        axis.set_minor_formatter(NullFormatter() if powers >= 2 else FuncFormatter(some))


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _fmt_rows(x: float | None, spec: str = ".3g", sep: str = "") -> str:
    """A count with a k/M/G prefix (``1.5M``); "–" for none or zero."""
    return _si(x, spec, sep, plain=".0f") if x else "–"


def _pct(x: float) -> str:
    return f"{x * 100:+.1f} %".replace("-", "−")


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
            "rows/s": _fmt_rows(s.get("rows_per_s"), ".2f", " ") if s.get("n_warm") else "–",
            "quality": _quality_text(c.get("quality") or {}) if c.get("quality") else "–",
            "quality1": _quality_text(c.get("quality") or {}, 1) if c.get("quality") else "–",
        })
    return rows


COLUMNS = ["task", "engine", "scale", "status", "cold s", "warm s", "min–max", "CPU s",
           "peak MiB", "rows/s", "quality"]
#: Columns of ``uda bench``'s summary table (``quality1``: the first quality metric).
SUMMARY_COLUMNS = ["task", "engine", "scale", "status", "cold s", "warm s", "min–max",
                   "peak MiB", "rows/s", "quality1"]


# ---------------------------------------------------------------- inputs

#: Files a ``uda run ... --out`` folder holds its result in, in the order they are looked for.
RUN_FILES = ("summary.json", "utilisation.json")
_READ_HINT = ("pass a results file <run-id>.json of `uda bench`, or the --out file or folder of "
              "`uda run flow|route|water|utilisation`")


def _read_json(p: str) -> Any:
    """A JSON document at ``p`` (a path or fsspec URL), with one-line errors."""
    from uda.harness.results import read_json

    return read_json(p, _READ_HINT, nan=True)


def _is_folder(p: str) -> bool:
    from uda.store import split_location

    fs, where = split_location(p)
    return Path(where).is_dir() if fs is None else fs.isdir(where)


def load_report_input(path: str | os.PathLike) -> dict[str, Any]:
    """A results object from a ``uda bench`` results file or a ``uda run`` result.

    A ``uda run`` result (``flow --out FILE``; ``route``, ``water`` or ``utilisation``
    ``--out FOLDER``, or the file inside; or any of them with ``--json``) becomes a results
    object with one case: its task, engine and quality, and the time the task reported
    for itself when it reports one (one call, not measured by the harness: no repeats,
    no memory).

    Raises
    ------
    UserError
        When the path is missing, is not JSON, or is neither kind of result.
    """
    p = os.fspath(path).rstrip("/") or "/"
    if _is_folder(p):
        from uda.store import split_location

        fs, where = split_location(p)
        inside = [n for n in RUN_FILES if (Path(where, n).is_file() if fs is None else fs.isfile(f"{where}/{n}"))]
        if not inside:
            msg = f"{p} is a folder without a uda result (no {' or '.join(RUN_FILES)}); {_READ_HINT}"
            raise UserError(msg)
        p = f"{p}/{inside[0]}"
    data = _read_json(p)
    if isinstance(data, dict) and "schema" in data:
        return load_results(p)
    res = run_output_results(data, source=p)
    if res is None:
        msg = f"{p} is not a uda result (neither a `uda bench` results file nor a `uda run` result); {_READ_HINT}"
        raise UserError(msg)
    return res


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _run_quality(data: dict[str, Any]) -> tuple[str, dict[str, float], float | None] | None:
    """``(task, quality, rows_in)`` of a ``uda run`` result, or ``None`` when it is not one."""
    q: dict[str, Any] = {}
    if isinstance(data.get("models"), dict) and "protocol" in data:  # flow --out / --json
        for m, by_h in data["models"].items():
            for h, sc in (by_h or {}).items() if isinstance(by_h, dict) else ():
                if isinstance(sc, dict):
                    q[f"{m}_mae_h{h}"] = sc.get("mae")
        return "flow", q, None
    if isinstance(data.get("funnel"), dict) and isinstance(data.get("totals"), dict):  # utilisation
        rows = 0.0
        for t, v in data["totals"].items():
            if isinstance(v, dict) and _finite(v.get("collected")) and _finite(v.get("used")):
                q[f"{t}_used_share"] = v["used"] / max(1, v["collected"])
                rows += v["collected"]
        detectors = data.get("detectors")
        for k, v in detectors.items() if isinstance(detectors, dict) else ():
            if isinstance(v, dict) and _finite(v.get("precision")) and _finite(v.get("recall")):
                q[f"{k}_f1"] = 2 * v["precision"] * v["recall"] / max(1e-12, v["precision"] + v["recall"])
        return "utilisation", q, rows or None
    if isinstance(data.get("task"), str) and isinstance(data.get("quality"), dict):  # route, water --json
        return data["task"], dict(data["quality"]), data.get("rows_in")
    if isinstance(data.get("detectors"), dict) and ("best_detector" in data or "mass_balance" in data):
        for name, d in data["detectors"].items():  # water --out summary.json
            if not isinstance(d, dict):
                continue
            f1 = (d.get("per_sample") or {}).get("f1") if isinstance(d.get("per_sample"), dict) else d.get("f1")
            q[f"{name}_f1"] = f1
        mb = data.get("mass_balance")
        if isinstance(mb, dict):
            q["mass_balance_f1"] = mb.get("f1")
        table = data.get("table") if isinstance(data.get("table"), dict) else {}
        return "water", q, table.get("rows")
    return None


def run_output_results(data: Any, *, source: str) -> dict[str, Any] | None:
    """A one-case results object from a ``uda run`` result (``None`` if ``data`` is not one)."""
    if not isinstance(data, dict):
        return None
    found = _run_quality(data)
    if found is None:
        return None
    task, quality, rows = found
    quality = {str(k): float(v) for k, v in quality.items() if _finite(v)}
    engine = data.get("engine") if isinstance(data.get("engine"), str) else "unrecorded"
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
    secs = data.get("seconds", summary.get("seconds"))
    if isinstance(secs, dict):
        secs = secs.get("total")
    if secs is None and isinstance(summary.get("stage_seconds"), dict):
        parts = [v for v in summary["stage_seconds"].values() if _finite(v)]
        secs = sum(parts) if parts else None
    timed = _finite(secs) and secs > 0
    rows = float(rows) if _finite(rows) and rows > 0 else None
    case = {
        "id": f"{task}/{engine}/-", "task": task, "engine": engine, "scheduler": None, "scale": None,
        "status": "ok", "message": "", "options": {}, "limits": {"source": "uda run"},
        "rows_in": rows, "quality": quality, "answer_check": {"status": "unchecked", "reason": "one run"},
        "cold": {"wall_s": float(secs)} if timed else None, "warm": [],
        "summary": ({"wall_s_median": float(secs), "wall_s_min": float(secs), "wall_s_max": float(secs),
                     "n_warm": 0, "rows_per_s": rows / secs if rows else None} if timed else None),
    }
    name = Path(source).parent.name if Path(source).name in RUN_FILES else Path(source).stem
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": name, "created_utc": "",
            "suite": {"name": f"uda run {task}", "source": source}, "origin": "uda run",
            "machine": {}, "packages": {}, "git": {}, "datasets": {}, "cases": [case]}


# ---------------------------------------------------------------- headline

#: Forecasters that learn nothing beyond a copy or an average of the history: the baselines
#: a learnt model (Holt-Winters, the ridge family, …) must beat (names of ``uda.forecast.MODELS``).
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
        if m and _finite(v):
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
            return _quality_text(quality, 2), {}
        hs = sorted(sk["by_horizon"])
        per = (f"h{hs[0]} {_pct(sk['by_horizon'][hs[0]])} … h{hs[-1]} {_pct(sk['by_horizon'][hs[-1]])}"
               if len(hs) > 1 else f"h{hs[0]}")
        verdict = "beats" if sk["skill"] > 0 else "does not beat"
        return (f"{sk['model']} {verdict} {sk['baseline']}: MAE skill {_pct(sk['skill'])} ({per})",
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
    return _quality_text(quality, 2), {}


def _timed(case: dict[str, Any]) -> bool:
    s = case.get("summary") or {}
    return case["status"] == "ok" and s.get("wall_s_median") is not None and not _is_compile(case)


def groups(results: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Cases of the same task (with options) and scale, compile-from-scratch cases left out.

    Returns
    -------
    list
        ``(task key, scale, cases)`` in the order of the tasks' first case, scales by input rows.
    """
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in results["cases"]:
        if _is_compile(c):
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


def _median(case: dict[str, Any], metric: str) -> float | None:
    s = case.get("summary") or {}
    v = s.get("wall_s_median") if metric == "wall_s" else s.get("peak_rss_bytes")
    return float(v) if _finite(v) and v > 0 else None


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
    first = f"{row['fastest']} {_fmt_s(row['times'][row['fastest']])} s"
    if row["runner_up"] is None:
        return f"{first} ({'one call' if row.get('one_call') else 'only engine timed'})"
    r = row["ratio"]
    ci = f"CI {row['ci'][0]:.2f}–{row['ci'][1]:.2f}" if row["ci"] else "no CI: too few repeats"
    if row["distinct"] is False:
        return f"{first} ≈ {row['runner_up']} ({r:.2f}×, {ci})"
    return f"{first}, {r:.2f}× faster than {row['runner_up']} ({ci})"


# ---------------------------------------------------------------- relative table

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
            v = _median(c, metric) if c["status"] == "ok" else None
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


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return ""
    if cell["ratio"] is None:
        return cell["status"] if cell["status"] != "ok" else "–"
    return f"{cell['ratio']:.2f}×"


def _cell_title(cell: dict[str, Any], metric: str) -> str:
    v = cell["value"]
    if v is None:
        return cell["status"]
    if metric != "wall_s":
        return f"peak memory {v / MIB:,.1f} MiB"
    n = cell["n_warm"]
    if not n:
        return f"{_fmt_s(v)} s (one call)"
    spread = f", min–max {_fmt_s(cell['min'])}–{_fmt_s(cell['max'])} s" if n > 1 else ""
    return f"{_fmt_s(v)} s warm median of {n}{spread}"


def _change_colour(ratio: float | None) -> str:
    """Background of a B/A cell: white at 1, red as B gets slower (full at 2×), green as it gets faster."""
    if not ratio:
        return "#eeeeee"
    f = min(1.0, abs(math.log(ratio)) / math.log(2.0))
    hue = 0 if ratio > 1 else 120
    return f"hsl({hue}, 65%, {97 - 27 * f:.0f}%)"


def _cell_colour(ratio: float | None) -> str:
    """Background colour of a relative cell: green at 1, through yellow to red at :data:`RED_AT`."""
    if ratio is None:
        return "#eeeeee"
    f = min(1.0, math.log(max(ratio, 1.0)) / math.log(RED_AT))
    return f"hsl({120 * (1 - f):.0f}, 70%, {85 - 10 * f:.0f}%)"


# ---------------------------------------------------------------- two runs

COMPARE_METRICS = ("wall_s", "peak_rss_bytes")


def compare_runs(a: dict[str, Any], b: dict[str, Any], *, confidence: float = 0.95,
                 threshold: float = 0.1) -> dict[str, Any]:
    """Two runs side by side: per case and metric, B/A with the interval of ``uda compare``.

    The ratio, its bootstrap confidence interval and the verdict come from
    :func:`uda.harness.compare.compare_results`. A case with too few repeats for an
    interval (a ``uda run`` result, a compile-from-scratch case) still shows its medians
    and their plain ratio, without an interval.

    Returns
    -------
    dict
        ``{"a": facts, "b": facts, "same_machine", "confidence", "threshold",
        "metrics": {metric: [rows]}}``; a row holds ``id``, ``median_a``, ``median_b``,
        ``ratio``, ``ci_low``, ``ci_high``, ``verdict``.
    """
    ca = {c["id"]: c for c in a["cases"]}
    cb = {c["id"]: c for c in b["cases"]}
    metrics: dict[str, list[dict[str, Any]]] = {}
    same = True
    for metric in COMPARE_METRICS:
        cmp = compare_results(a, b, metric=metric, confidence=confidence, threshold=threshold)
        same = cmp["same_machine"]
        rows = []
        for r in cmp["cases"]:
            r = dict(r)
            if r["ratio"] is None:  # too few repeats, or a case in one run only: medians, no interval
                ma = _median(ca[r["id"]], metric) if r["id"] in ca else None
                mb = _median(cb[r["id"]], metric) if r["id"] in cb else None
                r.update(median_a=ma, median_b=mb, ratio=mb / ma if ma and mb else None)
            rows.append(r)
        metrics[metric] = rows
    return {"a": _run_facts(a), "b": _run_facts(b), "same_machine": same, "confidence": confidence,
            "threshold": threshold, "metrics": metrics}


def _run_facts(results: dict[str, Any]) -> dict[str, Any]:
    m, git = results.get("machine", {}), results.get("git", {})
    return {"run_id": results.get("run_id"), "created_utc": results.get("created_utc"),
            "suite": (results.get("suite") or {}).get("name"), "commit": git.get("commit"),
            "dirty": git.get("dirty"), "cpu_model": m.get("cpu_model"), "cores": m.get("cpu_affinity"),
            "memory_bytes": m.get("memory_bytes"), "load_avg_1m": m.get("load_avg_1m")}


def _compare_fact_rows(cmp: dict[str, Any]) -> list[tuple[str, str, str]]:
    def fmt(f: dict[str, Any], k: str) -> str:
        v = f.get(k)
        if v is None:
            return "–"
        if k == "memory_bytes":
            return f"{v / 2**30:.1f} GiB"
        if k == "commit":
            return f"{v[:12]}{' (uncommitted changes)' if f.get('dirty') else ''}"
        return str(v)

    keys = [("run", "run_id"), ("created (UTC)", "created_utc"), ("suite", "suite"), ("git commit", "commit"),
            ("CPU", "cpu_model"), ("usable cores", "cores"), ("memory", "memory_bytes"),
            ("load at start (1 min)", "load_avg_1m")]
    return [(label, fmt(cmp["a"], k), fmt(cmp["b"], k)) for label, k in keys]


def _fmt_metric(v: float | None, metric: str) -> str:
    if v is None:
        return "–"
    return _fmt_s(v) if metric == "wall_s" else f"{v / MIB:,.0f}"


def compare_rows(cmp: dict[str, Any], metric: str) -> list[dict[str, str]]:
    """Display strings of one metric's comparison rows."""
    out = []
    for r in cmp["metrics"][metric]:
        ci = f"{r['ci_low']:.2f}–{r['ci_high']:.2f}" if r.get("ci_low") is not None else "–"
        out.append({"case": r["id"], "A": _fmt_metric(r["median_a"], metric),
                    "B": _fmt_metric(r["median_b"], metric),
                    "B/A": f"{r['ratio']:.2f}×" if r["ratio"] else "–", "CI": ci,
                    "verdict": r["verdict"].replace("_", " ")})
    return out


COMPARE_COLUMNS = ["case", "A", "B", "B/A", "CI", "verdict"]
_METRIC_TITLE = {"wall_s": "Warm median wall time, s", "peak_rss_bytes": "Peak memory, MiB"}


# ---------------------------------------------------------------- plots

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
    """The sizing fits of :func:`uda.harness.sizing.curves` keyed by ``(task, engine, metric)``.

    Returns the curves and, when they cannot be fitted from these results, why.
    """
    from uda.harness.sizing import curves

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

    tasks = _by_task([c for c in _ok_cases(results) if c.get("rows_in") and not _is_compile(c)
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
                    label=_plain(eng), linewidth=1.2)
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
        ax.set_title(_plain(task), fontsize=10)
        ax.set_xlabel("rows in (log)", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7, which="both")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return fig


def _case_label(c: dict[str, Any]) -> str:
    return _plain(f"{task_key(c)} / {_engine_label(c)} / {c.get('scale') or '-'}")


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


def _plot_quality(results: dict[str, Any]):
    """Per task, the headline answer quality against warm time, one point per engine and scale."""
    tasks = _by_task([c for c in _ok_cases(results) if c.get("quality") and not _is_compile(c)
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
                    (c["summary"]["wall_s_median"], value, _fmt_rows(c.get("rows_in")) + " rows"
                     if c.get("rows_in") else (c.get("scale") or "")))
        seen: set[str] = set()
        for eng, pts in sorted(engines.items()):
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=25, label=_plain(eng))
            for x, y, tag in pts:
                if tag not in seen:  # once per size: the engines' answers agree, so their points share y
                    seen.add(tag)
                    ax.annotate(_plain(tag, 20), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.legend(fontsize=7)
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _compact(v)))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: _compact(v)) if hi / lo < 3
                                     else FuncFormatter(lambda v, _pos: ""))
        ax.set_title(_plain(task), fontsize=10)
        ax.set_xlabel("warm median time, s (log)", fontsize=8)
        ax.set_ylabel(_plain(label), fontsize=8)
        ax.tick_params(labelsize=7, which="both")
        ax.grid(True, alpha=0.3)
    fig.suptitle("Answer quality (as in the headline) against time", fontsize=11)
    return fig


def _plot_ratios(cmp: dict[str, Any]):
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
        ax.set_title(f"{_METRIC_TITLE[metric].split(',')[0]}: B/A", fontsize=10)
        ax.set_xlabel("ratio B/A (bar: confidence interval)", fontsize=8)
        ax.tick_params(labelsize=7, which="both")
        ax.grid(True, axis="x", which="both", alpha=0.3)
    axes[0].set_yticks(y, [_plain(i) for i in ids], fontsize=7)
    axes[0].invert_yaxis()
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
        out.append((name, caption, _png(fig)))
    return out


# ---------------------------------------------------------------- tables as strings

#: A text table: title, columns, rows of strings, and notes printed under it.
Table = tuple[str, list[str], list[list[str]], list[str]]
_METRIC_WORD = {"wall_s": "time", "peak_rss_bytes": "peak memory"}


def _rel_cell(cell: dict[str, Any] | None, metric: str) -> str:
    """Ratio and the absolute value, for text formats without hover."""
    if cell is None:
        return ""
    text = _cell_text(cell)
    if cell["value"] is None:
        return text
    absolute = f"{_fmt_s(cell['value'])} s" if metric == "wall_s" else f"{cell['value'] / MIB:,.0f} MiB"
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
        rows.append([r["task"], r["scale"], _fmt_rows(r["rows_in"]), speed_text(r), r["quality"], agreement])
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
    return (f"{_METRIC_WORD[metric].capitalize()} relative to the {best} engine (1.00× = {best})",
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
    out: list[Table] = [("Runs", ["", "A", "B"], [list(r) for r in _compare_fact_rows(cmp)], [])]
    for metric in COMPARE_METRICS:
        rows = [[r[c] for c in COMPARE_COLUMNS] for r in compare_rows(cmp, metric)]
        out.append((f"{_METRIC_TITLE[metric]}: B/A, {cmp['confidence']:.0%} confidence interval",
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
        w.writerow([c["id"], task_key(c), _engine_label(c), c.get("scale") or "", c["status"], c.get("rows_in") or "",
                    (c.get("cold") or {}).get("wall_s", ""), s.get("wall_s_median", ""), s.get("wall_s_min", ""),
                    s.get("wall_s_max", ""), s.get("n_warm", ""), s.get("cpu_s_median", ""),
                    s.get("peak_rss_bytes", ""),
                    "" if _is_compile(c) else rel["wall_s"].get(k) or "",
                    "" if _is_compile(c) else rel["peak_rss_bytes"].get(k) or "",
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
    parts = [f"<table class=\"relative\"><caption>{e(_METRIC_WORD[metric].capitalize())} relative to the {best} "
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
            tds.append(f"<td class=\"{cls}\" style=\"background:{_cell_colour(cell['ratio'])}\" "
                       f"title=\"{e(_cell_title(cell, metric))}\">{e(_cell_text(cell))}</td>")
        rows_in = f" ({_fmt_rows(r['rows_in'])} rows)" if r["rows_in"] else ""
        parts.append(f"<tr><td>{_wbr(r['task'])}</td><td>{_wbr(r['scale'] + rows_in)}</td>{''.join(tds)}</tr>")
    geo = "".join(
        f"<td class=\"rel\" style=\"background:{_cell_colour(g['ratio'])}\" title=\"geometric mean over "
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
        p.write_bytes(png)
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
    md.write_text(render_markdown(results, md_plots))
    paths["markdown"] = md
    if html_page:
        page = out / f"{stem}.html"
        page.write_text(render_html(results, plots))
        paths["html"] = page
    return paths


# ---------------------------------------------------------------- two runs: documents

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
    parts = [f"<table><caption>{e(_METRIC_TITLE[metric])}: B/A, {cmp['confidence']:.0%} confidence interval"
             "</caption><tr>" + "".join(f"<th>{e(c)}</th>" for c in COMPARE_COLUMNS) + "</tr>"]
    for raw, r in zip(cmp["metrics"][metric], compare_rows(cmp, metric), strict=True):
        colour = _change_colour(raw["ratio"])
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
    fig = _plot_ratios(cmp)
    plots = [] if fig is None else [("ratios", "B/A per case with its confidence interval; red: "
                                               "regression, green: improvement", _png(fig))]
    paths, md_plots = _write_plots(out, stem, plots)
    heads = (headline_table(a), headline_table(b))
    md = out / f"{stem}.md"
    md.write_text(render_compare_markdown(cmp, md_plots, heads))
    paths["markdown"] = md
    if html_page:
        page = out / f"{stem}.html"
        page.write_text(render_compare_html(cmp, plots, heads))
        paths["html"] = page
    return cmp, paths
