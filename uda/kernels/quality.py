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


# ------------------------------------------------------------------ profiling any table
# Kernels of ``uda run quality --table`` (:mod:`uda.tablequality`): open-addressing hash sets
# and counters, the timeline of a time column per group, and the per-column scan.

#: Bits of a packed ``(group, step)`` key left for the step: below ``2**(STEP_BITS - 1)`` µs the
#: step in µs, else a flag bit and the step in ms (exact for steps in whole milliseconds).
STEP_BITS = 43
_EMPTY = np.uint64(0)


@njit(inline="always", cache=True)
def _slot(h: np.uint64, mask: np.int64) -> np.int64:
    return np.int64(mix64(h ^ _SALT) & np.uint64(mask))


@njit(cache=True, nogil=True)
def hset_add(table: np.ndarray, used: np.ndarray, keys: np.ndarray, seen: np.ndarray) -> int:
    """Insert uint64 ``keys`` into an open-addressing hash set, in place.

    Parameters
    ----------
    table : uint64 (m,), ``m`` a power of two; used : bool (m,)
        The set. The caller keeps it at most half full (``m >= 2 * (size + len(keys))``).
    keys : uint64 (n,)
        Keys to insert, in order.
    seen : bool (n,)
        Output: whether each key was already in the set (inserted earlier or earlier in ``keys``).

    Returns
    -------
    int
        Number of keys that were new.
    """
    mask = np.int64(table.shape[0] - 1)
    new = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        s = _slot(k, mask)
        while used[s] and table[s] != k:
            s = (s + 1) & mask
        if used[s]:
            seen[i] = True
        else:
            used[s] = True
            table[s] = k
            seen[i] = False
            new += 1
    return new


@njit(cache=True, nogil=True)
def hmap_add(table: np.ndarray, used: np.ndarray, counts: np.ndarray, keys: np.ndarray, mask_in: np.ndarray,
             add: np.ndarray) -> int:
    """Add ``add[i]`` to the counter of ``keys[i]`` (where ``mask_in[i]``) in an open-addressing map.

    ``table``/``used`` as :func:`hset_add`; ``counts`` int64 (m,). Returns the number of new keys.
    """
    mask = np.int64(table.shape[0] - 1)
    new = 0
    pend_k = np.uint64(0)
    pend_n = np.int64(0)
    have = False
    for i in range(keys.shape[0] + 1):
        last = i == keys.shape[0]
        if not last:
            if not mask_in[i]:
                continue
            if have and keys[i] == pend_k:  # runs of one key (rows in order) cost one probe
                pend_n += add[i]
                continue
        if have:
            s = _slot(pend_k, mask)
            while used[s] and table[s] != pend_k:
                s = (s + 1) & mask
            if not used[s]:
                used[s] = True
                table[s] = pend_k
                new += 1
            counts[s] += pend_n
        if not last:
            pend_k = keys[i]
            pend_n = add[i]
            have = True
    return new


@njit(cache=True, nogil=True)
def timeline_block(g, t, ok, rowhash, last_t, first_hash, n_ok, t_min, t_max, out_of_order, dups, max_step,
                   step_keys, pairs):
    """The time column of one block, in file order, per group; state updated in place.

    Parameters
    ----------
    g : int64 (n,)
        Group code of each row (0 without groups).
    t : int64 (n,)
        Time in µs; ``ok`` : bool (n,) whether it parsed.
    rowhash : uint64 (n,)
        Hash of the whole row (exact duplicate rows).
    last_t, first_hash, n_ok, t_min, t_max, out_of_order, dups, max_step : (G,)
        Per group: previous parsed time, hash of the first row at that time, parsed rows, first
        and last time, rows earlier than the previous row, rows at the previous row's time,
        longest positive step.
    step_keys : int64 (n,)
        Output: the packed ``(group, step)`` (see :data:`STEP_BITS`) of each row with a positive step, else -1.
    pairs : uint64 (2n,)
        Output: for each row at its group's previous time, the hashes of (group, time, first
        row) and (group, time, this row), to find exact duplicate rows among them.

    Returns
    -------
    int
        Number of pairs written.
    """
    cap = np.int64(1 << (STEP_BITS - 1))
    n_pairs = 0
    for i in range(g.shape[0]):
        step_keys[i] = -1
        if not ok[i]:
            continue
        gi = g[i]
        ti = t[i]
        if n_ok[gi] == 0:
            t_min[gi] = ti
            t_max[gi] = ti
            first_hash[gi] = rowhash[i]
        else:
            d = ti - last_t[gi]
            if d < 0:
                out_of_order[gi] += 1
                first_hash[gi] = rowhash[i]
            elif d == 0:
                dups[gi] += 1
                base = mix64(np.uint64(gi) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(ti))
                pairs[2 * n_pairs] = mix64(base ^ first_hash[gi])
                pairs[2 * n_pairs + 1] = mix64(base ^ rowhash[i])
                n_pairs += 1
            else:
                step_keys[i] = (gi << STEP_BITS) | (d if d < cap else cap | min(d // 1000, cap - 1))
                if d > max_step[gi]:
                    max_step[gi] = d
                first_hash[gi] = rowhash[i]
            if ti < t_min[gi]:
                t_min[gi] = ti
            if ti > t_max[gi]:
                t_max[gi] = ti
        last_t[gi] = ti
        n_ok[gi] += 1
    return n_pairs


@njit(cache=True, nogil=True)
def column_block(v, g, lo, hi, cands, stuck_min, ignore_zero, nulls, cand_counts, invalid, stuck_rows,
                 stuck_runs, last_v, run_len, null_run, null_run_max, ext, qs, registers, hit):
    """One numeric column of one block, in file order, per group; state updated in place.

    Parameters
    ----------
    v : float64 (n,)
        Values, NaN where null.
    g : int64 (n,)
        Group code of each row.
    lo, hi : float
        Valid range (inclusive); values outside count as invalid.
    cands : float64 (C,)
        Sentinel candidates (declared and the usual -1, -999, 9999, ...); their hits are counted
        per candidate and kept out of the range check, the extremes, the stuck check and the
        quantile sketch (the caller adds back those that turn out not to be sentinels).
    stuck_min : int
        Identical consecutive values (the first included) that make a stuck run.
    ignore_zero : bool
        Runs of zeros are not stuck (idle counts).
    nulls, invalid, stuck_rows, stuck_runs, null_run, null_run_max : int64 (G,); cand_counts : int64 (G, C)
    last_v : float64 (G,); run_len : int64 (G,)
        Per-group counters and the state of the running stuck and null runs.
    ext : float64 (2,)
        Smallest and largest value that is not a candidate.
    qs : int64 (2 * QS_BUCKETS,); registers : uint8 (m,)
        Quantile sketch and HyperLogLog registers of the column (whole table).
    hit : int8 (n,)
        Output: 0, 1 for a null, 2 + c for candidate ``c``.
    """
    tmp = np.empty(1, np.float32)
    bits = tmp.view(np.uint32)
    f64 = np.empty(1, np.float64)
    u64 = f64.view(np.uint64)
    s64 = np.empty(1, np.float64)
    su64 = s64.view(np.uint64)
    m = registers.shape[0]
    p = 0
    while (1 << p) < m:
        p += 1
    n_c = cands.shape[0]
    for i in range(v.shape[0]):
        gi = g[i]
        x = v[i]
        if np.isnan(x):
            nulls[gi] += 1
            null_run[gi] += 1
            if null_run[gi] > null_run_max[gi]:
                null_run_max[gi] = null_run[gi]
            run_len[gi] = 0
            last_v[gi] = np.nan
            hit[i] = 1
            continue
        null_run[gi] = 0
        if not (x == last_v[gi]):  # a repeat adds nothing to the distinct count
            f64[0] = x + 0.0  # -0.0 -> 0.0
            _hll_1d(registers, u64[0], p, s64, su64)
        c_hit = -1
        if x == np.floor(x):  # candidates are whole numbers
            for c in range(n_c):
                if x == cands[c]:
                    c_hit = c
                    break
        if c_hit >= 0:
            cand_counts[gi, c_hit] += 1
            hit[i] = 2 + c_hit
            run_len[gi] = 0
            last_v[gi] = np.nan
            continue
        hit[i] = 0
        if x < ext[0]:
            ext[0] = x
        if x > ext[1]:
            ext[1] = x
        if x < lo or x > hi:
            invalid[gi] += 1
        qs[qs_bucket(x, tmp, bits)] += 1
        if x == last_v[gi] and not (ignore_zero and x == 0.0):
            run_len[gi] += 1
            if run_len[gi] == stuck_min - 1:
                stuck_rows[gi] += run_len[gi]
                stuck_runs[gi] += 1
            elif run_len[gi] > stuck_min - 1:
                stuck_rows[gi] += 1
        else:
            run_len[gi] = 0
        last_v[gi] = x


@njit(inline="always", cache=True)
def _hll_1d(registers: np.ndarray, key: np.uint64, p: int, f64: np.ndarray, u64: np.ndarray) -> None:
    """HyperLogLog update: index from the top ``p`` bits of the hash, rank from the other ``64 - p``
    bits (1 + their leading zeros), read off the exponent of their float64 value (exact below
    2**53) instead of a bit loop. ``f64``/``u64`` are a one-element scratch array and its view."""
    h = mix64(key ^ _SALT)
    idx = np.int64(h >> np.uint64(64 - p))
    low = h & ((np.uint64(1) << np.uint64(64 - p)) - np.uint64(1))
    if low == np.uint64(0):
        rank = 64 - p + 1
    else:
        f64[0] = np.float64(low)
        bitlen = np.int64((u64[0] >> np.uint64(52)) & np.uint64(0x7FF)) - 1022
        rank = 64 - p - bitlen + 1
    if rank > registers[idx]:
        registers[idx] = rank
