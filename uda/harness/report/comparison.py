"""Two runs side by side: per case B/A with the interval of ``uda compare``, and its display rows."""

from __future__ import annotations

from typing import Any

from uda.harness.compare import compare_results
from uda.harness.report.headline import case_median
from uda.harness.report.text import MIB, fmt_s

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
                ma = case_median(ca[r["id"]], metric) if r["id"] in ca else None
                mb = case_median(cb[r["id"]], metric) if r["id"] in cb else None
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


def compare_fact_rows(cmp: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The two runs' facts as ``(label, A, B)`` display rows (run, commit, CPU, cores, memory, load)."""
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
    return fmt_s(v) if metric == "wall_s" else f"{v / MIB:,.0f}"


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
METRIC_TITLE = {"wall_s": "Warm median wall time, s", "peak_rss_bytes": "Peak memory, MiB"}
