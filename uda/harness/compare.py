"""Compare two results files: per case ratio of medians with a bootstrap confidence interval."""

from __future__ import annotations

from typing import Any

import numpy as np

from uda.errors import UserError
from uda.harness.results import warm_values

METRICS = ("wall_s", "cpu_s", "peak_rss_bytes")
#: Fewest measurements on each side for a verdict (one value has no spread to judge by).
MIN_REPEATS = 2
#: Verdicts that compare something; a comparison without any of them compared nothing.
VERDICTS_COMPARED = ("regression", "improvement", "same", "failed", "fixed")


def ratio_ci(a: list[float], b: list[float], *, confidence: float = 0.95, n_boot: int = 4000,
             seed: int = 0) -> tuple[float, float, float]:
    """Ratio of medians ``median(b) / median(a)`` and its percentile-bootstrap interval.

    Both samples are resampled with replacement, independently, ``n_boot`` times.

    Returns
    -------
    tuple of float
        ``(ratio, low, high)``.
    """
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ratio = float(np.median(xb) / np.median(xa))
    rng = np.random.default_rng(seed)
    ma = np.median(xa[rng.integers(0, xa.size, size=(n_boot, xa.size))], axis=1)
    mb = np.median(xb[rng.integers(0, xb.size, size=(n_boot, xb.size))], axis=1)
    boot = mb / ma
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return ratio, float(low), float(high)


def same_machine_facts(ma: dict[str, Any], mb: dict[str, Any]) -> bool:
    """Whether two runs' machine facts describe the same machine: same CPU model and logical
    cores, total memory within 1 % (the kernel's reserve moves the total by a few hundred KB
    between boots)."""
    if any(ma.get(k) != mb.get(k) for k in ("cpu_model", "cores_logical")):
        return False
    x, y = ma.get("memory_bytes"), mb.get("memory_bytes")
    if x is None or y is None:
        return x == y
    return abs(x - y) <= 0.01 * max(x, y)


def _values(case: dict[str, Any], metric: str) -> list[float]:
    vals = warm_values(case, metric)
    if not vals and case.get("cold") and case["cold"].get(metric) is not None:
        vals = [float(case["cold"][metric])]
    return [v for v in vals if v > 0]


def compare_results(a: dict[str, Any], b: dict[str, Any], *, threshold: float = 0.1,
                    metric: str = "wall_s", confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Compare run ``b`` against baseline ``a``, case by case (matched by case id).

    A case is a ``regression`` when the lower bound of the ratio's confidence interval
    exceeds ``1 + threshold`` (slower beyond the threshold, and not by chance), an
    ``improvement`` when the upper bound is below ``1 / (1 + threshold)``, else ``same``.
    A case ``ok`` in ``a`` but failing in ``b`` is ``failed`` and counts as a regression;
    the reverse is ``fixed``. A case with fewer than :data:`MIN_REPEATS` measurements on
    either side (e.g. a compile-from-scratch case with only its cold call) is
    ``too_few_repeats``.

    Parameters
    ----------
    a, b
        Results objects (``a`` is the baseline).
    threshold
        Relative slowdown tolerated, e.g. ``0.1`` for 10 %.
    metric
        ``wall_s``, ``cpu_s`` or ``peak_rss_bytes`` of the warm repeats.
    confidence
        Two-sided confidence level of the bootstrap interval.
    seed
        Seed of the bootstrap resampling (the verdict is reproducible).

    Returns
    -------
    dict
        ``{"metric", "threshold", "confidence", "a", "b", "cases": [...], "regressions": [ids]}``.
    """
    if metric not in METRICS:
        msg = f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}"
        raise UserError(msg)
    if not threshold >= 0:
        msg = f"--threshold {threshold} must be >= 0 (e.g. 0.1 for 10 %)"
        raise UserError(msg)
    if not 0 < confidence < 1:
        msg = f"--confidence {confidence} must be between 0 and 1 (e.g. 0.95)"
        raise UserError(msg)
    ca = {c["id"]: c for c in a["cases"]}
    cb = {c["id"]: c for c in b["cases"]}
    rows = []
    for cid in list(ca) + [k for k in cb if k not in ca]:
        x, y = ca.get(cid), cb.get(cid)
        row: dict[str, Any] = {"id": cid, "ratio": None, "ci_low": None, "ci_high": None,
                               "median_a": None, "median_b": None, "n_a": 0, "n_b": 0}
        if x is None or y is None:
            row["verdict"] = "only_in_b" if x is None else "only_in_a"
        elif x["status"] != "ok" or y["status"] != "ok":
            if x["status"] == "ok":
                row["verdict"] = "failed"
            elif y["status"] == "ok":
                row["verdict"] = "fixed"
            else:
                row["verdict"] = "not_comparable"
            row["status_a"], row["status_b"] = x["status"], y["status"]
        else:
            va, vb = _values(x, metric), _values(y, metric)
            row.update(n_a=len(va), n_b=len(vb))
            if len(va) < MIN_REPEATS or len(vb) < MIN_REPEATS:
                row["verdict"] = "too_few_repeats"
            else:
                ratio, low, high = ratio_ci(va, vb, confidence=confidence, seed=seed)
                row.update(ratio=ratio, ci_low=low, ci_high=high, median_a=float(np.median(va)),
                           median_b=float(np.median(vb)))
                if low > 1 + threshold:
                    row["verdict"] = "regression"
                elif high < 1 / (1 + threshold):
                    row["verdict"] = "improvement"
                else:
                    row["verdict"] = "same"
        rows.append(row)
    regressions = [r["id"] for r in rows if r["verdict"] in ("regression", "failed")]
    ma, mb = a.get("machine", {}), b.get("machine", {})
    same_machine = same_machine_facts(ma, mb)
    return {
        "metric": metric, "threshold": threshold, "confidence": confidence,
        "a": {"run_id": a.get("run_id"), "commit": a.get("git", {}).get("commit")},
        "b": {"run_id": b.get("run_id"), "commit": b.get("git", {}).get("commit")},
        "same_machine": same_machine,
        "cases": rows,
        "regressions": regressions,
    }
