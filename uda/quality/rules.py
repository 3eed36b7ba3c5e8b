"""The data-quality rules of the sensor tables: what makes a record a duplicate, out of range, stuck,
late, skewed, drifted or unresolved, and which stage of the funnel it reaches.

Standardisation (:mod:`uda.tasks.standardise`) applies them per record with NumPy
(:func:`detect_group`, :func:`finish_group`): every row gets flags

``flag_syntax``     id or timestamp does not parse (or a value is not a number)
``flag_unit``       a column's unit is unknown or a required column is missing (feed-level)
``flag_range``      a value outside its physical range (:func:`value_ranges`)
``flag_duplicate``  a later copy of an earlier ``(key, ts)`` record
``flag_stuck``      repeats the previous reading of a frozen sensor (:data:`STUCK_MIN`)
``flag_skew``       the sensor's clock is off the interval grid (offset in ``skew_ms``)
``flag_late``       arrived more than :data:`uda.contract.LATE_AFTER_S` after measurement
``flag_drift``      the sensor's daily level drifted by :data:`uda.contract.DRIFT_MIN` or more from its first day
``flag_reference``  the id does not resolve against the city tables (or ts outside the period)

Rows that are valid (no syntax, range, duplicate or stuck flag), standardised (no unit flag) and
integrated (no reference flag) are clean; the others are rejects.

The quality scan (:mod:`uda.quality.scan`) counts the range, duplicate, stuck and late rules again
on the standardised output in one fused Numba pass (:func:`uda.kernels.quality.scan_block`), with the
parameters defined here (:func:`value_ranges`, :data:`STUCK_MIN`, :func:`stuck_exempt_column`). The
two implementations stay apart on purpose: standardisation flags each row of a group ordered by
``(parsed, key, time, arrival)`` (the earliest arrival of a duplicate is kept) and compares stuck
readings as published, before unit conversion; the scan counts per district in a single pass over
stored ``(key, time)`` order, without arrival times, on the float32 canonical values written to
``clean/`` and reading the latency standardisation wrote. ``tests/test_util_quality.py`` checks that
the scan's counts equal this module's flags on standardised data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from uda.contract import DAY_MS, DRIFT_MIN, LATE_AFTER_S, LOCAL_UTC_OFFSET_S, SPECS

#: The flags of a standardised record, in the order of the rejects' columns.
FLAGS = ("flag_syntax", "flag_unit", "flag_range", "flag_duplicate", "flag_stuck", "flag_skew", "flag_late",
         "flag_drift", "flag_reference")
#: A run of at least this many identical readings (including the first) is a stuck sensor.
STUCK_MIN = 3


def value_ranges(table: str) -> tuple[np.ndarray, np.ndarray]:
    """The valid range of each value column of ``table``: ``(lo, hi)`` float64 arrays, inclusive."""
    spec = SPECS[table]
    return (np.array([spec.ranges[v][0] for v in spec.values], np.float64),
            np.array([spec.ranges[v][1] for v in spec.values], np.float64))


def stuck_exempt_column(table: str) -> int:
    """The value column whose zero readings are never stuck (traffic flow: an idle road at night), or -1."""
    values = SPECS[table].values
    return values.index("flow") if "flow" in values else -1


def concat_parts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The parsed parts of one group as one: arrays concatenated, findings listed."""
    keys = ("key", "ref", "ts", "received", "values", "raw", "direction", "syntax_ok", "unit_ok", "conform")
    out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    out["findings"] = [f for p in parts for f in p["findings"]]
    return out


def _is_sorted(*cols: np.ndarray) -> bool:
    """Whether rows are already in lexicographic order of ``cols`` (first column most significant)."""
    if cols[0].size < 2:
        return True
    le = np.ones(cols[0].size - 1, bool)  # row i <= row i+1 on the columns compared so far, from the last
    for c in reversed(cols):
        a, b = c[:-1], c[1:]
        le = (a < b) | ((a == b) & le)
    return bool(le.all())


def detect_group(parts: list[dict[str, Any]], table: str, *, district: int | None, lookup: np.ndarray,
                 period: tuple[int, int]) -> dict[str, Any]:
    """Flags for one group of parsed feed parts (whole sensors/sites), sorted by key, time, arrival.

    Parameters
    ----------
    parts
        Parsed files of the group (from :func:`parse_polars` or :func:`read_parse_arrow`).
    table
        ``"traffic"``, ``"taps"`` or ``"water"``.
    district
        The publishing district (``None``: from ``lookup`` of the reference id).
    lookup
        ``id -> district`` of the referenced city table (-1 where no such id).
    period
        ``(start, end)`` of the dataset in local ms.
    """
    spec = SPECS[table]
    g = concat_parts(parts)
    n = g["key"].size
    rec = np.nan_to_num(g["received"], nan=2.0**62).astype(np.int64)
    if not _is_sorted(~g["syntax_ok"], g["key"], g["ts"], rec):  # feeds usually arrive in order
        order = np.lexsort((rec, g["ts"], g["key"], ~g["syntax_ok"]))
        g = {k: (v[order] if isinstance(v, np.ndarray) else v) for k, v in g.items()}
    key, ts, values = g["key"], g["ts"], g["values"]
    syn = g["syntax_ok"]
    f = {name: np.zeros(n, bool) for name in FLAGS}
    f["flag_syntax"] = ~syn
    f["flag_unit"] = ~g["unit_ok"]
    # duplicates: same key and ts as the previous row (earliest arrival kept)
    same = np.zeros(n, bool)
    if n > 1:
        same[1:] = syn[1:] & syn[:-1] & (key[1:] == key[:-1]) & (ts[1:] == ts[:-1])
    f["flag_duplicate"] = same
    skew = np.zeros(n, np.int64)
    if spec.values:
        lo, hi = value_ranges(table)
        with np.errstate(invalid="ignore"):
            out_of_range = ((values < lo) | (values > hi)).any(axis=1)
            f["flag_syntax"] |= syn & g["unit_ok"] & np.isnan(values).all(axis=1)
        f["flag_range"] = syn & out_of_range  # columns of unknown unit are NaN: never out of range
        # clock skew: the sensor's typical offset from the interval grid
        step = spec.interval_s * 1000
        resid = ((ts + step // 2) % step) - step // 2
        cand = syn & ~same
        if cand.any():
            ks, first, counts = np.unique(key[cand], return_index=True, return_counts=True)
            r = resid[cand]
            med = np.array([int(np.median(r[a:a + c])) for a, c in zip(first, counts, strict=True)], np.int64)
            med = (med // 60_000) * 60_000 + np.where(med % 60_000 >= 30_000, 60_000, 0)
            pos = np.searchsorted(ks, key)
            hit = (pos < ks.size) & (ks[np.minimum(pos, ks.size - 1)] == key) & syn
            skew = np.where(hit, med[np.minimum(pos, ks.size - 1)], 0)
        f["flag_skew"] = skew != 0
        # stuck: a run of >= STUCK_MIN identical readings of one sensor (not an idle road at night)
        live = syn & ~same & ~f["flag_range"]
        idx = np.flatnonzero(live)
        if idx.size > 1:
            v = g["raw"][idx]
            eq = (key[idx][1:] == key[idx][:-1]) & (v[1:] == v[:-1]).all(axis=1)
            zero = stuck_exempt_column(table)
            if zero >= 0:  # an idle road's zeros (NaN never repeats either)
                eq &= v[1:, zero] > 0
            # a row is stuck if it repeats the previous reading and its run reaches STUCK_MIN readings
            rep = np.r_[False, eq]
            run_id = np.cumsum(~rep)
            run_len = np.bincount(run_id)
            f["flag_stuck"][idx] = rep & (run_len[run_id] >= STUCK_MIN)
    ts_corr = ts - skew
    has_rec = ~np.isnan(g["received"])
    f["flag_late"] = syn & has_rec & ((g["received"] - (ts_corr - LOCAL_UTC_OFFSET_S * 1000)) > LATE_AFTER_S * 1000)
    ref = g["ref"]
    ref_district = np.where((ref >= 0) & (ref < lookup.size), lookup[np.clip(ref, 0, max(lookup.size - 1, 0))], -1) \
        if lookup.size else np.full(n, -1)
    f["flag_reference"] = syn & ((ref_district < 0) | (ts_corr < period[0]) | (ts_corr >= period[1]))
    dist = np.full(n, district if district is not None else -1, np.int64)
    if district is None:
        dist = np.where(ref_district >= 0, ref_district, -1)
    latency = np.where(has_rec, (g["received"] - (ts_corr - LOCAL_UTC_OFFSET_S * 1000)) / 1000.0, np.nan)
    return {"table": table, "key": key, "ref": ref, "ts": ts, "skew": skew, "values": values,
            "direction": g["direction"], "latency": latency, "district": dist, "flags": f,
            "findings": g["findings"], "conform": g["conform"], "syntax_ok": syn}


def daily_levels(grp: dict[str, Any], *, start_ms: int) -> dict[str, np.ndarray]:
    """Per (key, day) median of the drift column over the group's valid rows (drift detector input)."""
    spec = SPECS[grp["table"]]
    if not spec.drift:
        return {"key": np.zeros(0, np.int64), "day": np.zeros(0, np.int64), "level": np.zeros(0)}
    f = grp["flags"]
    ok = ~(f["flag_syntax"] | f["flag_range"] | f["flag_duplicate"] | f["flag_stuck"])
    j = spec.values.index(spec.drift)  # NaN where the drift column's unit is unknown
    v = grp["values"][ok, j]
    k = grp["key"][ok]
    d = (grp["ts"][ok] - grp["skew"][ok] - start_ms) // DAY_MS
    good = np.isfinite(v)
    k, d, v = k[good], d[good], v[good]
    if not k.size:
        return {"key": k, "day": d, "level": v}
    # rows are sorted by key then time and a key's skew is constant, so (key, day) runs are
    # contiguous: lay the runs out as rows (padded with +inf), sort each row, take the middle
    # value (or the mean of the two middle ones, as np.median)
    brk = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]) | (d[1:] != d[:-1]), True])
    cnt = np.diff(brk)
    n_runs, width = cnt.size, int(cnt.max())
    if n_runs * width <= 2 * v.size + 4096:
        grid = np.full((n_runs, width), np.inf)
        run = np.repeat(np.arange(n_runs), cnt)
        grid[run, np.arange(v.size) - brk[:-1][run]] = v
        grid.sort(axis=1)
        rows = np.arange(n_runs)
        med = (grid[rows, (cnt - 1) // 2] + grid[rows, cnt // 2]) / 2.0
    else:  # a few very long runs: padding would cost more than a loop
        med = np.array([np.median(v[a:b]) for a, b in zip(brk[:-1], brk[1:], strict=True)])
    return {"key": k[brk[:-1]], "day": d[brk[:-1]], "level": med}


def drift_factors(levels: list[dict[str, np.ndarray]]) -> dict[tuple[int, int], float]:
    """``(key, day) -> estimated drift factor`` where it departs from 1 by :data:`DRIFT_MIN` or more.

    A key's daily level is divided by the median level of all keys that day (removing the
    weekly and weather pattern every sensor shares), then by the median of that ratio on
    the key's first two days (drift starts on day 1 at the earliest, from 0); the result is
    its estimated multiplicative drift. A day counts only when the
    median over it and the later days departs on the same side by at least half as much
    (drift persists; day-to-day congestion does not).
    """
    k = np.concatenate([x["key"] for x in levels]) if levels else np.zeros(0, np.int64)
    if not k.size:
        return {}
    d = np.concatenate([x["day"] for x in levels])
    v = np.concatenate([x["level"] for x in levels])
    days = np.unique(d)
    day_med = {int(x): float(np.median(v[d == x])) for x in days}
    ratio = v / np.array([day_med[int(x)] if day_med[int(x)] != 0 else np.nan for x in d])
    out: dict[tuple[int, int], float] = {}
    order = np.lexsort((d, k))
    k, d, ratio = k[order], d[order], ratio[order]
    brk = np.flatnonzero(np.r_[True, k[1:] != k[:-1], True])
    for a, b in zip(brk[:-1], brk[1:], strict=True):
        base = np.median(ratio[a:min(a + 2, b)])  # first two days: one busy day is no baseline
        if not np.isfinite(base) or base == 0:
            continue
        fac = ratio[a:b] / base
        for i in np.flatnonzero(np.abs(fac - 1.0) >= DRIFT_MIN):
            # drift ramps up and stays; a busy (or quiet) day does not: the days from this
            # one on must depart on the same side, by at least half as much, in the median
            later = np.median(fac[i:]) - 1.0
            if later * (fac[i] - 1.0) > 0 and abs(later) >= DRIFT_MIN / 2:
                out[(int(k[a]), int(d[a + i]))] = float(fac[i])
    return out


def finish_group(grp: dict[str, Any], factors: dict[tuple[int, int], float], *, start_ms: int,
                 repair: bool) -> tuple[pa.Table, pa.Table, dict[int, dict[str, int]]]:
    """Apply drift flags (and repairs); split into clean and reject tables; count funnel stages per district."""
    spec = SPECS[grp["table"]]
    f = grp["flags"]
    values = grp["values"].copy()
    ts = grp["ts"].copy()
    if factors and spec.drift:
        day = (ts - grp["skew"] - start_ms) // DAY_MS
        fk = np.array([a * 100_000 + b for a, b in factors], np.int64)
        fv = np.array(list(factors.values()))
        order = np.argsort(fk)
        fk, fv = fk[order], fv[order]
        code = grp["key"] * 100_000 + day
        pos = np.minimum(np.searchsorted(fk, code), fk.size - 1)
        fac = np.where(fk[pos] == code, fv[pos], 1.0)
        f["flag_drift"] = grp["syntax_ok"] & (fac != 1.0)
        if repair:
            j = spec.values.index(spec.drift)
            values[:, j] = values[:, j] / fac
    if repair:
        ts = ts - grp["skew"]
    valid = ~(f["flag_syntax"] | f["flag_range"] | f["flag_duplicate"] | f["flag_stuck"])
    standardised = valid & ~f["flag_unit"]
    integrated = standardised & ~f["flag_reference"]
    counts: dict[int, dict[str, int]] = {}
    for d in np.unique(grp["district"]):
        sel = grp["district"] == d
        counts[int(d)] = {"collected": int(sel.sum()), "valid": int((valid & sel).sum()),
                          "standardised": int((standardised & sel).sum()), "integrated": int((integrated & sel).sum())}

    def build(mask: np.ndarray, flags: tuple[str, ...]) -> pa.Table:
        cols: dict[str, pa.Array] = {}
        key_type = pa.int64() if grp["table"] == "taps" else pa.int32()
        cols[spec.key] = pa.array(grp["key"][mask], key_type)
        if grp["table"] == "taps":
            cols["station_id"] = pa.array(np.clip(grp["ref"][mask], -1, 2**31 - 1), pa.int32())
        cols["ts"] = pa.array(ts[mask], pa.timestamp("ms"))
        if grp["table"] == "taps":
            cols["direction"] = pa.array(grp["direction"][mask], pa.int8())
        for j, v in enumerate(spec.values):
            cols[v] = pa.array(values[mask, j].astype(np.float32))
        cols["district_id"] = pa.array(grp["district"][mask], pa.int16())
        cols["latency_s"] = pa.array(grp["latency"][mask].astype(np.float32))
        cols["skew_ms"] = pa.array(grp["skew"][mask], pa.int32())
        for name in flags:
            cols[name] = pa.array(f[name][mask])
        return pa.table(cols)

    clean = build(integrated, ("flag_skew", "flag_late", "flag_drift"))
    rejects = build(~integrated, FLAGS)
    return clean, rejects, counts
