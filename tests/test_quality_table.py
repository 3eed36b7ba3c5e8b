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
from uda.kernels import quality as qk
from uda.tablequality import (
    HashCounter,
    HashSet,
    infer_schema,
    load_schema,
    profile_table,
    schema_toml,
)

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
    qk.timeline_block(g, t, np.ones(400, bool), np.arange(400, dtype=np.uint64), last, fh, st[0], st[1], st[2],
                      st[3], st[4], st[5], keys, pairs)
    n_ok, t_min, t_max, ooo, dups, max_step = st[0], st[1], st[2], st[3], st[4], st[5]
    for gi in range(G):
        tg = t[g == gi]
        d = np.diff(tg)
        assert n_ok[gi] == tg.size and ooo[gi] == (d < 0).sum() and dups[gi] == (d == 0).sum()
        assert t_min[gi] == tg.min() and t_max[gi] == tg.max() and max_step[gi] == d.max()
