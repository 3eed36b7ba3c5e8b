"""What a run's records come to: summary statistics of each case's measurements and the cross-engine
answer check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from uda.tasks.base import compare_answers


def summarise(case: dict[str, Any]) -> dict[str, Any] | None:
    """Summary statistics of an ``ok`` case's measurements (``None`` otherwise: its time does not count)."""
    if case["status"] != "ok":
        return None
    calls = ([case["cold"]] if case.get("cold") else []) + list(case.get("warm") or [])
    timed = case.get("warm") or ([case["cold"]] if case.get("cold") else [])
    if not timed:
        return None
    wall = np.array([m["wall_s"] for m in timed])
    cpu = np.array([m["cpu_s"] for m in timed])
    med = float(np.median(wall))
    rows = case.get("rows_in") or 0
    out = {
        "wall_s_median": med,
        "wall_s_min": float(wall.min()),
        "wall_s_max": float(wall.max()),
        "wall_s_q1": float(np.percentile(wall, 25)),
        "wall_s_q3": float(np.percentile(wall, 75)),
        "cpu_s_median": float(np.median(cpu)),
        "peak_rss_bytes": int(max(m["peak_rss_bytes"] for m in calls)),
        "warm_peak_rss_bytes": int(max(m["peak_rss_bytes"] for m in timed)),
        "rows_per_s": rows / med if med > 0 else None,
        "cold_wall_s": case["cold"]["wall_s"] if case.get("cold") else None,
        "n_warm": len(case.get("warm") or []),
    }
    if out["cold_wall_s"] is not None and case.get("warm"):
        out["cold_overhead_s"] = out["cold_wall_s"] - med
    return out


def check_answers(cases: list[dict[str, Any]], answers: dict[str, dict[str, np.ndarray]],
                  *, reference_engine: str = "polars") -> None:
    """Cross-engine answer check: mark cases disagreeing with their group's reference ``wrong_answer``."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        groups.setdefault(c.pop("_check_key"), []).append(c)
    for group in groups.values():
        ok = [c for c in group if c["status"] == "ok" and c["id"] in answers]
        if len(ok) < 2:
            for c in ok:
                c["answer_check"] = {"status": "unchecked", "reason": "no other engine ran this case"}
            continue
        ref = next((c for c in ok if c["engine"] == reference_engine), ok[0])
        ref["answer_check"] = {"status": "reference"}
        for c in ok:
            if c is ref:
                continue
            if c.get("source_sha256") != ref.get("source_sha256"):
                c["answer_check"] = {"status": "unchecked", "reference": ref["id"],
                                     "reason": "the uda source changed between this case and the "
                                               "reference (edited during the run); rerun on a fixed tree"}
                continue
            problems = compare_answers(answers[ref["id"]], answers[c["id"]],
                                       rtol=c["limits"]["rtol"], atol=c["limits"]["atol"])
            if problems:
                c["status"] = "wrong_answer"
                c["message"] = f"answer differs from {ref['id']}: {problems[0]}"
                c["answer_check"] = {"status": "differs", "reference": ref["id"], "problems": problems[:10]}
            else:
                c["answer_check"] = {"status": "agrees", "reference": ref["id"]}
