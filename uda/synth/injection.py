"""Defect injection: drift, stuck runs, spikes, missing records, duplicates, clock skew, late arrival.

:func:`inject` turns a chunk of canonical rows into the rows a department delivers (in
canonical units and ids, with observed timestamps and arrival times) and the truth
records of every defect it injected, ``(type, table, district, key, ts, detail)`` with
``ts`` the true (canonical) time.

Draws are counter-based (:mod:`uda.kernels.rng`): a row's draws depend only on
(seed, table, unit, position in the unit's series, lane), never on how rows are chunked.
The model and the rates are documented in ``docs/utilisation.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from uda.contract import (
    DAY_MS,
    DEFECT_TYPES,
    DRIFT_MIN,
    LATE_AFTER_S,
    LOCAL_UTC_OFFSET_S,
    SPECS,
    TableSpec,
)
from uda.kernels.rng import stream_key, subkeys, uniform_lanes
from uda.synth.profiles import DefectProfile

#: Missing records (issue 13): shares of the ``missing`` rate lost as isolated records, in
#: outages of minutes to hours and in whole calendar days (see docs/datasets.md).
MISSING_SPLIT = (0.15, 0.25, 0.60)
#: Outages: log-normal duration (median, σ of the log), clipped to [min, max].
OUTAGE_MEDIAN_MIN = 25.0
OUTAGE_SIGMA = 0.6
OUTAGE_MIN_MIN = 15.0
OUTAGE_MAX_H = 12.0
#: Whole days down: the probability that such an outage goes on for another day.
DAYS_DOWN_CONTINUE = 0.5

# --------------------------------------------------------------------------- counter-based draws

_UNIT_LANES = np.uint64(1 << 52)
_DAY_COUNTERS = np.uint64(1 << 51)  # counters of per-(unit, day) draws
_DAYS_BEFORE = 40  # days before the start on which a whole-days outage may begin (0.5**40: none longer)


def unit_keys(seed: int, table: str, units: np.ndarray) -> np.ndarray:
    """Keys of the defect draws of ``units`` (sensor, site or card ids) of ``table`` for ``seed``."""
    return subkeys(stream_key(seed, f"defects-{table}"), np.ascontiguousarray(units, dtype=np.uint64))


def _uniform(keys: np.ndarray, counter: np.ndarray, lane: int) -> np.ndarray:
    """Uniform (0, 1) draws for each (key, counter, lane) (:func:`uda.kernels.rng.uniform_lanes`)."""
    keys, counter = np.broadcast_arrays(keys, np.asarray(counter).astype(np.uint64))
    return uniform_lanes(np.ascontiguousarray(keys), np.ascontiguousarray(counter), np.uint64(lane))


def _unit_uniform(keys: np.ndarray, lane: int) -> np.ndarray:
    return _uniform(keys, np.full(keys.shape, _UNIT_LANES, np.uint64), lane)


# --------------------------------------------------------------------------- truth records

_TYPE_CODE = {t: i for i, t in enumerate(DEFECT_TYPES)}


class DefectTruth:
    """Defect records collected while injecting: type, key, true ts, detail, row district."""

    def __init__(self, district: np.ndarray):
        self.district = district
        self.parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, kind: str, mask: np.ndarray, key: np.ndarray, ts: np.ndarray,
            detail: np.ndarray | float = np.nan) -> None:
        """Record a defect of type ``kind`` on the rows where ``mask`` holds."""
        if mask.any():
            d = np.broadcast_to(np.asarray(detail, np.float64), mask.shape)[mask]
            self.parts.append((kind, key[mask].astype(np.int64), ts[mask].astype(np.int64), d.astype(np.float64),
                               self.district[mask]))

    def table(self, table: str) -> pa.Table:
        """The records as ``truth/defects`` rows of ``table``, ordered by type, key and time."""
        if self.parts:
            kind = np.concatenate([np.full(p[1].size, _TYPE_CODE[p[0]], np.int8) for p in self.parts])
            key = np.concatenate([p[1] for p in self.parts])
            ts = np.concatenate([p[2] for p in self.parts])
            detail = np.concatenate([p[3] for p in self.parts])
            district = np.concatenate([p[4] for p in self.parts])
        else:
            kind, key, ts, detail, district = (np.zeros(0, np.int8), np.zeros(0, np.int64), np.zeros(0, np.int64),
                                               np.zeros(0, np.float64), np.zeros(0, np.int16))
        order = np.lexsort((ts, key, kind))
        names = np.array(DEFECT_TYPES, dtype=object)
        return pa.table({
            "type": pa.array(names[kind[order]].tolist() if kind.size else [], pa.string()),
            "table": pa.array([table] * kind.size, pa.string()),
            "district": pa.array(district[order].astype(np.int16)),
            "key": pa.array(key[order]),
            "ts": pa.array(ts[order], pa.timestamp("ms")),
            "detail": pa.array(detail[order]),
        })


def missing_records(rate: float, rkeys: np.ndarray, ukeys: np.ndarray, pos: np.ndarray, counts: np.ndarray,
                     day: np.ndarray, interval_s: int, days: int) -> np.ndarray:
    """Rows never delivered: ``rate`` of the records, split by :data:`MISSING_SPLIT`.

    Rows are whole units in time order (``counts`` rows per unit, ``pos`` the record's
    position in its series, ``day`` its day from the start). Isolated records go missing
    independently; an outage starts at a record with a probability set so that outages
    cover their share, lasts a log-normal time (median :data:`OUTAGE_MEDIAN_MIN`,
    σ :data:`OUTAGE_SIGMA`, :data:`OUTAGE_MIN_MIN` min to :data:`OUTAGE_MAX_H` h) and stops
    at the end of the unit's series; a unit goes down for whole calendar days from a day
    with a probability per unit-day, for 1 + Geometric(:data:`DAYS_DOWN_CONTINUE`) days.
    Every draw is keyed by (unit, position) or (unit, day), so the result does not depend
    on chunking.
    """
    n = pos.size
    if rate <= 0.0 or n == 0:
        return np.zeros(n, bool)
    iso, hours, whole = (rate * f for f in MISSING_SPLIT)
    missing = _uniform(rkeys, pos, 4) < iso
    # outages of minutes to hours
    mean_min = min(OUTAGE_MEDIAN_MIN * np.exp(OUTAGE_SIGMA ** 2 / 2), OUTAGE_MAX_H * 60.0)
    mean_rec = max(1.0, mean_min * 60.0 / interval_s)
    starts = np.flatnonzero(_uniform(rkeys, pos, 10) < hours / mean_rec)
    if starts.size:
        u1, u2 = _uniform(rkeys[starts], pos[starts], 11), _uniform(rkeys[starts], pos[starts], 12)
        z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        minutes = np.clip(OUTAGE_MEDIAN_MIN * np.exp(OUTAGE_SIGMA * z), OUTAGE_MIN_MIN, OUTAGE_MAX_H * 60.0)
        length = np.maximum(1, np.round(minutes * 60.0 / interval_s)).astype(np.int64)
        unit_end = np.repeat(np.cumsum(counts), counts)[starts]
        edges = np.zeros(n + 1, np.int64)
        np.add.at(edges, starts, 1)
        np.add.at(edges, np.minimum(starts + length, unit_end), -1)
        missing |= np.cumsum(edges[:-1]) > 0
    # whole days down; episodes may begin up to _DAYS_BEFORE days before the start, so that
    # the share of days down is the same on every day of the period
    if days > 0:
        n_units = ukeys.size
        span = days + _DAYS_BEFORE
        dk = np.repeat(ukeys, span)
        dc = np.tile(np.arange(span, dtype=np.uint64), n_units) + _DAY_COUNTERS
        begin = _uniform(dk, dc, 0) < whole * (1.0 - DAYS_DOWN_CONTINUE)
        if begin.any():
            at = np.flatnonzero(begin)
            cont = np.log(_uniform(dk[at], dc[at], 1)) / np.log(DAYS_DOWN_CONTINUE)
            first_day = at % span - _DAYS_BEFORE
            last = first_day + 1 + np.floor(cont).astype(np.int64)
            seen = last > 0
            unit = at[seen] // span
            edges = np.zeros((n_units, days + 1), np.int64)
            np.add.at(edges, (unit, np.maximum(first_day[seen], 0)), 1)
            np.add.at(edges, (unit, np.minimum(last[seen], days)), -1)
            down = np.cumsum(edges[:, :-1], axis=1) > 0
            row_unit = np.repeat(np.arange(n_units), counts)
            missing |= down[row_unit, np.clip(day, 0, days - 1)]
    return missing


def run_lengths(missing: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Per row, the length of the run of missing rows it belongs to (runs stop at unit starts)."""
    out = np.zeros(missing.size)
    if not missing.any():
        return out
    prev = np.zeros(missing.size, bool)
    prev[1:] = missing[:-1]
    prev[first] = False
    start = missing & ~prev
    run = np.cumsum(start) - 1
    out[missing] = np.bincount(run[missing])[run[missing]]
    return out




def _series_defects(tab: pa.Table, spec: TableSpec, profile: DefectProfile, *, seed: int, start_ms: int,
                    days: int, district_of) -> tuple[dict[str, np.ndarray], DefectTruth]:
    """Apply value and record defects to a canonical interval table (rows grouped by unit, in time order)."""
    r = profile.rates
    key = tab[spec.key].to_numpy().astype(np.int64)
    ts = tab["ts"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    vals = {v: tab[v].to_numpy().astype(np.float64) for v in spec.values}
    n = key.size
    step = spec.interval_s * 1000
    pos = (ts - start_ms) // step
    units, first, counts = np.unique(key, return_index=True, return_counts=True)
    ukeys = unit_keys(seed, spec.name, units)
    rkeys = np.repeat(ukeys, counts)
    truth = DefectTruth(district_of(key))

    # drift: a linear multiplicative bias from a start day to +-B at the end of the period
    drifting = _unit_uniform(ukeys, 0) < r["drift"]
    if drifting.any() and days >= 2:
        d_start = (1 + np.floor(_unit_uniform(ukeys, 1) * max(1, days // 2))).astype(np.int64)
        mag = (0.3 + 0.3 * _unit_uniform(ukeys, 2)) * np.where(_unit_uniform(ukeys, 3) < 0.5, -0.6, 1.0)
        t0 = np.repeat(d_start * DAY_MS // step, counts)
        span = max(1, days * DAY_MS // step) - t0
        bias = np.where(np.repeat(drifting, counts) & (pos >= t0),
                        np.repeat(mag, counts) * (pos - t0) / np.maximum(span, 1), 0.0)
        vals[spec.drift] = vals[spec.drift] * (1.0 + bias)
        hit = np.abs(bias) >= DRIFT_MIN
        drift_rows = hit
        drift_bias = bias
    else:
        drift_rows = np.zeros(n, bool)
        drift_bias = np.zeros(n)

    # stuck: runs of ``stuck_run`` rows repeating the reading at the run's start
    stuck = np.zeros(n, bool)
    if r["stuck"] > 0:
        L = spec.stuck_run
        starts = np.flatnonzero(_uniform(rkeys, pos, 0) < r["stuck"] / (L - 1))
        anchor = np.arange(n)
        unit_end = np.repeat(first + counts, counts)
        for s in starts:
            a = anchor[s]
            e = min(s + L, unit_end[s])
            anchor[s + 1:e] = a
            stuck[s + 1:e] = True
        for v in spec.values:
            vals[v] = vals[v][anchor]

    # spikes: one value per hit row becomes physically impossible
    spike = _uniform(rkeys, pos, 1) < r["spike"]
    spike_col = np.minimum((_uniform(rkeys, pos, 2) * len(spec.values)).astype(np.int64), len(spec.values) - 1)
    u = _uniform(rkeys, pos, 3)
    for j, v in enumerate(spec.values):
        lo, hi = spec.ranges[v]
        sel = spike & (spike_col == j)
        width = hi - lo
        vals[v] = np.where(sel, np.where(u < 0.5, hi + width * (1.0 + 4.0 * u), lo - width * (0.5 + 2.0 * u)),
                           vals[v])

    # missing records: isolated ones, outages of minutes to hours, whole days down
    missing = missing_records(r["missing"], rkeys, ukeys, pos, counts, (ts - start_ms) // DAY_MS,
                               spec.interval_s, days)
    keep = ~missing
    truth.add("missing", missing, key, ts, run_lengths(missing, first))
    truth.add("drift", keep & drift_rows, key, ts, drift_bias)
    truth.add("stuck", keep & stuck, key, ts)
    truth.add("spike", keep & spike, key, ts)

    # clock skew: whole minutes, non-zero, under half an interval
    max_min = max(1, (spec.interval_s // 60 - 1) // 2)
    skewed = _unit_uniform(ukeys, 4) < r["clock_skew"]
    minutes = 1 + np.floor(_unit_uniform(ukeys, 5) * max_min)
    offset_ms = np.where(skewed, np.where(_unit_uniform(ukeys, 6) < 0.5, -1, 1) * minutes * 60_000, 0).astype(np.int64)
    row_offset = np.repeat(offset_ms, counts)
    sk = keep & (row_offset != 0)
    truth.add("clock_skew", sk, key, ts, row_offset / 1000.0)

    # arrival: normal latency 10 s .. 3 min; late ones 1 h .. 2 days more
    latency = 10_000 + _uniform(rkeys, pos, 5) * 170_000
    late = _uniform(rkeys, pos, 6) < r["late"]
    latency = latency + np.where(late, LATE_AFTER_S * 1000 * (1.0 + 47.0 * _uniform(rkeys, pos, 7)), 0.0)
    truth.add("late", keep & late, key, ts, latency / 1000.0)

    # duplicates: re-sent up to 10 minutes later
    dup = keep & (_uniform(rkeys, pos, 8) < r["duplicate"])
    truth.add("duplicate", dup, key, ts)
    idx = np.flatnonzero(keep)
    copies = np.flatnonzero(dup)
    rows = np.sort(np.concatenate([idx, copies]), kind="stable")
    is_copy = np.zeros(rows.size, bool)
    is_copy[1:] = rows[1:] == rows[:-1]
    received = ts - LOCAL_UTC_OFFSET_S * 1000 + latency.astype(np.int64)
    received = received[rows] + np.where(is_copy, (_uniform(rkeys, pos, 9)[rows] * 600_000).astype(np.int64), 0)
    out = {spec.key: key[rows], "ts": ts[rows] + row_offset[rows], "true_ts": ts[rows], "received": received}
    out.update({v: vals[v][rows] for v in spec.values})
    return out, truth


def _taps_defects(tab: pa.Table, profile: DefectProfile, *, seed: int,
                  district_of) -> tuple[dict[str, np.ndarray], DefectTruth]:
    r = profile.rates
    card = tab["card_id"].to_numpy().astype(np.int64)
    station = tab["station_id"].to_numpy().astype(np.int64)
    ts = tab["ts"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    direction = tab["direction"].to_numpy().astype(np.int64)
    keys = unit_keys(seed, "taps", card)
    ctr = ts * 2 + direction
    truth = DefectTruth(district_of(station))
    bad = _uniform(keys, ctr, 0) < r["bad_reference"]
    station = np.where(bad, station + 10_000, station)
    truth.add("bad_reference", bad, card, ts)
    latency = 2_000 + _uniform(keys, ctr, 1) * 118_000
    late = _uniform(keys, ctr, 2) < r["late"]
    latency = latency + np.where(late, LATE_AFTER_S * 1000 * (1.0 + 47.0 * _uniform(keys, ctr, 3)), 0.0)
    truth.add("late", late, card, ts, latency / 1000.0)
    dup = _uniform(keys, ctr, 4) < r["duplicate"]
    truth.add("duplicate", dup, card, ts)
    rows = np.sort(np.concatenate([np.arange(card.size), np.flatnonzero(dup)]), kind="stable")
    is_copy = np.zeros(rows.size, bool)
    is_copy[1:] = rows[1:] == rows[:-1]
    received = ts - LOCAL_UTC_OFFSET_S * 1000 + latency.astype(np.int64)
    received = received[rows] + np.where(is_copy, (_uniform(keys, ctr, 5)[rows] * 600_000).astype(np.int64), 0)
    return {"card_id": card[rows], "station_id": station[rows], "true_station": tab["station_id"].to_numpy()[rows],
            "ts": ts[rows], "true_ts": ts[rows], "direction": direction[rows], "received": received}, truth


def inject(tab: pa.Table, table: str, profile: DefectProfile, *, seed: int, start_ms: int, days: int,
           district_of: Callable[[np.ndarray], np.ndarray]) -> tuple[dict[str, np.ndarray], pa.Table]:
    """Defective rows (canonical units and ids, observed timestamps) and the truth table of a chunk.

    Parameters
    ----------
    tab
        Canonical rows of whole units (sensors or sites in time order; a day of taps).
    table
        ``"traffic"``, ``"water"`` or ``"taps"``.
    profile
        Defect rates.
    seed, start_ms, days
        Dataset seed, first instant (ms, local) and length of the period.
    district_of
        Vectorised ``id -> district`` of the sensor or site (for taps: of the station).

    Returns
    -------
    rows, truth
        ``rows`` has the key, ``ts`` (as observed), ``true_ts``, ``received`` (UTC ms) and
        value columns; ``truth`` the defects table of the chunk.
    """
    if table == "taps":
        rows, truth = _taps_defects(tab, profile, seed=seed, district_of=district_of)
    else:
        rows, truth = _series_defects(tab, SPECS[table], profile, seed=seed, start_ms=start_ms, days=days,
                                      district_of=district_of)
    return rows, truth.table(table)
