"""The single-pass quality kernel against a plain NumPy reference; merging blocks equals one pass."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uda.kernels import quality as qk
from uda.kernels.sketches import hll_estimate, qs_quantile
from uda.quality.metrics import ALPHA
from uda.quality.rules import STUCK_MIN
from uda.quality.scan import QualityState, scan_arrays

STEP = 300_000
START = 1_000 * STEP
DAYS_SLOTS = 40
LATE = 3_600_000.0


def _block(rng, n_keys=6, slots=DAYS_SLOTS, *, shuffle=True):
    """Records with duplicates, gaps, NaNs, out-of-range values, stuck runs, off-grid times, bad ids."""
    keys, ts, vals = [], [], []
    for k in range(n_keys):
        for s in range(slots):
            if rng.random() < 0.1:
                continue  # missing interval
            v = [float(rng.integers(0, 5)), float(rng.integers(0, 3))]
            keys.append(k)
            ts.append(START + s * STEP + (60_000 if k == 2 else 0))  # key 2 off grid
            vals.append(v)
            if rng.random() < 0.15:  # stuck run: repeat the reading
                for r in range(int(rng.integers(1, 4))):
                    if s + r + 1 < slots:
                        keys.append(k)
                        ts.append(START + (s + r + 1) * STEP)
                        vals.append(list(v))
            if rng.random() < 0.05:  # duplicate
                keys.append(k)
                ts.append(ts[-1])
                vals.append(list(vals[-1]))
    key = np.array(keys, np.int64)
    ts = np.array(ts, np.int64)
    values = np.array(vals, np.float64)
    values[rng.random(values.shape) < 0.05] = np.nan
    values[rng.random(values.shape[0]) < 0.03, 0] = 99.0  # out of range
    ts[-1] = START - 10 * STEP  # outside the period
    n = key.size
    a = {"key": key, "ts": ts, "ok": rng.random(n) > 0.02, "values": values,
         "ref": np.where(key == 5, 77, key), "latency": np.where(rng.random(n) < 0.2, 5e6, 1e4),
         "district": key % 2}
    if shuffle:
        order = rng.permutation(n)
        a = {k: v[order] for k, v in a.items()}
    return a


def _reference(a, lo, hi):
    """Metrics computed the obvious way, row by row in (key, ts) order."""
    order = np.lexsort((a["ts"], a["key"]))
    out = {d: dict.fromkeys(["rows", "ok", "complete", "in_range", "dup", "grid", "ref", "period", "late",
                             "lat", "slots", "stuck"], 0) for d in (0, 1)}
    seen = set()
    slots = set()
    prev = None
    run = 0
    for i in order:
        d = int(a["district"][i])
        r = out[d]
        r["rows"] += 1
        if not a["ok"][i]:
            continue
        r["ok"] += 1
        k, t, v = int(a["key"][i]), int(a["ts"][i]), a["values"][i]
        dup = (k, t) in seen
        seen.add((k, t))
        r["dup"] += dup
        present = ~np.isnan(v)
        r["complete"] += bool(present.all())
        inr = bool(np.all((v[present] >= lo[present]) & (v[present] <= hi[present])))
        r["in_range"] += inr
        resolves = a["ref"][i] in (0, 1, 2, 3, 4)
        r["ref"] += resolves
        inside = START <= t < START + DAYS_SLOTS * STEP
        r["period"] += inside
        r["lat"] += 1
        r["late"] += a["latency"][i] > LATE
        r["grid"] += t % STEP == 0
        slot = (k, (t + STEP // 2) // STEP)
        if inside and resolves and slot not in slots:
            slots.add(slot)
            r["slots"] += 1
        if not dup and inr:
            same = prev is not None and prev[0] == k and np.array_equal(prev[1], v) and v[0] != 0.0
            run = run + 1 if same else 0
            if run == STUCK_MIN - 1:
                r["stuck"] += run
            elif run > STUCK_MIN - 1:
                r["stuck"] += 1
            prev = (k, v)
    return out


LOOKUP = np.array([0, 1, 0, 1, 0, 1])


def _scan(a, lo, hi, state=None):
    st = state or QualityState(2, 2)
    order = np.zeros(0, np.int64) if qk.is_sorted(a["key"], a["ts"]) else np.lexsort((a["ts"], a["key"]))
    qk.scan_block(a["key"], a["ts"], a["ok"], a["values"], lo, hi, a["ref"], LOOKUP, a["district"].astype(np.int64),
                  a["latency"], order, STEP, START, START + DAYS_SLOTS * STEP, LATE, STUCK_MIN, 0,
                  st.counts, st.nonnull, st.registers, st.qs_values, st.qs_latency)
    return st


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_kernel_matches_reference(seed, shuffle):
    rng = np.random.default_rng(seed)
    a = _block(rng, shuffle=shuffle)
    lo, hi = np.array([0.0, 0.0]), np.array([10.0, 10.0])
    st = _scan(a, lo, hi)
    ref = _reference(a, lo, hi)
    names = {"rows": qk.ROWS, "ok": qk.SYNTAX_OK, "complete": qk.COMPLETE, "in_range": qk.IN_RANGE,
             "dup": qk.DUPLICATE, "grid": qk.ON_GRID, "ref": qk.REF_OK, "period": qk.IN_PERIOD, "late": qk.LATE,
             "lat": qk.WITH_LATENCY, "slots": qk.SLOTS, "stuck": qk.STUCK}
    for d in (0, 1):
        for name, col in names.items():
            assert st.counts[d, col] == ref[d][name], (d, name)
    ok = a["ok"]
    for d in (0, 1):
        sel = ok & (a["district"] == d)
        np.testing.assert_array_equal(st.nonnull[d], (~np.isnan(a["values"][sel])).sum(axis=0))
        assert abs(hll_estimate(st.registers[d]) - np.unique(a["key"][sel]).size) < 0.5


def test_blocks_merge_into_the_single_pass_answer():
    rng = np.random.default_rng(9)
    a = _block(rng, n_keys=6, shuffle=False)
    lo, hi = np.array([0.0, 0.0]), np.array([10.0, 10.0])
    whole = _scan(a, lo, hi)
    merged = QualityState(2, 2)
    for keys in ([0, 1], [2, 3, 4], [5]):  # a key never spans blocks
        sel = np.isin(a["key"], keys)
        merged.merge(_scan({k: v[sel] for k, v in a.items()}, lo, hi))
    for name in ("counts", "nonnull", "registers", "qs_values", "qs_latency"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))


def test_packed_states_merge_like_dense_ones():
    """A packed block state (sparse sketches, covered districts only) merges to the same total."""
    rng = np.random.default_rng(11)
    a = _block(rng, n_keys=6, shuffle=False)
    lo, hi = np.array([0.0, 0.0]), np.array([10.0, 10.0])
    dense, packed = QualityState(2, 2), QualityState(2, 2)
    for keys in ([0, 1], [2, 3, 4], [5]):
        sel = np.isin(a["key"], keys)
        st_ = _scan({k: v[sel] for k, v in a.items()}, lo, hi)
        dense.merge(st_)
        p = st_.pack()
        assert p["qv"].size < st_.qs_values.size and p["registers"].shape[0] <= st_.registers.shape[0]
        packed.merge_packed(p)
    for name in ("counts", "nonnull", "registers", "qs_values", "qs_latency"):
        np.testing.assert_array_equal(getattr(packed, name), getattr(dense, name))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50), st.floats(-5, 15, allow_nan=False)),
                min_size=1, max_size=200))
def test_value_quantiles_and_counts_on_random_records(rows):
    key = np.array([r[0] for r in rows], np.int64)
    ts = START + np.array([r[1] for r in rows], np.int64) * STEP
    v = np.array([[r[2]] for r in rows])
    a = {"key": key, "ts": ts, "ok": np.ones(key.size, bool), "values": v, "ref": key,
         "latency": np.full(key.size, np.nan), "district": np.zeros(key.size, np.int64)}
    st_ = QualityState(1, 1)
    order = np.zeros(0, np.int64) if qk.is_sorted(key, ts) else np.lexsort((ts, key))
    qk.scan_block(key, ts, np.zeros(0, bool), v, np.array([0.0]), np.array([10.0]), key, np.zeros(4, np.int64),
                  np.zeros(0, np.int64), a["latency"], order, STEP, START, START + 60 * STEP, LATE, STUCK_MIN, -1, st_.counts, st_.nonnull,
                  st_.registers, st_.qs_values, st_.qs_latency)
    pairs = {(int(k), int(t)) for k, t in zip(key, ts, strict=True)}
    assert st_.counts[0, qk.DUPLICATE] == key.size - len(pairs)
    assert st_.counts[0, qk.SLOTS] == len(pairs)
    # quantiles are over first occurrences of each (key, ts)
    order = np.lexsort((ts, key))
    first = np.r_[True, (key[order][1:] != key[order][:-1]) | (ts[order][1:] != ts[order][:-1])]
    vals = np.sort(v[order][first, 0])
    got = qs_quantile(st_.qs_values[0], 0.5)[0]
    want = vals[int(np.floor(0.5 * (vals.size - 1)))]
    assert abs(got - want) <= (ALPHA + 1e-7) * abs(want) + 2e-6


def test_scan_arrays_maps_unknown_districts_to_the_extra_bucket():
    a = {"key": np.array([0, 1, 9]), "ts": np.array([START, START, START]), "ok": np.ones(3, bool),
         "values": np.zeros((3, 3)), "ref": np.array([0, 1, 9]), "latency": np.full(3, np.nan), "district": None}
    st_ = scan_arrays(a, "traffic", lookup=np.array([0, 1]), n_districts=2,
                      period=(START, START + DAYS_SLOTS * STEP))
    assert st_.counts[:, qk.ROWS].tolist() == [1, 1, 1]
    assert st_.counts[:, qk.REF_OK].tolist() == [1, 1, 0]
    a["district"] = np.array([1, 7, -1])  # published districts win over the id's; unknown ones pool
    st_ = scan_arrays(a, "traffic", lookup=np.array([0, 1]), n_districts=2,
                      period=(START, START + DAYS_SLOTS * STEP))
    assert st_.counts[:, qk.ROWS].tolist() == [0, 1, 2]


@pytest.mark.parametrize("shuffle", [False, True])
def test_value_and_latency_sketches_hold_each_parsed_record_once(shuffle):
    """The sketches count every present value of the parsed rows, each (key, ts) once (the first
    in order), as qs_add over those values (NaN, duplicates and unparsed rows left out)."""
    from uda.kernels.sketches import qs_add, qs_new

    rng = np.random.default_rng(5)
    a = _block(rng, shuffle=shuffle)
    lo, hi = np.array([0.0, 0.0]), np.array([10.0, 10.0])
    st_ = _scan(a, lo, hi)
    order = np.lexsort((a["ts"], a["key"]))
    ok = a["ok"][order]
    key, ts = a["key"][order][ok], a["ts"][order][ok]
    first = np.r_[True, (key[1:] != key[:-1]) | (ts[1:] != ts[:-1])]
    for c in range(2):
        want = qs_new()
        qs_add(want, a["values"][order][ok][first, c])
        np.testing.assert_array_equal(st_.qs_values[c], want)
    want = qs_new()
    qs_add(want, a["latency"][order][ok][first])
    np.testing.assert_array_equal(st_.qs_latency, want)


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_pieces_cut_at_key_changes_merge_into_the_block_state(parts):
    from uda.quality.scan import split_arrays

    rng = np.random.default_rng(3)
    a = _block(rng, n_keys=6, shuffle=False)
    lo, hi = np.array([0.0, 0.0]), np.array([10.0, 10.0])
    whole = _scan(a, lo, hi)
    pieces = split_arrays(a, parts)
    assert 1 < len(pieces) <= parts and sum(p["key"].size for p in pieces) == a["key"].size
    assert all(p["key"][0] != q["key"][-1] for q, p in zip(pieces[:-1], pieces[1:], strict=True))
    merged = QualityState(2, 2)
    for p in pieces:
        _scan(p, lo, hi, merged)
    for name in ("counts", "nonnull", "registers", "qs_values", "qs_latency"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))


def test_arrays_copied_into_buffers_equal_polars_own():
    """Columns of several chunks copied into reused buffers give the same arrays (twice over, the
    second time into the buffers of the first)."""
    import polars as pl

    from uda.quality.scan import Buffers, arrays_polars

    def frame(seed):
        rng = np.random.default_rng(seed)
        n = 50
        return pl.DataFrame({"sensor_id": np.sort(rng.integers(0, 5, n)).astype(np.int32),
                             "ts": (START + rng.integers(0, 9, n) * STEP).astype("datetime64[ms]"),
                             "flow": rng.random(n).astype(np.float32), "speed": rng.random(n).astype(np.float32),
                             "occupancy": rng.random(n).astype(np.float32)})

    buf = Buffers()
    for seed in (1, 2):
        df = pl.concat([frame(seed), frame(seed + 10)], rechunk=False)
        assert df["flow"].n_chunks() == 2
        want, got = arrays_polars(df, "traffic"), arrays_polars(df, "traffic", buf)
        for name in ("key", "ts", "values", "ref"):
            np.testing.assert_array_equal(got[name], want[name])
            assert got[name].dtype == want[name].dtype
        assert got["values"].flags.f_contiguous
