"""External water-quality tables: reading, scoring against labels, and bad input reported."""

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from test_water_detect import synthetic

from uda.cli.main import cli
from uda.io.table import read_water_table
from uda.tasks.base import compare_answers
from uda.tasks.water import run_table
from uda.water import PARAMS


def _frame(seed=0, events=((2.0, 3.0), (4.5, 2.0)), n_days=6):
    ts, v, truth = synthetic(n_days=n_days, events=events, seed=seed)
    label = np.zeros(ts.size, bool)
    for s, e in truth:
        label |= (ts >= s) & (ts < e)
    t = (np.datetime64("2026-03-02T00:00", "ms") + ts.astype("timedelta64[ms]"))
    cols = {"time": [str(x) for x in t]}
    names = ["Temperature (°C)", "pH", "DO", "Turbidity", "SpCond", "Nitrate", "Ammonia"]
    for j, n in enumerate(names):
        cols[n] = v[:, j]
    cols["event"] = label
    return pl.DataFrame(cols)


def _invoke(tmp_path, df, *args, name="t.csv", plot=False):
    path = tmp_path / name
    if name.endswith(".parquet"):
        df.write_parquet(path)
    else:
        df.write_csv(path)
    res = CliRunner().invoke(cli, ["run", "water", "--table", str(path), "--out", str(tmp_path / "o"),
                                   "--plot" if plot else "--no-plot", *args])
    return res


def test_labelled_table_json(tmp_path):
    res = _invoke(tmp_path, _frame(), "--time-col", "time", "--label-col", "event", "--json",
                  plot=True)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    mv = doc["detectors"]["multivariate"]
    assert mv["recall"] == 1.0 and mv["precision"] == 1.0 and mv["f1"] == 1.0
    assert 0 <= mv["median_delay_s"] < 7200
    assert doc["table"]["labelled_events"] == 2
    assert doc["table"]["columns"]["conductivity_uscm"] == "SpCond"
    assert (tmp_path / "o" / "site_0.png").is_file()


def test_parquet_and_human_output(tmp_path):
    df = _frame().with_columns(pl.col("time").str.to_datetime())
    res = _invoke(tmp_path, df, "--time-col", "time", "--label-col", "event", name="t.parquet")
    assert res.exit_code == 0, res.output
    assert "event detection" in res.output


def test_multi_site_engines_agree(tmp_path):
    a = _frame(seed=1).with_columns(pl.lit("upper").alias("station"))
    b = _frame(seed=2, events=((3.0, 2.0),)).with_columns(pl.lit("lower").alias("station"))
    path = tmp_path / "two.csv"
    pl.concat([b, a]).write_csv(path)
    pol = run_table(path, time_col="time", label_col="event", site_col="station")
    dsk = run_table(path, time_col="time", label_col="event", site_col="station", engine="dask",
                    scheduler="sync")
    assert compare_answers(pol.answer, dsk.answer) == []
    assert pol.summary["detectors"]["multivariate"]["n_events"] == 3
    assert any("numbered" in w for w in pol.summary["warnings"])


def test_no_labels_runs_indices_only(tmp_path):
    res = _invoke(tmp_path, _frame().drop("event"), "--time-col", "time", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["detectors"] == {} and doc["sites"][0]["ccme_wqi"] is not None


# ---- problems that are reported but not fatal --------------------------------------------

def _warnings(tmp_path, df, *args):
    res = _invoke(tmp_path, df, "--time-col", "time", "--json", *args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["warnings"]


def test_missing_parameters_reported(tmp_path):
    w = _warnings(tmp_path, _frame().drop("Ammonia", "Nitrate"))
    assert any("missing parameters: nitrate_mgl, ammonia_mgl" in x for x in w)


def test_missing_parameter_at_one_site_reported(tmp_path):
    a = _frame(seed=1).with_columns(pl.lit(1).alias("site"))
    b = _frame(seed=2).with_columns(pl.lit(2).alias("site"), pl.lit(None, pl.Float64).alias("Ammonia"))
    w = _warnings(tmp_path, pl.concat([a, b]), "--site-col", "site")
    assert any("site 2: no values for ammonia_mgl" in x for x in w)


def test_irregular_timestamps_reported(tmp_path):
    df = _frame()
    t = df["time"].str.to_datetime()
    jitter = pl.Series(np.where(np.arange(df.height) % 7 == 3, 120_000, 0)).cast(pl.Duration("ms"))
    df = df.with_columns((t + jitter).dt.strftime("%Y-%m-%d %H:%M:%S").alias("time"))
    w = _warnings(tmp_path, df.filter(pl.int_range(pl.len()) % 50 != 10))
    assert any("irregular timestamps" in x for x in w)
    assert any("gaps longer" in x for x in w)


def test_unknown_columns_and_unsorted_rows_reported(tmp_path):
    df = _frame().with_columns(pl.lit(3.0).alias("lead_ugl"), pl.lit("x").alias("operator"))
    w = _warnings(tmp_path, df.reverse())
    assert any("lead_ugl, operator" in x for x in w)
    assert any("sorted them" in x for x in w)


# ---- problems that stop the run with one line ---------------------------------------------

@pytest.mark.parametrize(("change", "args", "message"), [
    (lambda d: d.with_columns(pl.col("SpCond") / 1000), [], "looks like mS/cm"),
    (lambda d: d.with_columns(pl.col("Temperature (°C)") * 1.8 + 32), [], "degrees Fahrenheit"),
    (lambda d: d.with_columns(pl.col("DO") * 9), [], "percent saturation"),
    (lambda d: d.with_columns(pl.col("Ammonia") * 1000), [], "µg/L"),
    (lambda d: d.with_columns(pl.col("pH") * 3), [], "outside 1-14.5"),
    (lambda d: pl.concat([d, d.head(3)]), [], "rows repeat a time"),
    (lambda d: d.select("time", "event", pl.col("pH").alias("colour")), [], "no water-quality parameter columns"),
    (lambda d: d.with_columns(pl.lit("n/a").alias("pH")), [], "is not numeric"),
    (lambda d: d.with_columns(pl.col("Nitrate").alias("NO3")), [], "both look like nitrate_mgl"),
    (lambda d: d.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("soon"))
                              .otherwise(pl.col("time")).alias("time")), [], "cannot read 'soon'"),
    (lambda d: d.with_columns(pl.lit(2).alias("event")), ["--label-col", "event"], "true/false or 0/1"),
    (lambda d: d, ["--label-col", "evnt"], "--label-col 'evnt' is not a column"),
    (lambda d: d.with_columns(pl.lit(5).alias("time")), [], "not times"),
])
def test_bad_table_is_user_error(tmp_path, change, args, message):
    res = _invoke(tmp_path, change(_frame()), "--time-col", "time", *args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(("args", "message"), [
    (["--table", "{missing}", "--time-col", "t"], "does not exist"),
    (["--table", "{txt}", "--time-col", "t"], "unknown table format"),
    (["--table", "{csv}"], "--table needs --time-col"),
    (["--table", "{csv}", "--time-col", "when"], "--time-col 'when' is not a column"),
])
def test_bad_table_arguments(tmp_path, args, message):
    csv = tmp_path / "ok.csv"
    _frame().write_csv(csv)
    (tmp_path / "x.json").write_text("{}")
    args = [a.format(missing=tmp_path / "nope.csv", txt=tmp_path / "x.json", csv=csv) for a in args]
    res = CliRunner().invoke(cli, ["run", "water", *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_reader_canonical_frame(tmp_path):
    path = tmp_path / "t.csv"
    _frame().write_csv(path)
    t = read_water_table(path, time_col="time", label_col="event")
    assert t.params == PARAMS and t.interval_s == 900.0 and t.has_labels
    assert t.frame.columns == ["site_id", "ts", *PARAMS, "label"]
    assert t.warnings == []


def test_no_signature_parameter_reported(tmp_path):
    doc_w = _warnings(tmp_path, _frame().select("time", "pH", "Temperature (°C)", "event"),
                      "--label-col", "event")
    assert any("detectors need at least one of" in x for x in doc_w)
