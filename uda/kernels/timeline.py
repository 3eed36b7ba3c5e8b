"""Numba kernels of the time column of ``uda run quality --table`` (:mod:`uda.quality.table`).

Per group, in file order: parsed rows, first and last time, out-of-order and duplicated times,
the longest step, the steps (packed ``(group, step)`` keys for :class:`uda.quality.table.state.RunCounter`),
rows per hour, and the rows at a repeated time whose whole-row hashes find exact duplicate rows.
:func:`timeline_block` takes the row hashes of every row; :func:`timeline_runs` names the few rows
that need one (the caller hashes them and forms the pairs with :func:`dup_pairs`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from uda.kernels.profile import FIB, seen_new
from uda.kernels.rng import mix64
from uda.kernels.sketches import hll_update

#: Bits of a packed ``(group, step)`` key left for the step: below ``2**(STEP_BITS - 1)`` µs the
#: step in µs, else a flag bit and the step in ms (exact for steps in whole milliseconds).
STEP_BITS = 43
#: Slots of the filter in front of the HyperLogLog of the times (:func:`uda.kernels.profile.seen_new`):
#: a group's times must fit (8640 a month at 5 minutes).
TIME_SEEN_BITS = 15


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
        HyperLogLog of the parsed times in µs (as :func:`uda.kernels.sketches.hll_add`), updated in place.
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
        fs = np.int64((u * FIB) >> np.uint64(64 - TIME_SEEN_BITS))
        if filt[fs] != u:  # a time seen lately (in another group) adds nothing to the distinct count
            filt[fs] = u
            hll_update(registers, u, p)
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
