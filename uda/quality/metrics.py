"""Data-quality metrics per table and district in one scan, named after ISO/IEC 25012 / 25024.

The measures of :func:`uda.quality.scan.measure` from a merged scan state. The measures and their ISO/IEC 25012 characteristic (25024 measure where one
exists):

==========================  ==============================================================
``completeness_value``      Completeness, Com-I-1 (value completeness): non-missing values / values
``completeness_record``     Completeness, Com-I-2 (record completeness): records with every value / records
``completeness_interval``   Completeness (expected vs received): distinct sensor intervals received / expected
``accuracy_syntactic``      Accuracy, Acc-I-1 (syntactic accuracy): records whose id and time parse / records
``accuracy_range``          Accuracy, Acc-I-4 (data accuracy range): records with all values in range / parsed records
``accuracy_stuck``          Accuracy (semantic): 1 - records repeating a frozen sensor's reading / parsed records
``uniqueness``              Consistency/Accuracy, Acc-I-5 (record duplication): 1 - duplicate records / parsed records
``consistency_format``      Consistency, Con-I-3 (data format consistency): records on the standard time grid / parsed
``referential_integrity``   Consistency, Con-I-1 (referential integrity): ids resolving against city tables / parsed
``timeliness``              Currentness, Cur-I-1 (update timeliness): records arriving within 1 h / records with arrival time
==========================  ==============================================================

Plus approximate distinct keys (HyperLogLog) and quantiles of every value column and of the
arrival latency (log-bucket sketch), with their stated error bounds. A measure that does not
apply (no arrival time in canonical tables, no time grid for taps) is reported as 1.0 with
a zero denominator recorded next to it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from uda.contract import SPECS
from uda.kernels import quality as qk
from uda.kernels.sketches import QS_ALPHA, hll_error, hll_estimate, qs_quantile

#: Relative accuracy of the quantile sketches.
ALPHA = QS_ALPHA


QUANTILES = (0.01, 0.5, 0.99)


def _share(num: int, den: int) -> float:
    return 1.0 if den == 0 else num / den


def _metrics(c: np.ndarray, nonnull: np.ndarray, registers: np.ndarray, k: int, expected: int | None) -> dict:
    rows, ok = int(c[qk.ROWS]), int(c[qk.SYNTAX_OK])
    out = {
        "rows": rows,
        "completeness_value": _share(int(nonnull.sum()), ok * k) if k else 1.0,
        "completeness_record": _share(int(c[qk.COMPLETE]), ok),
        "completeness_interval": None if expected is None else _share(int(c[qk.SLOTS]), expected),
        "intervals_expected": expected, "intervals_received": None if expected is None else int(c[qk.SLOTS]),
        "accuracy_syntactic": _share(ok, rows),
        "accuracy_range": _share(int(c[qk.IN_RANGE]), ok),
        "accuracy_stuck": 1.0 - _share(int(c[qk.STUCK]), ok) if ok else 1.0,
        "uniqueness": 1.0 - _share(int(c[qk.DUPLICATE]), ok) if ok else 1.0,
        "consistency_format": _share(int(c[qk.ON_GRID]), ok),
        "referential_integrity": _share(int(c[qk.REF_OK]), ok),
        "in_period": _share(int(c[qk.IN_PERIOD]), ok),
        "timeliness": _share(int(c[qk.WITH_LATENCY]) - int(c[qk.LATE]), int(c[qk.WITH_LATENCY])),
        "records_with_arrival_time": int(c[qk.WITH_LATENCY]),
        "distinct_keys_est": round(hll_estimate(registers), 1),
        "distinct_keys_rel_error": round(hll_error(registers), 4),
        "counts": {"duplicates": int(c[qk.DUPLICATE]), "stuck": int(c[qk.STUCK]), "late": int(c[qk.LATE]),
                   "out_of_range": ok - int(c[qk.IN_RANGE]), "off_grid": ok - int(c[qk.ON_GRID]),
                   "unresolved": ok - int(c[qk.REF_OK])},
    }
    return out


def report(st: Any, table: str, *, districts: int, keys_per_district: np.ndarray, days: int) -> dict:
    """Metrics per district and for the whole table from a merged state."""
    spec = SPECS[table]
    k = len(spec.values)
    per_day = 86400 // spec.interval_s if spec.interval_s else 0
    out: dict[str, Any] = {"table": table, "districts": {}}
    for d in range(districts + 1):
        if st.counts[d, qk.ROWS] == 0 and d == districts:
            continue
        exp = int(keys_per_district[d]) * days * per_day if (per_day and d < districts) else None
        name = str(d) if d < districts else "unknown"
        out["districts"][name] = _metrics(st.counts[d], st.nonnull[d], st.registers[d], k, exp)
    regs = st.registers.max(axis=0)
    total_exp = int(keys_per_district.sum()) * days * per_day if per_day else None
    out["overall"] = _metrics(st.counts.sum(axis=0), st.nonnull.sum(axis=0), regs, k, total_exp)
    out["quantiles"] = {v: dict(zip([f"p{int(q * 100):02d}" for q in QUANTILES],
                                    [float(x) for x in qs_quantile(st.qs_values[j], np.array(QUANTILES))],
                                    strict=True)) for j, v in enumerate(spec.values)}
    lat = qs_quantile(st.qs_latency, np.array([0.5, 0.95, 0.99])) / 1000.0
    out["latency_s"] = None if not st.qs_latency.any() else {"p50": float(lat[0]), "p95": float(lat[1]),
                                                             "p99": float(lat[2])}
    out["quantile_rel_error"] = ALPHA
    return out
