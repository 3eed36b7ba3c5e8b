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

import math

import numpy as np
from numba import njit

from uda.kernels.rng import mix64

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


@njit(cache=True, nogil=True)
def _qs_bucket(x: float, nb: int, lg: float, off: float, min_abs: float, max_abs: float) -> int:
    a = abs(x)
    if a < min_abs * 0.5:
        return 0
    if a < min_abs:
        a = min_abs
    elif a > max_abs:
        a = max_abs
    b = int(math.ceil(math.log(a) / lg - off))
    if b < 0:
        b = 0
    elif b >= nb:
        b = nb - 1
    return 1 + b if x > 0 else 1 + nb + b


@njit(cache=True, nogil=True)
def scan_block(key, ts, syntax_ok, values, lo, hi, district, ref_ok, latency, order, interval_ms,
               period_lo, period_hi, late_ms, stuck_min, zero_col, counts, nonnull, registers, qs_values,
               qs_latency, alpha, min_abs, max_abs):
    """Add one block's records to the quality state, in place.

    Parameters
    ----------
    key, ts : int64 (n,)
        Series key (sensor, site, card) and local timestamp (ms).
    syntax_ok : bool (n,)
        Key and timestamp parsed.
    values : float64 (n, k)
        Measured values in canonical units (NaN = missing).
    lo, hi : float64 (k,)
        Valid range per column.
    district : int64 (n,)
        District index 0..D-1 of each row (the caller maps unknown districts to D-1).
    ref_ok : bool (n,)
        The referenced id resolves against the city tables.
    latency : float64 (n,)
        Arrival latency in ms (NaN when not known).
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
    qs_values : int64 (k, B); qs_latency : int64 (B,)
        State, updated in place.
    alpha, min_abs, max_abs : float
        Quantile-sketch parameters (as :mod:`uda.kernels.sketches`).
    """
    n = key.shape[0]
    k = values.shape[1]
    m = registers.shape[1]
    p = 0
    while (1 << p) < m:
        p += 1
    nb = (qs_values.shape[1] - 1) // 2
    lg = math.log((1.0 + alpha) / (1.0 - alpha))
    off = math.log(min_abs) / lg
    use_order = order.shape[0] == n and n > 0
    prev_key = np.int64(-(2**62))
    prev_ts = np.int64(-(2**62))
    prev_slot_key = np.int64(-(2**62))
    prev_slot = np.int64(-(2**62))
    run = 0
    last = -1  # previous live row for the stuck check
    for j in range(n):
        i = order[j] if use_order else j
        d = district[i]
        counts[d, ROWS] += 1
        if not syntax_ok[i]:
            continue
        counts[d, SYNTAX_OK] += 1
        kk = key[i]
        t = ts[i]
        _hll_add_one(registers, d, kk, p)
        dup = kk == prev_key and t == prev_ts
        if dup:
            counts[d, DUPLICATE] += 1
        prev_key = kk
        prev_ts = t
        complete = True
        in_range = True
        for c in range(k):
            x = values[i, c]
            if np.isnan(x):
                complete = False
            else:
                nonnull[d, c] += 1
                if x < lo[c] or x > hi[c]:
                    in_range = False
                if not dup:
                    qs_values[c, _qs_bucket(x, nb, lg, off, min_abs, max_abs)] += 1
        if complete:
            counts[d, COMPLETE] += 1
        if in_range:
            counts[d, IN_RANGE] += 1
        if ref_ok[i]:
            counts[d, REF_OK] += 1
        inside = t >= period_lo and t < period_hi
        if inside:
            counts[d, IN_PERIOD] += 1
        lat = latency[i]
        if not np.isnan(lat):
            counts[d, WITH_LATENCY] += 1
            if lat > late_ms:
                counts[d, LATE] += 1
            if not dup:
                qs_latency[_qs_bucket(lat, nb, lg, off, min_abs, max_abs)] += 1
        if interval_ms > 0:
            if t % interval_ms == 0:
                counts[d, ON_GRID] += 1
            slot = (t + interval_ms // 2) // interval_ms
            if inside and ref_ok[i] and not (kk == prev_slot_key and slot == prev_slot):
                counts[d, SLOTS] += 1
                prev_slot_key = kk
                prev_slot = slot
            # stuck readings: identical to the previous live reading of the same key
            if not dup and in_range and k > 0:
                same = last >= 0 and key[last] == kk
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
                        counts[d, STUCK] += run
                    elif run > stuck_min - 1:
                        counts[d, STUCK] += 1
                else:
                    run = 0
                last = i
        else:
            counts[d, ON_GRID] += 1
