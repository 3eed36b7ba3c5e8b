"""``uda run quality --table``: counts against pandas on slices of real tables, schema, funnel, bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.kernels.profile import column_block
from uda.kernels.sketches import hll_add
from uda.kernels.timeline import dup_pairs, timeline_block, timeline_runs
from uda.quality.table.profile import profile_table
from uda.quality.table.schema import infer_schema, load_schema, schema_toml
from uda.quality.table.state import HashCounter, HashSet, IntCodes, RunCounter

DATA = Path(__file__).parent / "data" / "quality"


def _run(*args: str):
    return CliRunner().invoke(cli, ["run", "quality", *args])


def _time_stats(t: np.ndarray) -> dict:
    """pandas-free reference of one group's timeline (sorted differences)."""
    d = np.diff(np.sort(t))
    pos = d[d > 0]
    vals, counts = np.unique(pos, return_counts=True)
    step = vals[np.argmax(counts)]
    return {"duplicates": int((d == 0).sum()), "gaps": int((2 * pos >= 3 * step).sum()), "step_s": step / 1e6}


def test_pedestrian_sentinels_equal_pandas():
    rep, _, _ = profile_table(str(DATA / "pedestrian_slice.parquet"), time_col="time")
    df = pd.read_parquet(DATA / "pedestrian_slice.parquet")
    for c in df.columns[1:]:
        assert rep["columns"][c]["nulls"] == 0
        assert rep["columns"][c]["sentinels"] == int((df[c] == -1).sum()), c
    assert sum(rep["columns"][c]["sentinels"] for c in df.columns[1:]) > 0
    assert rep["time"]["step"] == "1h" and rep["time"]["gaps"] == 0


def test_scats_missing_days_equal_pandas():
    rep, _, _ = profile_table(str(DATA / "scats_slice.parquet"))  # time column found: the one datetime column
    df = pd.read_parquet(DATA / "scats_slice.parquet")
    assert rep["time"]["column"] == "time"
    for c in df.columns[1:]:
        assert rep["columns"][c]["nulls"] == int(df[c].isna().sum())
    worst = max(df.columns[1:], key=lambda c: df[c].isna().sum())
    assert rep["columns"][worst]["longest_null_run"] % 96 == 0 and rep["columns"][worst]["longest_null_run"] >= 96


def test_gecco_nulls_equal_pandas():
    rep, _, _ = profile_table(str(DATA / "gecco_slice.parquet"), time_col="Time", key=["Time"])
    df = pd.read_parquet(DATA / "gecco_slice.parquet")
    assert rep["rows"] == len(df)
    assert {c: rep["columns"][c]["nulls"] for c in df.columns} == {c: int(df[c].isna().sum()) for c in df.columns}
    assert rep["key"]["duplicates"] == int(df.duplicated(["Time"]).sum()) == 0


def test_neon_csv_per_site_equal_pandas():
    rep, _, _ = profile_table(str(DATA / "neon_3sites.csv"), group_col="siteID", key=["siteID", "datetime"])
    df = pd.read_csv(DATA / "neon_3sites.csv", parse_dates=["datetime"])
    assert rep["time"]["column"] == "datetime" and rep["format"] == "csv"
    assert set(rep["groups"]) == {"ARIK", "CARI", "LEWI"}
    total_gaps = 0
    for site, part in df.groupby("siteID"):
        ref = _time_stats(part["datetime"].astype("datetime64[us]").astype("int64").to_numpy())
        got = rep["groups"][site]["time"]
        assert (got["duplicates"], got["gaps"], got["step_s"]) == (ref["duplicates"], ref["gaps"], ref["step_s"])
        assert got["rows"] == len(part)
        total_gaps += ref["gaps"]
    assert rep["time"]["gaps"] == total_gaps > 0
    assert rep["key"]["duplicates"] == int(df.duplicated(["siteID", "datetime"]).sum())


def test_nab_duplicate_timestamp_is_a_finding():
    rep, _, _ = profile_table(str(DATA / "nab_speed_t4013.csv"), time_col="timestamp", key=["timestamp"])
    df = pd.read_csv(DATA / "nab_speed_t4013.csv", parse_dates=["timestamp"])
    assert rep["time"]["duplicates"] == int(df.duplicated(["timestamp"]).sum()) == 1
    assert rep["key"]["duplicates"] == 1 and not rep["key"]["unique"]
    assert rep["duplicate_rows"] == int(df.duplicated().sum()) == 0  # same time, two different values
    assert any("not unique" in f for f in rep["findings"])


def test_out_of_order_rows_and_exact_duplicates(tmp_path):
    df = pl.read_csv(DATA / "nab_speed_t4013.csv")
    shuffled = pl.concat([df, df.slice(10, 5)]).sample(fraction=1.0, shuffle=True, seed=3)
    path = tmp_path / "shuffled.csv"
    shuffled.write_csv(path)
    rep, _, _ = profile_table(str(path), time_col="timestamp", key=["timestamp"], batch_rows=1000)
    pdf = pd.read_csv(path, parse_dates=["timestamp"])
    t = pdf["timestamp"].astype("datetime64[us]").astype("int64").to_numpy()
    ref = _time_stats(t)
    assert rep["time"]["out_of_order"] == int((np.diff(t) < 0).sum()) > 0
    assert rep["time"]["resorted"]
    assert (rep["time"]["duplicates"], rep["time"]["gaps"]) == (ref["duplicates"], ref["gaps"])
    assert rep["duplicate_rows"] == int(pdf.duplicated().sum()) == 5
    assert rep["key"]["duplicates"] == int(pdf.duplicated(["timestamp"]).sum())


def test_unparseable_cells_and_mixed_types(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("ts,value,code\n2020-01-01 00:00:00,1.5,A\n2020-01-01 00:10:00,oops,B\n"
                    "not a time,2.5,3\n2020-01-01 00:30:00,NA,C\n" + "".join(
                        f"2020-01-02 {h:02d}:00:00,{h}.0,A\n" for h in range(20)))
    rep, _, _ = profile_table(str(path), time_col="ts")
    assert rep["columns"]["value"]["type"] == "float"
    assert rep["columns"]["value"]["unparseable"] == 1 and rep["columns"]["value"]["nulls"] == 1
    assert rep["columns"]["ts"]["unparseable"] == 1 and rep["time"]["unparseable"] == 1
    assert rep["columns"]["code"]["mixed_types"] and rep["columns"]["code"]["classes"]["integer"] == 1


def test_semicolons_and_decimal_commas_equal_pandas(tmp_path):
    """A European spreadsheet export: ';' between cells, ',' as the decimal mark."""
    path = tmp_path / "messung.csv"
    path.write_text("Zeit;Messstelle;Wert\n" + "".join(
        f"2024-01-01 {h:02d}:00;{s};{'' if h == 5 else f'{h},5'}\n" for h in range(24) for s in ("a", "b"))
        + "2024-01-02 00:00;a;kaputt\n")
    rep, _, _ = profile_table(str(path), time_col="Zeit")
    ref = pd.read_csv(path, sep=";", decimal=",")
    assert rep["rows"] == len(ref)
    assert rep["columns"]["Wert"]["type"] == "float"
    assert rep["columns"]["Wert"]["nulls"] == int(ref["Wert"].isna().sum())
    assert rep["columns"]["Wert"]["unparseable"] == 1  # "kaputt"


def test_declared_schema_ranges_and_round_trip(tmp_path):
    rep, used, _ = profile_table(str(DATA / "pedestrian_slice.parquet"), time_col="time")
    inferred = infer_schema(rep, used)
    col = next(c for c in rep["columns"] if rep["columns"][c]["sentinels"] and (rep["columns"][c]["max"] or 0) > 100)
    assert inferred.columns[col].sentinels == [-1] and inferred.step_us == 3_600_000_000
    text = schema_toml(inferred)
    (tmp_path / "s.toml").write_text(text)
    back = load_schema(tmp_path / "s.toml")
    assert back.columns[col].sentinels == [-1] and back.step_us == inferred.step_us and back.key == ["time"]
    # a tighter declared range: invalid = values (not sentinels) outside it, as pandas counts them
    (tmp_path / "tight.toml").write_text(f'[table]\ntime_col = "time"\n[columns."{col}"]\ntype = "int"\n'
                                         f"min = 0\nmax = 100\nsentinels = [-1]\n")
    rep2, _, _ = profile_table(str(DATA / "pedestrian_slice.parquet"), schema=tmp_path / "tight.toml")
    s = pd.read_parquet(DATA / "pedestrian_slice.parquet")[col]
    assert rep2["columns"][col]["invalid"] == int(((s > 100) & (s != -1)).sum()) > 0
    assert rep2["columns"][col]["sentinels"] == int((s == -1).sum())


def test_funnel_equal_pandas(tmp_path):
    (tmp_path / "needs.toml").write_text('columns = ["nitrate", "temperature"]\nstep = "15m"\n'
                                         'key = ["siteID", "datetime"]\n[ranges]\nnitrate = [0, 30]\n')
    rep, _, _ = profile_table(str(DATA / "neon_3sites.csv"), group_col="siteID", needs=tmp_path / "needs.toml")
    df = pd.read_csv(DATA / "neon_3sites.csv", parse_dates=["datetime"])
    valid = df["nitrate"].between(0, 30) & df["temperature"].between(-10, 45) & df["temperature"].notna()
    t = df["datetime"].astype("datetime64[us]").astype("int64")
    std = valid & (t % 900_000_000 == 0)
    usable = std & ~df[std].duplicated(["siteID", "datetime"]).reindex(df.index, fill_value=True)
    f = rep["funnel"]
    assert (f["collected"], f["valid"], f["standardised"], f["usable"]) == (
        len(df), int(valid.sum()), int(std.sum()), int(usable.sum()))
    assert f["valid"] < f["collected"]


def test_cli_json_plot_and_write_schema(tmp_path):
    res = _run("--table", str(DATA / "neon_3sites.csv"), "--group-col", "siteID", "--key", "siteID,datetime",
               "--json", "--plot", str(tmp_path / "p.png"), "--write-schema", str(tmp_path / "s.toml"))
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["rows"] == 600 and rep["key"]["duplicates"] == 0
    assert {"nulls", "sentinels", "invalid"} <= set(rep["columns"]["nitrate"])
    assert {"gaps", "duplicates", "out_of_order"} <= set(rep["time"])
    assert (tmp_path / "p.png").stat().st_size > 1000
    res2 = _run("--table", str(DATA / "neon_3sites.csv"), "--schema", str(tmp_path / "s.toml"))
    assert res2.exit_code == 0, res2.output
    assert "complete %" in res2.output and "per siteID" in res2.output  # the written schema keeps the group


def test_fsspec_url():
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/q/nab.csv", (DATA / "nab_speed_t4013.csv").read_bytes())
    rep, _, _ = profile_table("memory://q/nab.csv", time_col="timestamp")
    assert rep["rows"] == 300 and rep["time"]["duplicates"] == 1


@pytest.mark.parametrize("case", ["missing", "garbage", "schema_col", "time"])
def test_bad_input_is_one_line_exit_2(tmp_path, case):
    table = str(DATA / "nab_speed_t4013.csv")
    args = ["--table", table]
    if case == "missing":
        args = ["--table", str(tmp_path / "nope.parquet")]
    elif case == "garbage":
        (tmp_path / "bad.parquet").write_bytes(b"this is not parquet")
        args = ["--table", str(tmp_path / "bad.parquet")]
    elif case == "schema_col":
        (tmp_path / "s.toml").write_text('[columns.speed]\ntype = "float"\n')
        args += ["--schema", str(tmp_path / "s.toml")]
    else:
        args += ["--time-col", "value"]
        (tmp_path / "t.csv").write_text("when,value\nmonday,1\ntuesday,2\n")
        args = ["--table", str(tmp_path / "t.csv"), "--time-col", "when"]
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1, res.output


def test_hash_set_and_counter_against_python():
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 5000, 20000).astype(np.uint64)
    hs = HashSet(capacity=16)
    seen = np.concatenate([hs.add(keys[:7000]), hs.add(keys[7000:])])
    ref, ref_seen = set(), []
    for k in keys.tolist():
        ref_seen.append(k in ref)
        ref.add(k)
    assert seen.tolist() == ref_seen and hs.n == len(ref)
    hc = HashCounter(capacity=8)
    k2 = np.sort(rng.integers(0, 300, 5000)).astype(np.int64)  # runs of one key
    mask = rng.random(5000) < 0.8
    hc.add(k2, mask, np.arange(5000, dtype=np.int64))
    got = dict(zip(*[a.tolist() for a in hc.items()], strict=True))
    want = Counter()
    for k, m, a in zip(k2.tolist(), mask.tolist(), range(5000), strict=True):
        if m:
            want[k] += a
    assert got == dict(want)


def test_timeline_kernel_against_reference():
    rng = np.random.default_rng(2)
    g = rng.integers(0, 3, 400).astype(np.int64)
    t = np.cumsum(rng.choice([0, 60, 60, 60, 120, -30], 400)).astype(np.int64) * 1_000_000
    G = 3
    st = [np.zeros(G, np.int64) for _ in range(7)]
    last = np.full(G, np.iinfo(np.int64).min)
    fh = np.zeros(G, np.uint64)
    keys = np.empty(400, np.int64)
    pairs = np.empty(800, np.uint64)
    timeline_block(g, t, np.ones(400, bool), np.arange(400, dtype=np.uint64), last, fh, st[0], st[1], st[2],
                      st[3], st[4], st[5], keys, pairs)
    n_ok, t_min, t_max, ooo, dups, max_step = st[0], st[1], st[2], st[3], st[4], st[5]
    for gi in range(G):
        tg = t[g == gi]
        d = np.diff(tg)
        assert n_ok[gi] == tg.size and ooo[gi] == (d < 0).sum() and dups[gi] == (d == 0).sum()
        assert t_min[gi] == tg.min() and t_max[gi] == tg.max() and max_step[gi] == d.max()


def test_int_codes_first_appearance_against_python():
    rng = np.random.default_rng(3)
    vals = np.repeat(rng.integers(-(2**40), 2**40, 3000), rng.integers(1, 4, 3000))  # runs, negatives, > 32 bits
    vals = np.concatenate([vals, rng.permutation(vals)]).astype(np.int64)
    valid = rng.random(vals.size) > 0.05
    codes = IntCodes(capacity=16)  # grows several times
    got, fresh = [], []
    for lo in range(0, vals.size, 1000):
        c, f = codes.code(vals[lo:lo + 1000], valid[lo:lo + 1000], len(fresh))
        got.append(c)
        fresh += f
    ref: dict[int, int] = {}
    want = []
    for v, ok in zip(vals.tolist(), valid.tolist(), strict=True):
        if ok and v not in ref:
            ref[v] = len(ref)
        want.append(ref[v] if ok else -1)
    assert np.concatenate(got).tolist() == want and fresh == list(ref)


def test_int_codes_long_runs_all_valid():
    """Long runs (filled at once by the kernel), no null mask, int32 values, and a map that grows mid-batch."""
    rng = np.random.default_rng(5)
    vals = np.repeat(rng.integers(-1000, 1000, 400), rng.integers(1, 300, 400)).astype(np.int32)
    codes = IntCodes(capacity=16)
    got, fresh = codes.code(vals, np.zeros(0, bool), 0)
    ref: dict[int, int] = {}
    for v in vals.tolist():
        ref.setdefault(v, len(ref))
    assert got.tolist() == [ref[v] for v in vals.tolist()] and fresh == list(ref)

def test_run_counter_against_python():
    rng = np.random.default_rng(4)
    rc = RunCounter(min_pending=50)  # sums by key many times
    want = Counter()
    for _ in range(40):
        k = np.sort(rng.integers(0, 200, 120)).astype(np.int64)
        a = rng.integers(1, 5, 120).astype(np.int64)
        m = rng.random(120) < 0.7
        rc.add(k, m, a)
        for kk, aa, mm in zip(k.tolist(), a.tolist(), m.tolist(), strict=True):
            want[kk] += aa if mm else 0
    got = dict(zip(*[x.tolist() for x in rc.items()], strict=True))
    assert got == {k: v for k, v in want.items() if v}


def test_timeline_runs_equal_timeline_block():
    """The hash-free timeline kernel gives the same state, steps and duplicate pairs as timeline_block."""
    rng = np.random.default_rng(5)
    n, G = 3000, 4
    g = np.sort(rng.integers(0, G, n)).astype(np.int64)
    g[rng.integers(0, n, 200)] = rng.integers(0, G, 200)  # some interleaving
    t = np.cumsum(rng.choice([0, 900, 900, 900, 1800, -450, 3600 * 5], n)).astype(np.int64) * 1_000_000
    ok = rng.random(n) > 0.03
    h = rng.integers(0, 2**63, n).astype(np.uint64)
    h[rng.integers(0, n, 300)] = h[rng.integers(0, n, 300)]  # exact duplicate rows
    state = lambda: [np.full(G, np.iinfo(np.int64).min), np.zeros(G, np.uint64)] + [  # noqa: E731
        np.zeros(G, np.int64) for _ in range(6)]
    a, b = state(), state()
    a[3][:] = b[3][:] = np.iinfo(np.int64).max  # t_min
    a[4][:] = b[4][:] = np.iinfo(np.int64).min  # t_max
    ref_pairs, ref_steps = [], Counter()
    got_pairs, got_steps = [], Counter()
    rows, reg = np.zeros(G, np.int64), np.zeros(1 << 12, np.uint8)  # rows per group; distinct times
    for lo in range(0, n, 700):  # blocks: state carried across them
        sl = slice(lo, lo + 700)
        m = g[sl].size
        keys, pairs = np.empty(m, np.int64), np.empty(2 * m, np.uint64)
        k = timeline_block(g[sl], t[sl], ok[sl], h[sl], *a[:2], a[2], a[3], a[4], a[5], a[6], a[7], keys, pairs)
        ref_pairs += pairs[: 2 * k].tolist()
        ref_steps.update(keys[keys >= 0].tolist())
        first_idx = np.full(G, -1, np.int64)
        out = [np.empty(m, np.int64) for _ in range(4)] + [np.empty(m, np.int64), np.empty(m, np.uint64),
                                                           np.empty(m, np.int64), np.empty(m, np.uint64)]
        ns, nb, npairs = timeline_runs(g[sl], t[sl] // 1000, 1000, ok[sl], rows, reg, b[0], b[1], first_idx,
                                          b[2], b[3], b[4], b[5], b[6], b[7], 0, 9, *out)
        for key, c in zip(out[0][:ns].tolist(), out[1][:ns].tolist(), strict=True):
            got_steps[key] += c
        pf, ph, pr, pb = out[4][:npairs], out[5][:npairs].copy(), out[6][:npairs], out[7][:npairs]
        ph[pf >= 0] = h[sl][pf[pf >= 0]]
        pp = np.empty(2 * npairs, np.uint64)
        dup_pairs(pb, ph, h[sl][pr], pp)
        got_pairs += pp.tolist()
        touched = first_idx >= 0
        b[1][touched] = h[sl][first_idx[touched]]
        assert out[3][:nb].sum() == ok[sl].sum()  # every parsed row in one (group, hour) bin
    for x, y in zip(a, b, strict=True):
        assert x.tolist() == y.tolist()
    assert got_pairs == ref_pairs and got_steps == ref_steps and len(ref_pairs) > 0
    assert rows.tolist() == np.bincount(g, minlength=G).tolist()
    want = np.zeros(1 << 12, np.uint8)
    hll_add(want, t[ok])
    assert reg.tolist() == want.tolist()


def _column_reference(v, g, lo, hi, cands, stuck_min, G):
    """Plain-Python counts of column_block (nulls, candidate hits, invalid, stuck rows and runs, extremes)."""
    out = {k: [0] * G for k in ("nulls", "invalid", "stuck_rows", "stuck_runs", "null_run_max")}
    cand = [[0] * len(cands) for _ in range(G)]
    last, run, nrun = [None] * G, [0] * G, [0] * G
    ext = [np.inf, -np.inf]
    for x, gi in zip(v.tolist(), g.tolist(), strict=True):
        if x != x:
            out["nulls"][gi] += 1
            nrun[gi] += 1
            out["null_run_max"][gi] = max(out["null_run_max"][gi], nrun[gi])
            run[gi], last[gi] = 0, None
            continue
        nrun[gi] = 0
        if x in cands:
            cand[gi][cands.index(x)] += 1
            run[gi], last[gi] = 0, None
            continue
        ext = [min(ext[0], x), max(ext[1], x)]
        out["invalid"][gi] += not lo <= x <= hi
        if x == last[gi] and x != 0.0:
            run[gi] += 1
            if run[gi] == stuck_min - 1:
                out["stuck_rows"][gi] += run[gi]
                out["stuck_runs"][gi] += 1
            elif run[gi] > stuck_min - 1:
                out["stuck_rows"][gi] += 1
        else:
            run[gi] = 0
        last[gi] = x
    return out, cand, ext


@pytest.mark.parametrize(("dtype", "stuck_min"), [(np.float64, 6), (np.float32, 6), (np.float64, 2), (np.float64, 1)])
def test_column_kernel_against_reference(dtype, stuck_min):
    from uda.kernels.sketches import qs_add, qs_new

    rng = np.random.default_rng(6)
    n, G = 5000, 3
    g = np.sort(rng.integers(0, G, n)).astype(np.int64)
    v = rng.integers(0, 6, n).astype(float)
    v[rng.random(n) < 0.1] = np.nan
    v[rng.random(n) < 0.05] = -999.0
    v[rng.random(n) < 0.02] = 9999.0
    v[1000:1020] = 3.0  # a stuck run
    v[2000:2007] = [-999.5, 9999.25, 1e30, 2.0**53 + 2, -1.0000001, 10000.0, -0.0]  # near candidates, not them
    v = v.astype(dtype)
    cands = [-1.0, -999.0, 9999.0]
    z = lambda: np.zeros(G, np.int64)  # noqa: E731
    st = {k: z() for k in ("nulls", "invalid", "stuck_rows", "stuck_runs", "run_len", "null_run", "null_run_max")}
    cand = np.zeros((G, 3), np.int64)
    ext, qs, reg, hit = np.array([np.inf, -np.inf]), qs_new(), np.zeros(1 << 12, np.uint8), np.empty(n, np.int8)
    last = np.full(G, np.nan)
    n_hit = 0
    for lo in range(0, n, 1700):  # state carried across blocks
        sl = slice(lo, lo + 1700)
        n_hit += column_block(v[sl], g[sl], 0.0, 4.0, np.array(cands), stuck_min, True, st["nulls"], cand, st["invalid"],
                        st["stuck_rows"], st["stuck_runs"], last, st["run_len"], st["null_run"],
                        st["null_run_max"], ext, qs, reg, hit[sl])
    ref, ref_cand, ref_ext = _column_reference(v.astype(float), g, 0.0, 4.0, cands, stuck_min, G)
    for k in ref:
        assert st[k].tolist() == ref[k], k
    assert cand.tolist() == ref_cand and ext.tolist() == ref_ext
    plain = v[~np.isnan(v) & ~np.isin(v, cands)].astype(np.float64)
    want_qs = qs_new()
    qs_add(want_qs, plain)
    want_reg = np.zeros(1 << 12, np.uint8)
    hll_add(want_reg, (v[~np.isnan(v)].astype(np.float64) + 0.0).view(np.int64))
    assert qs.tolist() == want_qs.tolist() and reg.tolist() == want_reg.tolist()
    assert hit.tolist() == [1 if x != x else (2 + cands.index(x) if x in cands else 0) for x in v.astype(float).tolist()]
    assert n_hit == np.count_nonzero(hit) > 0


def test_hll_filters_and_hour_bins_exact():
    """The filters in front of the HyperLogLog updates leave the registers as without them (keys past the
    filter's size, -1 µs whose bits are the empty mark, -0.0), and the remembered hour gives each row
    the bin of its own hour (negative times, hour edges, times too large to remember an hour for)."""
    rng = np.random.default_rng(8)
    grid = np.arange(-(1 << 15), 1 << 15, dtype=np.int64) * 7_000_000  # 65536 times: past the time filter
    hr = 3_600_000_000
    low = -(1 << 63) + 5  # its hour starts below the smallest int64: no hour is remembered for it
    wrapped = (low // hr * hr + (1 << 64)) + 1  # where that hour's start lands when it wraps around
    edge = np.array([-1, 0, -1, -hr, -hr - 1, hr - 1, (1 << 62) + 5, -(1 << 62) - 5, low, wrapped, 1], np.int64)
    t = np.concatenate([grid, grid[::3], edge])
    g = np.repeat(np.arange(3), [grid.size, grid[::3].size, edge.size]).astype(np.int64)
    n, G = t.size, 3
    ok = rng.random(n) > 0.01
    ok[-edge.size:] = True
    reg = np.zeros(1 << 12, np.uint8)
    z = lambda v: np.full(G, v, np.int64)  # noqa: E731
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    out = [np.empty(n, np.int64) for _ in range(4)] + [np.empty(n, np.int64), np.empty(n, np.uint64),
                                                       np.empty(n, np.int64), np.empty(n, np.uint64)]
    ns, nb, _ = timeline_runs(g, t, 1, ok, z(0), reg, z(small), np.zeros(G, np.uint64), z(-1), z(0), z(big),
                                 z(small), z(0), z(0), z(0), 5, 9, *out)
    want = np.zeros(1 << 12, np.uint8)
    hll_add(want, t[ok])
    assert reg.tolist() == want.tolist()
    for alone in ([-1], [-1, 5]):  # -1 µs alone: its register is set all the same
        reg, want = np.zeros(1 << 12, np.uint8), np.zeros(1 << 12, np.uint8)
        ta = np.array(alone, np.int64)
        m = ta.size
        out1 = [np.empty(m, np.int64) for _ in range(4)] + [np.empty(m, np.int64), np.empty(m, np.uint64),
                                                            np.empty(m, np.int64), np.empty(m, np.uint64)]
        timeline_runs(np.zeros(m, np.int64), ta, 1, np.ones(m, bool), np.zeros(1, np.int64), reg,
                         np.full(1, small), np.zeros(1, np.uint64), np.full(1, -1), np.zeros(1, np.int64),
                         np.full(1, big), np.full(1, small), *[np.zeros(1, np.int64) for _ in range(3)], 0, 9, *out1)
        hll_add(want, ta)
        assert reg.tolist() == want.tolist() and want.any()
    hour = np.clip(t[ok] // 3_600_000_000 - 5 + (1 << 22), 0, (1 << 23) - 1)
    assert np.repeat(out[2][:nb], out[3][:nb]).tolist() == ((g[ok] << 43) | (hour << 20) | (9 << 5)).tolist()

    v = np.concatenate([np.tile(np.arange(10_000, dtype=np.float64) / 8, 3), [-0.0, 0.0, -0.0]])  # past the value filter
    v = v[rng.permutation(v.size)]
    gv, m = np.zeros(v.size, np.int64), v.size
    reg = np.zeros(1 << 12, np.uint8)
    zz = lambda: np.zeros(1, np.int64)  # noqa: E731
    column_block(v, gv, -np.inf, np.inf, np.array([-999.0]), 6, True, zz(), np.zeros((1, 1), np.int64), zz(),
                    zz(), zz(), np.full(1, np.nan), zz(), zz(), zz(), np.array([np.inf, -np.inf]),
                    np.zeros(1 << 16, np.int64), reg, np.empty(m, np.int8))
    want = np.zeros(1 << 12, np.uint8)
    hll_add(want, (v + 0.0).view(np.int64))
    assert reg.tolist() == want.tolist()


def test_declared_fractional_sentinel_is_counted_as_pandas_counts(tmp_path):
    # a department's "-99.5 = no reading": declared sentinels need not be whole numbers
    path = tmp_path / "t.csv"
    vals = [1.5, -99.5, 2.25, -99.5, -1.0, 3.0, -99.4, 4.5]
    path.write_text("v\n" + "\n".join(str(v) for v in vals) + "\n")
    (tmp_path / "s.toml").write_text('[table]\n[columns.v]\ntype = "float"\nsentinels = [-99.5]\n')
    rep, _, _ = profile_table(str(path), schema=tmp_path / "s.toml")
    s = pd.read_csv(path)["v"]
    col = rep["columns"]["v"]
    assert col["sentinel_values"]["-99.5"] == int((s == -99.5).sum()) == 2
    assert col["sentinels"] == sum(col["sentinel_values"].values())
    assert col["nulls"] == 0 and "-99.4" not in col["sentinel_values"]


def test_text_groups_come_in_order_of_first_appearance(tmp_path):
    """Text group codes follow the file (as integer groups do), so a rerun writes the same report."""
    rng = np.random.default_rng(3)
    names = [f"site-{v:06d}" for v in rng.choice(10**6, size=40, replace=False)]
    path = tmp_path / "groups.csv"
    pl.DataFrame({"site": np.repeat(names, 3), "v": np.arange(120, dtype=float)}).write_csv(path)
    rep, _, _ = profile_table(str(path), group_col="site")
    assert list(rep["groups"]) == names
