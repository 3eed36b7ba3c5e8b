"""Numba kernels of ``uda run quality --table`` (:mod:`uda.quality.table`): hash sets and counters,
group codes and the scan of one numeric column.

Open-addressing hash sets and maps of uint64 keys (exact duplicate rows, key duplicates, step and
bin counters), the dense codes of a group column, and :func:`column_block`, which passes one numeric
column of a batch once: nulls, sentinel candidates, range, extremes, stuck runs, the quantile sketch
and distinct values (HyperLogLog, :mod:`uda.kernels.sketches`). The time column's kernels are in
:mod:`uda.kernels.timeline`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from uda.kernels.rng import mix64
from uda.kernels.sketches import HLL_SALT, hll_update, qs_bucket


@njit(inline="always", cache=True)
def _slot(h: np.uint64, mask: np.int64) -> np.int64:
    return np.int64(mix64(h ^ HLL_SALT) & np.uint64(mask))


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


#: A filter in front of the HyperLogLog updates of :func:`column_block` and :func:`timeline_runs`:
#: a direct-mapped table of ``2**SEEN_BITS`` keys, the last key added per slot (Fibonacci hashing,
#: one multiply; see :func:`seen_new`). A key found there is already in the registers (a register
#: keeps a maximum), so skipping it leaves them identical. Sensor readings repeat a few thousand
#: values and times repeat across groups, so most rows skip the hash: the column kernel is about a
#: fifth faster on medium traffic, about a tenth slower on values that never repeat. (Written out
#: in each kernel: a helper inlined by Numba made the loops a third slower.)
SEEN_BITS = 12
#: Fibonacci hashing's multiplier (2**64 / the golden ratio): a filter slot is the top bits of ``key * FIB``.
FIB = np.uint64(0x9E3779B97F4A7C15)
#: 2**52: adding it to a non-negative double below it rounds to a whole number (a whole-number
#: test without the call to floor, which cost 1.4 ns per value in :func:`column_block`).
_TWO52 = 4503599627370496.0


@njit(cache=True)
def seen_new(bits: int) -> np.ndarray:
    """An empty filter of ``2**bits`` slots: every slot holds a key that does not map to it, so no key
    is found before it was added (all ones, and in the slot of all ones a key of another slot)."""
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    filt = np.full(1 << bits, ones)
    own = np.int64((ones * FIB) >> np.uint64(64 - bits))
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
        fs = np.int64((u * FIB) >> np.uint64(64 - SEEN_BITS))
        if filt[fs] != u:  # a value seen lately adds nothing to the distinct count
            filt[fs] = u
            hll_update(registers, u, p)
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
    i = start
    while i < n:
        if not all_valid and not valid[i]:
            out[i] = -1
            i += 1
            continue
        v = np.int64(vals[i])
        if have and v == prev_v:  # a run of one group: found with one comparison a row, then filled at once
            j = i + 1
            if all_valid:
                while j < n and vals[j] == v:
                    j += 1
            else:
                while j < n and valid[j] and vals[j] == v:
                    j += 1
            out[i:j] = prev_c
            i = j
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
        i += 1
    return n_new, n
