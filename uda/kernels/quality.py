"""Single-pass data-quality scan of one block of sensor records (Numba), with mergeable state.

One call reads a block's value columns once each (range, missing values, sketches: a column
at a time) and its rows once, in ``(key, ts)`` order (gathered into that order first when they
are not stored so), and adds to per-district
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
from numba.cpython.unsafe.numbers import leading_zeros

from uda.kernels.rng import mix64
from uda.kernels.sketches import qs_bucket, qs_bucket_of

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
    rank = min(np.int64(leading_zeros(h << np.uint64(p))) + 1, 64 - p + 1)  # 1 + leading zeros of the rest
    if rank > registers[d, idx]:
        registers[d, idx] = rank


# Rare paths of the row loop of :func:`scan_block`, as functions: a loop over the columns written
# in the loop body made every row about 2 ns slower (1.5 ns of 13), even where it never ran.


@njit(cache=True, nogil=True)
def _nulls(values, i, nulls):
    """Count row ``i``'s missing values per column."""
    for c in range(values.shape[1]):
        if np.isnan(values[i, c]):
            nulls[c] += 1


@njit(cache=True, nogil=True)
def _unsketch(values, i, qs_values):
    """Take row ``i``'s present values out of the column sketches."""
    for c in range(values.shape[1]):
        x = values[i, c]
        if not np.isnan(x):
            qs_values[c, qs_bucket_of(x)] -= 1


@njit(cache=True, nogil=True)
def _flush_nonnull(nonnull, d, ok, nulls):
    """Add a district's present values per column (parsed rows less missing values) and reset ``nulls``."""
    for c in range(nulls.shape[0]):
        nonnull[d, c] += ok - nulls[c]
        nulls[c] = 0


@njit(cache=True, nogil=True)
def _same(values, i, last):
    """Whether rows ``i`` and ``last`` hold the same values (NaN never equal)."""
    for c in range(values.shape[1]):
        if not (values[i, c] == values[last, c]):
            return False
    return True


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
    if order.shape[0] == n and n > 0:  # rows gathered into (key, ts) order: the scan reads them in storage order
        _scan_ordered(key[order], ts[order], syntax_ok[order] if syntax_ok.shape[0] == n else syntax_ok,
                      values[order], lo, hi, ref[order], lookup,
                      district[order] if district.shape[0] == n else district,
                      latency[order] if latency.shape[0] == n else latency, interval_ms, period_lo, period_hi,
                      late_ms, stuck_min, zero_col, counts, nonnull, registers, qs_values, qs_latency)
    else:
        _scan_ordered(key, ts, syntax_ok, values, lo, hi, ref, lookup, district, latency, interval_ms, period_lo,
                      period_hi, late_ms, stuck_min, zero_col, counts, nonnull, registers, qs_values, qs_latency)


@njit(cache=True, nogil=True)
def _scan_ordered(key, ts, syntax_ok, values, lo, hi, ref, lookup, district, latency, interval_ms, period_lo,
                  period_hi, late_ms, stuck_min, zero_col, counts, nonnull, registers, qs_values, qs_latency):
    """:func:`scan_block` of rows stored in ``(key, ts)`` order."""
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
    # Column passes, in storage order (a column at a time: no loop over the columns per row).
    # Per row: bit 0 a missing value, bit 1 a value out of range, bit 2 a value differing from
    # the row stored before it. Every parsed, present value goes into its column's sketch;
    # the row pass takes duplicates out again (rare), so the sketch counts the same values.
    flags = np.zeros(n, np.uint8)
    for c in range(k):
        lo_c = lo[c]
        hi_c = hi[c]
        prev = values[0, c] if n > 0 else values.dtype.type(0)
        for i in range(n):
            x = values[i, c]
            flags[i] |= (np.uint8(np.isnan(x)) | (np.uint8((x < lo_c) | (x > hi_c)) << np.uint8(1))
                         | (np.uint8(x != prev) << np.uint8(2)))
            prev = x
        qs_c = qs_values[c]
        for i in range(n):
            x = values[i, c]
            if not np.isnan(x) and (all_ok or syntax_ok[i]):
                qs_c[qs_bucket_of(x)] += 1
    nulls = np.zeros(k, np.int64)  # missing values per column in the current district
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
    # counters of the current district (scalars: kept in registers), added to its row on change
    a_rows = 0
    a_ok = 0
    a_complete = 0
    a_range = 0
    a_dup = 0
    a_grid = 0
    a_ref = 0
    a_period = 0
    a_late = 0
    a_stuck = 0
    a_slots = 0
    a_lat = 0
    for i in range(n + 1):  # i == n: a last district change that flushes the counters
        rd = -1
        d = -2
        if i < n:
            r = np.int64(ref[i])
            rd = lookup[r] if 0 <= r < n_lookup else -1
            d = np.int64(district[i]) if own_district else rd
            if d < 0 or d >= unknown:
                d = unknown
        if d != cur_d:
            if cur_d >= 0:
                counts[cur_d, ROWS] += a_rows
                counts[cur_d, SYNTAX_OK] += a_ok
                counts[cur_d, COMPLETE] += a_complete
                counts[cur_d, IN_RANGE] += a_range
                counts[cur_d, DUPLICATE] += a_dup
                counts[cur_d, ON_GRID] += a_grid
                counts[cur_d, REF_OK] += a_ref
                counts[cur_d, IN_PERIOD] += a_period
                counts[cur_d, LATE] += a_late
                counts[cur_d, STUCK] += a_stuck
                counts[cur_d, SLOTS] += a_slots
                counts[cur_d, WITH_LATENCY] += a_lat
                _flush_nonnull(nonnull, cur_d, a_ok, nulls)
                a_rows = 0
                a_ok = 0
                a_complete = 0
                a_range = 0
                a_dup = 0
                a_grid = 0
                a_ref = 0
                a_period = 0
                a_late = 0
                a_stuck = 0
                a_slots = 0
                a_lat = 0
            if d == -2:
                break
            cur_d = d
        a_rows += 1
        if not all_ok and not syntax_ok[i]:
            continue
        a_ok += 1
        kk = np.int64(key[i])
        t = np.int64(ts[i])
        if kk != prev_key or d != hll_d:  # rows come in key order: add each key once per run
            _hll_add_one(registers, d, kk, p)
            hll_d = d
        dup = kk == prev_key and t == prev_ts
        prev_key = kk
        prev_ts = t
        f = flags[i]
        complete = (f & 1) == 0
        in_range = (f & 2) == 0
        if not complete:
            _nulls(values, i, nulls)
        if dup:  # added by the column pass: a duplicate's values are not sketched
            _unsketch(values, i, qs_values)
        a_dup += dup
        a_complete += complete
        a_range += in_range
        ref_ok = rd >= 0
        a_ref += ref_ok
        inside = t >= period_lo and t < period_hi
        a_period += inside
        if has_latency:
            lat = latency[i]
            if not np.isnan(lat):
                a_lat += 1
                a_late += lat > late_ms
                if not dup:
                    qs_latency[qs_bucket_of(lat)] += 1
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
            a_grid += g_on
            if inside and ref_ok and not (kk == prev_slot_key and slot == prev_slot):
                a_slots += 1
                prev_slot_key = kk
                prev_slot = slot
            # stuck readings: identical to the previous live reading of the same key
            if not dup and in_range and k > 0:
                same = last >= 0 and key[last] == key[i]
                if same and last == i - 1:  # the row stored just before: the column pass compared them
                    same = (f & 4) == 0
                elif same:
                    same = _same(values, i, last)
                if same and zero_col >= 0 and values[i, zero_col] == 0.0:
                    same = False
                if same:
                    run += 1
                    if run == stuck_min - 1:
                        a_stuck += run
                    elif run > stuck_min - 1:
                        a_stuck += 1
                else:
                    run = 0
                last = i
        else:
            a_grid += 1


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


#: A filter in front of the HyperLogLog updates of :func:`column_block` and :func:`timeline_runs`:
#: a direct-mapped table of ``2**SEEN_BITS`` keys, the last key added per slot (Fibonacci hashing,
#: one multiply; see :func:`seen_new`). A key found there is already in the registers (a register
#: keeps a maximum), so skipping it leaves them identical. Sensor readings repeat a few thousand
#: values and times repeat across groups, so most rows skip the hash: the column kernel is about a
#: fifth faster on medium traffic, about a tenth slower on values that never repeat. (Written out
#: in each kernel: a helper inlined by Numba made the loops a third slower.)
SEEN_BITS = 12
#: The same for the times of :func:`timeline_runs`: a group's times must fit (8640 a month at 5 minutes).
TIME_SEEN_BITS = 15
_FIB = np.uint64(0x9E3779B97F4A7C15)
#: 2**52: adding it to a non-negative double below it rounds to a whole number (a whole-number
#: test without the call to floor, which cost 1.4 ns per value in :func:`column_block`).
_TWO52 = 4503599627370496.0


@njit(cache=True)
def seen_new(bits: int) -> np.ndarray:
    """An empty filter of ``2**bits`` slots: every slot holds a key that does not map to it, so no key
    is found before it was added (all ones, and in the slot of all ones a key of another slot)."""
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    filt = np.full(1 << bits, ones)
    own = np.int64((ones * _FIB) >> np.uint64(64 - bits))
    filt[own] = np.uint64(0) if own != 0 else np.uint64(1)  # 0 maps to slot 0, 1 to slot FIB >> (64 - bits) > 0
    return filt


@njit(cache=True, nogil=True)
def column_block(v, g, lo, hi, cands, stuck_min, ignore_zero, nulls, cand_counts, invalid, stuck_rows,
                 stuck_runs, last_v, run_len, null_run, null_run_max, ext, qs, registers, hit):
    """One numeric column of one block, in file order, per group; state updated in place.

    Parameters
    ----------
    v : float64 or float32 (n,)
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

    Returns
    -------
    int
        Rows that hit something (a null or a candidate).
    """
    tmp = np.empty(1, np.float32)
    bits = tmp.view(np.uint32)
    f64 = np.empty(1, np.float64)
    u64 = f64.view(np.uint64)
    m = registers.shape[0]
    p = 0
    while (1 << p) < m:
        p += 1
    filt = seen_new(SEEN_BITS)
    stuck_at = max(stuck_min - 1, 1)  # repeats from which a run counts (one at least, as without stuck_min)
    n_c = cands.shape[0]
    pos_min, neg_max = np.inf, -np.inf  # no candidate in (neg_max, pos_min): most values skip the candidate loop
    any_frac = False  # a declared candidate that is not a whole number (e.g. -99.5)
    for c in range(n_c):
        if cands[c] >= 0 and cands[c] < pos_min:
            pos_min = cands[c]
        if cands[c] < 0 and cands[c] > neg_max:
            neg_max = cands[c]
        ac = abs(cands[c])
        if ac < _TWO52 and (ac + _TWO52) - _TWO52 != ac:
            any_frac = True
    # the state of the current group lives in locals (rows come grouped), written back on a change
    cur = np.int64(-1)
    n_hit = np.int64(0)
    k_nulls = k_null_run = k_null_max = k_run = k_invalid = k_stuck = k_runs = np.int64(0)
    k_last = np.nan
    e_lo, e_hi = ext[0], ext[1]
    for i in range(v.shape[0]):
        gi = g[i]
        if gi != cur:
            if cur >= 0:
                nulls[cur], null_run[cur], null_run_max[cur], run_len[cur] = k_nulls, k_null_run, k_null_max, k_run
                invalid[cur], stuck_rows[cur], stuck_runs[cur], last_v[cur] = k_invalid, k_stuck, k_runs, k_last
            cur = gi
            k_nulls, k_null_run, k_null_max, k_run = nulls[gi], null_run[gi], null_run_max[gi], run_len[gi]
            k_invalid, k_stuck, k_runs, k_last = invalid[gi], stuck_rows[gi], stuck_runs[gi], last_v[gi]
        x = v[i]
        if np.isnan(x):
            k_nulls += 1
            k_null_run += 1
            if k_null_run > k_null_max:
                k_null_max = k_null_run
            k_run = 0
            k_last = np.nan
            hit[i] = 1
            n_hit += 1
            continue
        k_null_run = 0
        f64[0] = x + 0.0  # -0.0 -> 0.0
        u = u64[0]
        fs = np.int64((u * _FIB) >> np.uint64(64 - SEEN_BITS))
        if filt[fs] != u:  # a value seen lately adds nothing to the distinct count
            filt[fs] = u
            _hll_1d(registers, u, p)
        if not (neg_max < x < pos_min):  # rare: maybe a candidate
            c_hit = -1
            a = abs(x)
            # with whole candidates only, a fractional value cannot be one (skip the loop)
            if any_frac or a >= _TWO52 or (a + _TWO52) - _TWO52 == a:
                for c in range(n_c):
                    if x == cands[c]:
                        c_hit = c
                        break
            if c_hit >= 0:
                cand_counts[gi, c_hit] += 1
                hit[i] = 2 + c_hit
                n_hit += 1
                k_run = 0
                k_last = np.nan
                continue
        hit[i] = 0
        if x < e_lo:
            e_lo = x
        if x > e_hi:
            e_hi = x
        if x < lo or x > hi:
            k_invalid += 1
        qs[qs_bucket(x, tmp, bits)] += 1
        same = x == k_last and not (ignore_zero and x == 0.0)
        k_run = k_run + 1 if same else np.int64(0)
        if k_run >= stuck_at:  # rare: a run long enough to be stuck
            if k_run == stuck_min - 1:
                k_stuck += k_run
                k_runs += 1
            else:
                k_stuck += 1
        k_last = x
    if cur >= 0:
        nulls[cur], null_run[cur], null_run_max[cur], run_len[cur] = k_nulls, k_null_run, k_null_max, k_run
        invalid[cur], stuck_rows[cur], stuck_runs[cur], last_v[cur] = k_invalid, k_stuck, k_runs, k_last
    ext[0], ext[1] = e_lo, e_hi
    return n_hit


@njit(inline="always", cache=True)
def _hll_1d(registers: np.ndarray, key: np.uint64, p: int) -> None:
    """HyperLogLog update: index from the top ``p`` bits of the hash, rank from the other ``64 - p``
    bits (1 + their leading zeros, one count-leading-zeros instruction)."""
    h = mix64(key ^ _SALT)
    idx = np.int64(h >> np.uint64(64 - p))
    rank = min(np.int64(leading_zeros(h << np.uint64(p))) + 1, 64 - p + 1)
    if rank > registers[idx]:
        registers[idx] = rank


@njit(cache=True, nogil=True)
def hll_keys(registers: np.ndarray, keys: np.ndarray) -> None:
    """Add integer ``keys`` to HyperLogLog ``registers`` in place: the same registers as
    :func:`uda.kernels.sketches.hll_add`, with a count-leading-zeros instead of a bit loop."""
    m = registers.shape[0]
    p = 0
    while (1 << p) < m:
        p += 1
    for i in range(keys.shape[0]):
        _hll_1d(registers, np.uint64(np.int64(keys[i])), p)


@njit(cache=True, nogil=True)
def code_block(vals, valid, table, used, codes, n_known, start, out, new_vals):
    """Dense codes of integer values (a group column) from an open-addressing map value -> code, in place.

    Parameters
    ----------
    vals : int (n,)
        Values (any integer dtype up to int64).
    valid : bool (n,) or (0,)
        Where the value is not null (empty: all are); null rows get code -1.
    table : int64 (m,), ``m`` a power of two; used : bool (m,); codes : int64 (m,)
        The map. Filled at most half: the kernel stops before passing that load.
    n_known : int
        Codes given so far; a new value gets the next code, in order of first appearance.
    start : int
        First row to code (to resume after the caller grew the map).
    out : int64 (n,)
        Output: the code of each row.
    new_vals : int64 (n,)
        Output: the new values, in the order their codes were given.

    Returns
    -------
    (int, int)
        Number of new values, and the row where coding stopped (``n`` when done; less when the
        map reached half full: grow it and call again from there).
    """
    n = vals.shape[0]
    mask = np.int64(table.shape[0] - 1)
    limit = table.shape[0] // 2
    all_valid = valid.shape[0] != n
    n_new = 0
    have = False
    prev_v = np.int64(0)
    prev_c = np.int64(-1)
    for i in range(start, n):
        if not all_valid and not valid[i]:
            out[i] = -1
            continue
        v = np.int64(vals[i])
        if have and v == prev_v:  # runs of one group cost one comparison
            out[i] = prev_c
            continue
        s = _slot(np.uint64(v), mask)
        while used[s] and table[s] != v:
            s = (s + 1) & mask
        if not used[s]:
            if n_known + n_new + 1 > limit:
                return n_new, i
            used[s] = True
            table[s] = v
            codes[s] = n_known + n_new
            new_vals[n_new] = v
            n_new += 1
        prev_v = v
        prev_c = codes[s]
        have = True
        out[i] = prev_c
    return n_new, n


@njit(cache=True, nogil=True)
def timeline_runs(g, t, t_mult, ok, rows, registers, last_t, first_hash, first_idx, n_ok, t_min, t_max,
                  out_of_order, dups, max_step, hour_base, bin_col, step_keys, step_counts, bin_keys, bin_counts,
                  pair_first, pair_hash, pair_row, pair_base):
    """The time column of one block, in file order, per group, without row hashes; state updated in place.

    The same timeline as :func:`timeline_block`, but the whole-row hashes are only needed for the
    few rows at a repeated time, so this kernel names rows instead of hashing them: the caller
    hashes those rows and forms the pairs with :func:`dup_pairs`. Steps and the rows per hour
    come out run-length encoded (rows arrive grouped, so there are few runs).

    Parameters
    ----------
    g, t, ok
        As :func:`timeline_block`, but the time ``t * t_mult`` µs (``t_mult`` 1000 reads milliseconds
        without a converted copy).
    rows : int64 (G,)
        Rows per group (parsed or not), updated in place.
    registers : uint8 (m,)
        HyperLogLog of the parsed times in µs (as :func:`hll_keys`), updated in place.
    last_t, first_hash, n_ok, t_min, t_max, out_of_order, dups, max_step : (G,)
        As :func:`timeline_block`; ``first_hash`` is read (the first row at the group's time came
        in an earlier block) but not written: see ``first_idx``.
    first_idx : int64 (G,)
        In: -1. Out: the row of this block that is the first at its group's last time (-1 if
        none): the caller sets ``first_hash`` from its hash.
    hour_base : int
        ``first_time // hour`` of the table: hour bins are keyed relative to it.
    bin_col : int
        Column number written in the row bins' keys (the number of columns).
    step_keys, step_counts : int64 (n,)
        Output: runs of packed ``(group, step)`` keys (:data:`STEP_BITS`) and their lengths.
    bin_keys, bin_counts : int64 (n,)
        Output: runs of ``(group, hour, bin_col)`` keys of parsed rows and their lengths.
    pair_first, pair_row : int64 (n,); pair_hash : uint64 (n,); pair_base : uint64 (n,)
        Output, per row at its group's previous time: the first row at that time (a row of this
        block, or -1 with its hash in ``pair_hash``), this row, and the hash of (group, time).

    Returns
    -------
    (int, int, int)
        Number of step runs, bin runs and pairs written.
    """
    cap = np.int64(1 << (STEP_BITS - 1))
    hour_us = np.int64(3_600_000_000)
    n_steps = 0
    n_bins = 0
    n_pairs = 0
    run_k = np.int64(-1)
    run_n = np.int64(0)
    bin_k = np.int64(-1)
    bin_n = np.int64(0)
    # the state of the current group lives in locals (rows come grouped), written back on a change
    m = registers.shape[0]
    p = 0
    while (1 << p) < m:
        p += 1
    filt = seen_new(TIME_SEEN_BITS)
    h_lo, h_hi = np.int64(1), np.int64(0)  # the last row's hour is [h_lo, h_hi) (empty at first)
    hour = np.int64(0)
    cur = np.int64(-1)
    c_last = c_fidx = c_n = c_min = c_max = c_ooo = c_dups = c_max_step = c_rows = np.int64(0)
    for i in range(g.shape[0]):
        gi = g[i]
        if gi != cur:
            if cur >= 0:
                last_t[cur], first_idx[cur], n_ok[cur], t_min[cur], t_max[cur] = c_last, c_fidx, c_n, c_min, c_max
                out_of_order[cur], dups[cur], max_step[cur], rows[cur] = c_ooo, c_dups, c_max_step, c_rows
            cur = gi
            c_last, c_fidx, c_n, c_min, c_max = last_t[gi], first_idx[gi], n_ok[gi], t_min[gi], t_max[gi]
            c_ooo, c_dups, c_max_step, c_rows = out_of_order[gi], dups[gi], max_step[gi], rows[gi]
        c_rows += 1
        if not ok[i]:
            continue
        ti = np.int64(t[i]) * t_mult
        u = np.uint64(ti)
        fs = np.int64((u * _FIB) >> np.uint64(64 - TIME_SEEN_BITS))
        if filt[fs] != u:  # a time seen lately (in another group) adds nothing to the distinct count
            filt[fs] = u
            _hll_1d(registers, u, p)
        if ti < h_lo or ti >= h_hi:  # rows come in time order: the hour rarely changes
            h_q = ti // hour_us
            hour = min(max(h_q - hour_base + (1 << 22), 0), (1 << 23) - 1)
            h_lo, h_hi = h_q * hour_us, (h_q + 1) * hour_us  # if one wraps around, the interval is empty
        bk = (gi << 43) | (hour << 20) | (bin_col << 5)
        if bk == bin_k:
            bin_n += 1
        else:
            if bin_n:
                bin_keys[n_bins] = bin_k
                bin_counts[n_bins] = bin_n
                n_bins += 1
            bin_k = bk
            bin_n = 1
        if c_n == 0:
            c_min = ti
            c_max = ti
            c_fidx = i
        else:
            d = ti - c_last
            if d < 0:
                c_ooo += 1
                c_fidx = i
            elif d == 0:
                c_dups += 1
                pair_base[n_pairs] = mix64(np.uint64(gi) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(ti))
                pair_first[n_pairs] = c_fidx
                pair_hash[n_pairs] = first_hash[gi]
                pair_row[n_pairs] = i
                n_pairs += 1
            else:
                sk = (gi << STEP_BITS) | (d if d < cap else cap | min(d // 1000, cap - 1))
                if sk == run_k:
                    run_n += 1
                else:
                    if run_n:
                        step_keys[n_steps] = run_k
                        step_counts[n_steps] = run_n
                        n_steps += 1
                    run_k = sk
                    run_n = 1
                if d > c_max_step:
                    c_max_step = d
                c_fidx = i
            if ti < c_min:
                c_min = ti
            if ti > c_max:
                c_max = ti
        c_last = ti
        c_n += 1
    if cur >= 0:
        last_t[cur], first_idx[cur], n_ok[cur], t_min[cur], t_max[cur] = c_last, c_fidx, c_n, c_min, c_max
        out_of_order[cur], dups[cur], max_step[cur], rows[cur] = c_ooo, c_dups, c_max_step, c_rows
    if run_n:
        step_keys[n_steps] = run_k
        step_counts[n_steps] = run_n
        n_steps += 1
    if bin_n:
        bin_keys[n_bins] = bin_k
        bin_counts[n_bins] = bin_n
        n_bins += 1
    return n_steps, n_bins, n_pairs


@njit(cache=True, nogil=True)
def dup_pairs(pair_base, first_hash, row_hash, out):
    """The keys of :func:`timeline_block`'s pairs from :func:`timeline_runs`' output and the row hashes:
    ``out[2k]`` from the first row at the time, ``out[2k + 1]`` from the repeating row."""
    for k in range(pair_base.shape[0]):
        out[2 * k] = mix64(pair_base[k] ^ first_hash[k])
        out[2 * k + 1] = mix64(pair_base[k] ^ row_hash[k])
