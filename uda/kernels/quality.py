"""Single-pass data-quality scan of one block of sensor records (Numba), with mergeable state.

One call reads a block's arrays once, in ``(key, ts)`` order, and adds to per-district
counters (rows, syntax, value completeness, range, duplicates, grid conformity, reference
resolution, period, lateness, stuck readings, distinct intervals received), per-district
HyperLogLog registers of the keys and per-column quantile sketches of the values and of
the arrival latency (:mod:`uda.kernels.sketches`). Counters add, registers take the
maximum and sketches add, so blocks scanned anywhere merge into the single-pass answer,
provided a key's records never span blocks (true for the dataset's files).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from uda.kernels.rng import mix64
from uda.kernels.sketches import qs_bucket

# counter columns
ROWS, SYNTAX_OK, COMPLETE, IN_RANGE, DUPLICATE, ON_GRID, REF_OK, IN_PERIOD, LATE, STUCK, SLOTS, WITH_LATENCY = range(12)
N_COUNTERS = 12
_SALT = np.uint64(0x2545F4914F6CDD1D)


@njit(cache=True, nogil=True)
def is_sorted(key: np.ndarray, ts: np.ndarray) -> bool:
    """Whether rows are in ``(key, ts)`` order."""
    for i in range(1, key.shape[0]):
        if key[i] < key[i - 1] or (key[i] == key[i - 1] and ts[i] < ts[i - 1]):
            return False
    return True


@njit(cache=True, nogil=True)
def _hll_add_one(registers: np.ndarray, d: int, key: np.int64, p: int) -> None:
    h = mix64(np.uint64(key) ^ _SALT)
    idx = np.int64(h >> np.uint64(64 - p))
    w = h << np.uint64(p)
    rank = 1
    top = np.uint64(1) << np.uint64(63)
    while rank <= 64 - p and (w & top) == np.uint64(0):
        w = w << np.uint64(1)
        rank += 1
    if rank > registers[d, idx]:
        registers[d, idx] = rank


@njit(inline="always", cache=True)
def _flush(counts: np.ndarray, nonnull: np.ndarray, d: int, acc: np.ndarray, nn: np.ndarray) -> None:
    for j in range(acc.shape[0]):
        counts[d, j] += acc[j]
        acc[j] = 0
    for c in range(nn.shape[0]):
        nonnull[d, c] += nn[c]
        nn[c] = 0


@njit(cache=True, nogil=True)
def scan_block(key, ts, syntax_ok, values, lo, hi, ref, lookup, district, latency, order, interval_ms,
               period_lo, period_hi, late_ms, stuck_min, zero_col, counts, nonnull, registers, qs_values,
               qs_latency):
    """Add one block's records to the quality state, in place.

    Parameters
    ----------
    key, ts : int (n,)
        Series key (sensor, site, card) and local timestamp (ms).
    syntax_ok : bool (n,) or (0,)
        Key and timestamp parsed (empty: all rows parsed).
    values : float (n, k)
        Measured values in canonical units (NaN = missing).
    lo, hi : float64 (k,)
        Valid range per column.
    ref : int (n,)
        The id that must resolve against a city table (sensor, site or station).
    lookup : int64 (L,)
        ``id -> district`` of that city table, -1 where there is no such id.
    district : int (n,) or (0,)
        District of each row as published (empty: the district of ``ref``). Rows of an unknown
        district count in the last row of the state, index ``D - 1``.
    latency : float64 (n,) or (0,)
        Arrival latency in ms (NaN when not known); empty when the table has no arrival times.
    order : int64 (n,) or (0,)
        Row order by ``(key, ts)``; empty when the rows are already in that order.
    interval_ms : int
        Sampling interval (0 for event tables: no grid, no intervals, no stuck check).
    period_lo, period_hi : int
        The dataset period in local ms.
    late_ms : float
        Latency above which a record is late.
    stuck_min : int
        Identical consecutive readings (including the first) that make a stuck run.
    zero_col : int
        Column whose zero readings never count as stuck (an idle road), or -1.
    counts : int64 (D, N_COUNTERS); nonnull : int64 (D, k); registers : uint8 (D, m)
    qs_values : int64 (k, 2 * QS_BUCKETS); qs_latency : int64 (2 * QS_BUCKETS,)
        State, updated in place (quantile sketches as :mod:`uda.kernels.sketches`).
    """
    n = key.shape[0]
    k = values.shape[1]
    m = registers.shape[1]
    unknown = counts.shape[0] - 1
    n_lookup = lookup.shape[0]
    all_ok = syntax_ok.shape[0] != n
    own_district = district.shape[0] == n
    p = 0
    while (1 << p) < m:
        p += 1
    tmp = np.empty(1, np.float32)
    bits = tmp.view(np.uint32)
    acc = np.zeros(N_COUNTERS, np.int64)  # counters of the current district, flushed on change
    nn = np.zeros(k, np.int64)
    use_order = order.shape[0] == n and n > 0
    has_latency = latency.shape[0] == n
    prev_key = np.int64(-(2**62))
    prev_ts = np.int64(-(2**62))
    prev_slot_key = np.int64(-(2**62))
    prev_slot = np.int64(-(2**62))
    g_key = np.int64(-(2**62))  # grid state of the previous parsed row
    g_t = np.int64(0)
    g_slot = np.int64(0)
    g_on = False
    cur_d = -1
    hll_d = -1
    run = 0
    last = -1  # previous live row for the stuck check
    for j in range(n):
        i = order[j] if use_order else j
        r = np.int64(ref[i])
        rd = lookup[r] if 0 <= r < n_lookup else -1
        d = np.int64(district[i]) if own_district else rd
        if d < 0 or d >= unknown:
            d = unknown
        if d != cur_d:
            if cur_d >= 0:
                _flush(counts, nonnull, cur_d, acc, nn)
            cur_d = d
        acc[ROWS] += 1
        if not all_ok and not syntax_ok[i]:
            continue
        acc[SYNTAX_OK] += 1
        kk = np.int64(key[i])
        t = np.int64(ts[i])
        if kk != prev_key or d != hll_d:  # rows come in key order: add each key once per run
            _hll_add_one(registers, d, kk, p)
            hll_d = d
        dup = kk == prev_key and t == prev_ts
        prev_key = kk
        prev_ts = t
        complete = True
        in_range = True
        for c in range(k):
            x = values[i, c]
            if np.isnan(x):
                complete = False
            else:
                nn[c] += 1
                if x < lo[c] or x > hi[c]:
                    in_range = False
                if not dup:
                    qs_values[c, qs_bucket(x, tmp, bits)] += 1
        acc[DUPLICATE] += dup
        acc[COMPLETE] += complete
        acc[IN_RANGE] += in_range
        ref_ok = rd >= 0
        acc[REF_OK] += ref_ok
        inside = t >= period_lo and t < period_hi
        acc[IN_PERIOD] += inside
        if has_latency:
            lat = latency[i]
            if not np.isnan(lat):
                acc[WITH_LATENCY] += 1
                acc[LATE] += lat > late_ms
                if not dup:
                    qs_latency[qs_bucket(lat, tmp, bits)] += 1
        if interval_ms > 0:
            # the next reading of a key is usually one interval on: skip the two divisions
            if kk == g_key and t - g_t == interval_ms:
                g_slot += 1
            else:
                g_on = t % interval_ms == 0
                g_slot = (t + interval_ms // 2) // interval_ms
            g_key = kk
            g_t = t
            slot = g_slot
            acc[ON_GRID] += g_on
            if inside and ref_ok and not (kk == prev_slot_key and slot == prev_slot):
                acc[SLOTS] += 1
                prev_slot_key = kk
                prev_slot = slot
            # stuck readings: identical to the previous live reading of the same key
            if not dup and in_range and k > 0:
                same = last >= 0 and key[last] == key[i]
                if same:
                    for c in range(k):
                        if not (values[i, c] == values[last, c]):
                            same = False
                            break
                if same and zero_col >= 0 and values[i, zero_col] == 0.0:
                    same = False
                if same:
                    run += 1
                    if run == stuck_min - 1:
                        acc[STUCK] += run
                    elif run > stuck_min - 1:
                        acc[STUCK] += 1
                else:
                    run = 0
                last = i
        else:
            acc[ON_GRID] += 1
    if cur_d >= 0:
        _flush(counts, nonnull, cur_d, acc, nn)
