"""Wide-table and LibCity importers, and the `uda run flow` command on them (incl. bad input)."""

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.io.libcity import read_libcity
from uda.io.wide import read_wide

DATA = Path(__file__).parent / "data" / "flow"


def _run(*args):
    return CliRunner().invoke(cli, ["run", "flow", *args])


def _bad(*args, match):
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert "Error:" in res.output and match in res.output, res.output
    assert "Traceback" not in res.output


# --------------------------------------------------------------------------- wide


def test_wide_header_of_ids_without_timestamps():
    p = read_wide(DATA / "wide_ids.csv", interval="1h")
    assert p.ids == ["401", "402", "403", "404"]
    assert p.values.shape == (4, 120)
    assert p.start == np.datetime64("2024-01-01T00:00:00")
    assert np.isnan(p.values).sum() == 4
    p2 = read_wide(DATA / "wide_ids.csv", interval="1h", start="2025-06-02T06:00")
    assert p2.start == np.datetime64("2025-06-02T06:00:00")
    np.testing.assert_array_equal(p2.values, p.values)


def test_wide_timestamp_column_fills_absent_rows(tmp_path):
    p = read_wide(DATA / "wide_ts.csv", interval="1h")
    assert p.ids == ["a", "b", "c"]
    assert p.start == np.datetime64("2024-03-04T00:00:00")
    assert p.values.shape == (3, 120)
    assert np.isnan(p.values[:, 30]).all()
    assert any("1 missing time steps" in n for n in p.notes)
    # the same table as Parquet with a real timestamp type reads the same
    df = pl.read_csv(DATA / "wide_ts.csv", null_values=["nan"]).with_columns(
        pl.col.timestamp.str.to_datetime())
    df.write_parquet(tmp_path / "w.parquet")
    q = read_wide(tmp_path / "w.parquet", interval="60min")
    np.testing.assert_array_equal(q.values, p.values)


def test_wide_unnamed_index_of_timestamps(tmp_path):
    text = (DATA / "wide_ts.csv").read_text().replace("timestamp,", ",", 1)
    (tmp_path / "w.csv").write_text(text)
    p = read_wide(tmp_path / "w.csv", interval="1h")
    assert p.ids == ["a", "b", "c"] and p.start == np.datetime64("2024-03-04T00:00:00")


def test_cli_wide_json_shape_5min(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(4 * 288)
    cols = {f"{400 + k}": 300 + 200 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 20, t.size)
            for k in range(3)}
    pl.DataFrame(cols).write_csv(tmp_path / "w.csv")
    res = _run("--wide", str(tmp_path / "w.csv"), "--interval", "5min", "--models", "last,ha,ridge",
               "--horizons", "3,6,12", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert list(out["models"]) == ["last", "ha", "ridge"]
    for per_h in out["models"].values():
        assert list(per_h) == ["3", "6", "12"]
        for m in per_h.values():
            assert {"mae", "rmse", "mape"} <= set(m) and m["mae"] > 0
    assert out["protocol"]["split"] == [0.7, 0.1, 0.2]
    assert out["start"].startswith("2024-01-01")


def test_cli_wide_human_table_and_engines_agree(tmp_path):
    args = ["--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", "--models", "all",
            "--horizons", "1,3", "--json"]
    a = json.loads(_run(*args).output)
    b = json.loads(_run(*args, "--engine", "dask", "--partitions", "3").output)
    for m in a["models"]:
        for h in a["models"][m]:
            assert b["models"][m][h]["mae"] == pytest.approx(a["models"][m][h]["mae"], rel=1e-9)
    res = _run("--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", "--models", "last,ha",
               "--horizons", "1,3", "--out", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    assert "3 (180 min)" in res.output and "skill vs ha" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["models"]["ha"]["1"]["n"] > 0


def _write_rows(path, header, rows):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def _ts_rows():
    return (DATA / "wide_ts.csv").read_text().strip().splitlines()


def test_wide_bad_timestamps(tmp_path):
    lines = _ts_rows()
    back = lines[:1] + lines[1:5] + [lines[6], lines[5]] + lines[7:]
    _write_rows(tmp_path / "back.csv", back[0], back[1:])
    _bad("--wide", str(tmp_path / "back.csv"), "--interval", "1h", match="not increasing")
    dup = lines[:6] + [lines[5]] + lines[6:]
    _write_rows(tmp_path / "dup.csv", dup[0], dup[1:])
    _bad("--wide", str(tmp_path / "dup.csv"), "--interval", "1h", match="repeats")
    _bad("--wide", str(DATA / "wide_ts.csv"), "--interval", "7min", match="does not divide a day")
    _bad("--wide", str(DATA / "wide_ts.csv"), "--interval", "2h", match="not on the")
    _bad("--wide", str(DATA / "wide_ts.csv"), "--interval", "1h", "--start", "2024-01-01",
         match="--start is not needed")


def test_wide_bad_input(tmp_path):
    _bad("--wide", str(DATA / "wide_ids.csv"), match="--interval")
    _bad("--wide", str(tmp_path / "nope.csv"), "--interval", "1h", match="does not exist")
    _bad(match="exactly one input")
    _bad("--wide", str(DATA / "wide_ids.csv"), "--libcity", str(DATA / "libcity"), "--interval", "1h",
         match="exactly one input")
    _bad("--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", "--models", "last,arima",
         match="unknown model")
    _bad("--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", "--horizons", "48",
         match="longer than one day")
    lines = (DATA / "wide_ids.csv").read_text().splitlines()
    _write_rows(tmp_path / "short.csv", lines[0], lines[1:41])
    _bad("--wide", str(tmp_path / "short.csv"), "--interval", "1h", match="supply a longer history")
    _write_rows(tmp_path / "text.csv", "a,b", ["1,x"] + ["2,3"] * 99)
    _bad("--wide", str(tmp_path / "text.csv"), "--interval", "1h", match="not numeric")
    _write_rows(tmp_path / "empty.csv", "a,b", [",", ","] * 60)
    _bad("--wide", str(tmp_path / "empty.csv"), "--interval", "1h", match="every series is missing")


def test_wide_all_missing_sensor_is_dropped_and_reported(tmp_path):
    df = pl.read_csv(DATA / "wide_ids.csv").with_columns(pl.lit(None, dtype=pl.Float64).alias("999"))
    df.write_csv(tmp_path / "w.csv")
    p = read_wide(tmp_path / "w.csv", interval="1h")
    assert any("without any value: 999" in n for n in p.notes)
    res = _run("--wide", str(tmp_path / "w.csv"), "--interval", "1h", "--models", "ha",
               "--horizons", "1", "--json")
    out = json.loads(res.output)
    assert out["series"] == 4
    assert any("dropped 1 series" in n and "999" in n for n in out["notes"])


# --------------------------------------------------------------------------- LibCity


def test_libcity_reads_series_and_adjacency():
    p = read_libcity(DATA / "libcity")
    assert p.ids == ["0", "1", "2"]
    assert p.interval_s == 3600
    assert p.values.shape == (3, 120)
    assert np.isnan(p.values[1, 50]) and np.isnan(p.values).sum() == 1
    nbrs = {i: sorted(p.indices[p.indptr[i]:p.indptr[i + 1]].tolist()) for i in range(3)}
    assert nbrs == {0: [1], 1: [0, 2], 2: [1]}  # both directions, self-relation dropped
    speed = read_libcity(DATA / "libcity" / "TOY.dyna", column="traffic_speed")
    assert speed.values[0, 0] == pytest.approx(57.2)
    coded = read_libcity(DATA / "libcity" / "TOY.dyna", column="traffic_speed", missing=(57.2,))
    assert np.isnan(coded.values[0, 0]) and any("57.2 read as missing" in n for n in coded.notes)


def test_cli_libcity_json():
    res = _run("--libcity", str(DATA / "libcity"), "--models", "ha,ridge,ridge_sp", "--horizons", "1,2",
               "--missing", "none", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["series"] == 3 and set(out["models"]) == {"ha", "ridge", "ridge_sp"}


def _copy_libcity(tmp_path, edit=None, drop=None):
    dst = tmp_path / "lc"
    shutil.copytree(DATA / "libcity", dst)
    if drop:
        (dst / drop).unlink()
    if edit:
        name, fn = edit
        f = dst / name
        f.write_text(fn(f.read_text()))
    return dst


def test_libcity_bad_input(tmp_path):
    def no_entity(text):
        return "\n".join(",".join(c for k, c in enumerate(line.split(",")) if k != 3)
                         for line in text.splitlines()) + "\n"

    d = _copy_libcity(tmp_path, edit=("TOY.dyna", no_entity))
    _bad("--libcity", str(d), match="missing column 'entity_id'")
    shutil.rmtree(d)
    d = _copy_libcity(tmp_path, edit=("TOY.rel", lambda t: t.replace("destination_id", "dest")))
    _bad("--libcity", str(d), match="missing column 'destination_id'")
    shutil.rmtree(d)
    d = _copy_libcity(tmp_path, drop="TOY.geo")
    _bad("--libcity", str(d), match="no .geo file")
    shutil.rmtree(d)
    _bad("--libcity", str(DATA / "libcity"), "--column", "occupancy", match="missing column 'occupancy'")

    def swap(text):
        lines = text.splitlines()
        lines[3], lines[4] = lines[4], lines[3]
        return "\n".join(lines) + "\n"

    d = _copy_libcity(tmp_path, edit=("TOY.dyna", swap))
    _bad("--libcity", str(d), match="go backwards")
    shutil.rmtree(d)
    d = _copy_libcity(tmp_path, edit=("TOY.dyna", lambda t: t.replace(",state,2024-03-04T05:00:00Z,2,",
                                                                       ",state,2024-03-04T05:00:00Z,7,")))
    _bad("--libcity", str(d), match="not a geo_id")
    shutil.rmtree(d)

    def repeat(text):
        lines = text.splitlines()
        return "\n".join([*lines, lines[5]]) + "\n"

    d = _copy_libcity(tmp_path, edit=("TOY.dyna", repeat))
    _bad("--libcity", str(d), match="has several rows at one time")


# --------------------------------------------------------------------------- adjacency, sentinels


def test_adjacency_file_gives_the_spatial_models_their_neighbours(tmp_path):
    from uda.io.adjacency import read_adjacency

    adj = tmp_path / "adj.csv"
    adj.write_text("0,1,0,0\n1,0,0.5,0\n0,0.5,1,0\n0,0,0,0\n")
    indptr, indices = read_adjacency(adj, 4)
    assert indptr.tolist() == [0, 1, 3, 4, 4]  # the diagonal is ignored, weights count as links
    assert indices.tolist() == [1, 0, 2, 1]
    res = _run("--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", "--adjacency", str(adj),
               "--models", "last,ridge_sp,ridge_st", "--horizons", "1,2", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out["models"]) == {"last", "ridge_sp", "ridge_st"}
    assert not any("most correlated" in n or "correlate most" in n for n in out["notes"])


@pytest.mark.parametrize(("text", "match"), [
    ("0,1\n1,0\n", "the table has 4 sensor columns"),
    ("0,1,0\n1,0\n", "must be square"),
    ("a,b,c,d\n0,1,0,0\n1,0,0,0\n0,0,0,1\n", "not a number"),
])
def test_bad_adjacency_is_a_one_line_error(tmp_path, text, match):
    adj = tmp_path / "adj.csv"
    adj.write_text(text)
    _bad("--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", "--adjacency", str(adj),
         "--models", "ridge_sp", match=match)


def test_missing_adjacency_file_and_wide_only_options():
    _bad("--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", "--adjacency", "/nonexistent/a.csv",
         match="does not exist")
    _bad("--data", str(DATA), "--missing", "-1", match="--missing only applies to --wide, --long and --libcity")
    _bad("--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", "--missing", "minus one",
         match="cannot read --missing")


def test_sentinels_and_irregular_timestamps_through_the_cli(tmp_path):
    rng = np.random.default_rng(0)
    t = np.datetime64("2024-01-01T00:00") + np.cumsum(rng.integers(3, 8, 3000)).astype("timedelta64[m]")
    v = 50 + 10 * np.sin(np.arange(3000) / 50) + rng.normal(0, 1, 3000)
    v[::97] = -1
    f = tmp_path / "irregular.csv"
    pl.DataFrame({"timestamp": t.astype("datetime64[ms]"), "value": v}).write_csv(f)
    _bad("--wide", str(f), "--interval", "5min", "--models", "last", match="not on the 300 s grid")
    res = _run("--wide", str(f), "--interval", "5min", "--irregular", "--missing", "-1",
               "--models", "last,ha,ridge", "--horizons", "1,3", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert any("read as missing" in n for n in out["notes"]), out["notes"]
    assert any("binned to" in n for n in out["notes"]), out["notes"]


def _speeds_and_counts(seed=1, days=6):
    """A speed-like series with a daily dip and a count-like series that is 0 at night."""
    rng = np.random.default_rng(seed)
    T = days * 288
    slot = np.arange(T) % 288
    speed = 60 - 25 * np.exp(-((slot - 100) / 12.0) ** 2) + rng.normal(0, 2, T)
    count = np.maximum(0, np.round(40 * np.sin(np.pi * (slot - 60) / 200).clip(0) ** 2 + rng.normal(0, 1.5, T)))
    return rng, speed, count


def test_missing_codes_are_detected_and_noted(tmp_path):
    from uda.io.wide import detect_missing_codes

    rng, speed, count = _speeds_and_counts()
    assert detect_missing_codes([speed, count]) == []  # night zeros of counts are values
    down = speed.copy()
    for s in rng.integers(0, speed.size - 40, 25):
        down[s:s + rng.integers(1, 30)] = 0.0  # a detector reporting 0 while it is down
    found = detect_missing_codes([down, down[::-1]])
    assert [c for c, _ in found] == [0.0]
    assert detect_missing_codes([down[:200]]) == []  # too few runs to tell
    coded = count.copy()
    coded[::50] = -1
    coded[7] = 9999
    assert [c for c, _ in detect_missing_codes([coded])] == [-1.0, 9999.0]
    temps = speed - 70  # genuine negative values: -1 among them is a value
    temps[::50] = -1
    assert detect_missing_codes([temps]) == []

    f = tmp_path / "w.csv"
    pl.DataFrame({"a": down, "b": down[::-1], "c": coded}).write_csv(f)
    p = read_wide(f, interval="5min")
    assert np.isnan(p.values[0][down == 0]).all() and np.isnan(p.values[2][coded == -1]).all()
    assert any("detected" in n and "--missing none" in n for n in p.notes), p.notes
    kept = read_wide(f, interval="5min", missing=())
    assert (kept.values[0] == 0).sum() == (down == 0).sum() and not kept.notes
    only = read_wide(f, interval="5min", missing=(-1,))  # declared codes only, no detection
    assert (only.values[0] == 0).sum() == (down == 0).sum()
    res = _run("--wide", str(f), "--interval", "5min", "--missing", "none", "--models", "last",
               "--horizons", "1", "--json")
    assert res.exit_code == 0, res.output
    assert not any("read as missing" in n for n in json.loads(res.output)["notes"])
    _bad("--wide", str(f), "--interval", "5min", "--missing", "zero", match="cannot read --missing")


def test_long_tables_through_the_cli(tmp_path):
    """A long table of several sensors (the shape of the raw Melbourne or SCATS exports), and
    a NAB series with irregular timestamps, scored like a wide table; long-only options are
    refused elsewhere."""
    p = read_wide(DATA / "wide_ts.csv", interval="1h")
    t = p.start + np.arange(p.values.shape[1]) * np.timedelta64(3600, "s")
    long = pl.concat([pl.DataFrame({"Date Time": t.astype("datetime64[ms]"), "Sensor": sid, "Count": row})
                      for sid, row in zip(p.ids, p.values, strict=True)]).sample(fraction=1.0, shuffle=True, seed=1)
    f = tmp_path / "long.csv"
    long.write_csv(f)
    args = ["--models", "last,ha,ridge", "--horizons", "1,2", "--json"]
    wide = _run("--wide", str(DATA / "wide_ts.csv"), "--interval", "1h", *args)
    res = _run("--long", str(f), "--id-col", "Sensor", "--value-col", "Count", *args)  # "Date Time" found
    assert wide.exit_code == 0 and res.exit_code == 0, res.output
    a, b = json.loads(wide.output), json.loads(res.output)
    assert b["series"] == a["series"]
    for m in ("last", "ha", "ridge"):
        for h in ("1", "2"):
            assert b["models"][m][h]["mae"] == pytest.approx(a["models"][m][h]["mae"], rel=1e-9)
    nab = _run("--long", str(DATA / "nab_speed_6005.csv"), "--interval", "5min", "--irregular",
               "--models", "last,ha", "--horizons", "3", "--json")
    assert nab.exit_code == 0, nab.output
    assert any("binned to" in n for n in json.loads(nab.output)["notes"])
    _bad("--wide", str(DATA / "wide_ts.csv"), "--interval", "1h", "--id-col", "x", match="--id-col only applies to --long")
    _bad("--long", str(f), "--adjacency", str(f), match="--adjacency only applies to --wide")
    _bad("--long", str(f), "--wide", str(f), match="give exactly one input")
    _bad("--long", str(f), "--id-col", "nope", match="nope")
    _bad("--long", str(f), "--start", "2024-01-01", match="--start only applies to --wide")
    _bad("--long", str(f), "--column", "x", match="--column only applies to --libcity")


def test_time_columns_with_odd_names_and_utc_offsets_read_as_local_time(tmp_path):
    from uda.io.long import read_long

    f = tmp_path / "w.csv"
    f.write_text("Sensor 1,Time Stamp (local),TravelTime_2\n"
                 + "".join(f"{i},2024-03-0{1 + i // 24}T{i % 24:02d}:00:00+10:00,{2 * i}\n" for i in range(72)))
    p = read_wide(f, interval="1h")
    assert p.ids == ["Sensor 1", "TravelTime_2"]  # a numeric column named ...Time is a sensor
    assert p.start == np.datetime64("2024-03-01T00:00:00")  # wall-clock time, offset dropped
    q = read_long(f, value_column="TravelTime_2")
    assert q.start == p.start and q.interval_s == 3600
    # text columns named like time that hold no timestamps are sensors' labels, not errors
    g = tmp_path / "g.csv"
    g.write_text("time_zone,timestamp,Datenquelle,value\n"
                 + "".join(f"UTC,2024-03-01 {h:02d}:00,x,{h}\n" for h in range(24)))
    assert read_long(g, value_column="value").values.shape == (1, 24)
    # day-first dates keep their year (the offset rule needs a time of day before it)
    nl = tmp_path / "nl.csv"
    nl.write_text("Datum,value\n" + "".join(f"{d:02d}-01-2024,{d}\n" for d in range(1, 8)))
    assert read_long(nl, interval=86400).start == np.datetime64("2024-01-01")


def test_out_into_a_new_folder_and_a_reader_that_goes_away(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "new" / "deeper" / "flow.json"
    args = ["--wide", str(DATA / "wide_ts.csv"), "--interval", "1h", "--models", "last,ha", "--horizons", "1"]
    res = _run(*args, "--out", str(out))
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["series"] == 3
    assert [p.name for p in out.parent.iterdir()] == ["flow.json"]  # no temporary file left
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _bad(*args, "--out", str(blocker / "flow.json"), match="cannot create the folder for")
    _bad(*args, "--out", str(out.parent), match="is a folder")
    assert [p.name for p in out.parent.iterdir()] == ["flow.json"]
    for fmt in ([], ["--json"]):  # `uda ... | head`: no traceback, no "internal error"
        p = subprocess.Popen([sys.executable, "-m", "uda.cli.main", "run", "flow", *args, *fmt],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()
        err = p.stderr.read().decode()
        assert p.wait() == 1 and err == "", err


def test_semicolons_decimal_commas_tabs_and_local_names(tmp_path):
    """Spreadsheet exports from much of Europe: ';' between cells, ',' as the decimal mark,
    a time column named in the local language; and tab-separated files."""
    from uda.io.wide import csv_dialect

    semi = tmp_path / "zaehlung.csv"
    semi.write_text("Zeit;Sensor A;Sensor B\n2024-01-01 00:00;7,25;-1,5\n2024-01-01 01:00;8,5;2\n"
                    "2024-01-01 02:00;;3,75\n")
    assert csv_dialect(semi) == (";", True)
    p = read_wide(semi, interval="1h")
    assert p.ids == ["Sensor A", "Sensor B"] and p.start == np.datetime64("2024-01-01T00:00")
    np.testing.assert_array_equal(p.values, [[7.25, 8.5, np.nan], [-1.5, 2.0, 3.75]])
    tab = tmp_path / "counts.tsv"
    tab.write_text("time\ta\tb\n2024-01-01 00:00\t1.5\t2\n2024-01-01 01:00\t2.5\t3\n")
    assert csv_dialect(tab) == ("\t", False)
    np.testing.assert_array_equal(read_wide(tab, interval="1h").values, [[1.5, 2.5], [2.0, 3.0]])
    plain = tmp_path / "plain.csv"
    plain.write_text("time,a;b\n2024-01-01 00:00,1.5\n")  # one ';' inside a name: still commas
    assert csv_dialect(plain) == (",", False)


# --------------------------------------------------------------------------- hostile cells (issue #16)


def test_a_text_cell_in_the_default_libcity_column_is_an_error_not_another_column(tmp_path):
    src = DATA / "libcity"
    dst = tmp_path / "lc"
    shutil.copytree(src, dst)
    dyna = next(dst.glob("*.dyna"))
    lines = dyna.read_text().splitlines()
    head = lines[0].split(",")
    col = head.index("traffic_flow")
    row = lines[5].split(",")
    row[col] = "zzz"
    lines[5] = ",".join(row)
    dyna.write_text("\n".join(lines) + "\n")
    _bad("--libcity", str(dst), "--models", "last", "--horizons", "1",
         match="column 'traffic_flow' is not numeric (e.g. 'zzz')")


def test_a_text_cell_in_a_wide_table_is_quoted(tmp_path):
    lines = (DATA / "wide_ids.csv").read_text().splitlines()
    lines[7] = "14.1,oops,26.6,27.1"
    f = tmp_path / "w.csv"
    f.write_text("\n".join(lines) + "\n")
    _bad("--wide", str(f), "--interval", "1h", match="row 7 holds 'oops'")


def test_infinite_values_are_missing_and_an_all_infinite_sensor_is_dropped(tmp_path):
    df = pl.read_csv(DATA / "wide_ids.csv").with_columns(pl.lit(float("inf")).alias("405"))
    f = tmp_path / "w.csv"
    df.write_csv(f)
    res = _run("--wide", str(f), "--interval", "1h", "--models", "last,ha", "--horizons", "1", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["series"] == 4
    assert any("infinite values read as missing" in n for n in out["notes"]), out["notes"]
    assert all(v["1"]["mae"] is not None for v in out["models"].values())


@pytest.mark.parametrize("parts", ["0", "-3"])
def test_partitions_below_one_are_refused(parts):
    res = _run("--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", "--engine", "dask",
               "--partitions", parts)
    assert res.exit_code == 2 and "--partitions" in res.output and "Traceback" not in res.output
