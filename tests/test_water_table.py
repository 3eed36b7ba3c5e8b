"""External water-quality tables: reading, scoring against labels, and bad input reported."""

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from test_water_detect import synthetic

from uda.cli.main import cli
from uda.contract import WATER_PARAMETERS
from uda.io.table import read_water_table
from uda.tasks.base import compare_answers
from uda.tasks.water import run_table

EVENTS = ((0.6, 3.0), (1.4, 2.0), (2.2, 3.0), (3.3, 2.5), (4.1, 3.0), (5.2, 2.0))


def _frame(seed=0, events=EVENTS, n_days=6):
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
    assert set(doc["detectors"]) == {"residual", "distance", "changepoint", "supervised"}
    assert doc["protocol"]["kind"] == "train_fraction" and doc["protocol"]["train_fraction"] == 0.5
    assert doc["protocol"]["test_start"] == "2026-03-05T00:00:00"
    assert doc["protocol"]["train_events"] == 3 and doc["table"]["test_events"] == 3
    best = doc["detectors"][doc["best_detector"]]
    assert best["per_event"]["n_detected"] == 3
    assert best["per_sample"]["f1"] > max(0.6, 3 * doc["baseline"]["flag_everything"]["f1"])
    assert "training" in best["threshold_how"]
    assert doc["columns"]["SpCond"] == "conductivity_uscm"
    alarms = pl.read_parquet(tmp_path / "o" / "alarms.parquet")
    assert alarms.columns == ["detector", "site_id", "start", "end"]
    assert alarms["start"].min() >= np.datetime64("2026-03-05T00:00")
    assert (tmp_path / "o" / "site_0.png").is_file()


def test_parquet_and_human_output(tmp_path):
    df = _frame().with_columns(pl.col("time").str.to_datetime())
    res = _invoke(tmp_path, df, name="t.parquet")
    assert res.exit_code == 0, res.output
    assert "event detection on the test part" in res.output
    assert "flag everything" in res.output and "conductivity_uscm" in res.output


def test_neutral_names_found_by_content(tmp_path):
    """No mapping, no column options: time and label found from their values, all numbers are parameters."""
    df = _frame().with_columns(pl.col("time").str.to_datetime())
    names = [c for c in df.columns if c not in ("time", "event")]
    df = df.rename({c: f"p{i + 1}" for i, c in enumerate(names)} | {"time": "t0", "event": "y0"})
    res = _invoke(tmp_path, df.select("p3", "y0", "p1", "t0", *[f"p{i}" for i in (2, 4, 5, 6, 7)]),
                  "--json", name="n.parquet")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["table"]["time_col"] == "t0" and doc["table"]["label_col"] == "y0"
    assert doc["params"] == ["p3", "p1", "p2", "p4", "p5", "p6", "p7"]
    assert doc["indices"]["ccme"]["computed"] is False and doc["sites"][0]["ccme_wqi"] is None
    assert any("not computed" in w for w in doc["warnings"])
    best = doc["detectors"][doc["best_detector"]]
    assert best["per_event"]["n_detected"] == 3 and best["per_sample"]["f1"] > 0.6


def test_column_mapping_overrides_aliases(tmp_path):
    df = _frame().rename({"SpCond": "Leitfähigkeit", "Turbidity": "Trueb", "Nitrate": "xx"})
    res = _invoke(tmp_path, df, "--columns", "xx=nitrate_mgl, DO=do_mgl", "--json")
    assert res.exit_code == 0, res.output
    cols = json.loads(res.stdout)["columns"]
    assert cols["xx"] == "nitrate_mgl" and cols["Leitfähigkeit"] == "conductivity_uscm"
    assert cols["Trueb"] == "turbidity_ntu"


def test_multi_site_engines_agree(tmp_path):
    a = _frame(seed=1).with_columns(pl.lit("upper").alias("station"))
    b = _frame(seed=2).with_columns(pl.lit("lower").alias("station"))
    path = tmp_path / "two.csv"
    pl.concat([b, a]).write_csv(path)
    pol = run_table(path, label_col="event")
    dsk = run_table(path, time_col="time", label_col="event", site_col="station", engine="dask",
                    scheduler="sync")
    assert compare_answers(pol.answer, dsk.answer) == []
    assert pol.summary["table"]["site_col"] == "station"
    assert pol.summary["table"]["test_events"] == 6
    assert set(pol.summary["protocol"]["sites"]) == {0, 1}
    assert any("numbered" in w for w in pol.summary["warnings"])


def test_no_labels_reports_alarms_only(tmp_path):
    # unlabelled: the training part must be mostly normal water (thresholds are its quantiles)
    res = _invoke(tmp_path, _frame(events=EVENTS[3:]).drop("event"), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["sites"][0]["ccme_wqi"] is not None and doc["baseline"] is None
    assert "supervised" not in doc["detectors"]
    for e in doc["detectors"].values():
        assert "per_sample" not in e and e["alarms_per_day"] is not None
        assert "no labels" in e["threshold_how"]
    # the plumes of the test part raise alarms even without labels
    assert doc["detectors"]["distance"]["alarms"] >= 2


def test_train_table(tmp_path):
    (tmp_path / "train.csv").write_text(_frame(seed=3).write_csv())
    res = _invoke(tmp_path, _frame(seed=4), "--train-table", str(tmp_path / "train.csv"), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["protocol"]["kind"] == "train_table" and doc["protocol"]["train_events"] == 6
    assert doc["protocol"]["test_start"] == "2026-03-02T00:00:00"
    assert doc["table"]["test_events"] == 6
    assert doc["detectors"]["supervised"]["per_event"]["n_detected"] >= 5


# ---- problems that are reported but not fatal --------------------------------------------

def _warnings(tmp_path, df, *args):
    res = _invoke(tmp_path, df, "--time-col", "time", "--json", *args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["warnings"]


def test_ccme_refused_on_few_parameters(tmp_path):
    df = _frame().drop("DO", "Turbidity", "Nitrate", "Ammonia")
    res = _invoke(tmp_path, df, "--json")
    doc = json.loads(res.stdout)
    assert doc["indices"]["ccme"]["rests_on"] == ["temperature_c", "ph", "conductivity_uscm"]
    assert doc["sites"][0]["ccme_wqi"] is None
    assert any("needs at least 4" in w for w in doc["warnings"])
    full = json.loads(_invoke(tmp_path, _frame(), "--json").stdout)
    assert len(full["indices"]["ccme"]["rests_on"]) == 7 and full["sites"][0]["ccme_wqi"] is not None


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
    df = _frame().with_columns(pl.lit(3.0).alias("lead_ugl"), pl.lit("x").alias("operator"),
                               pl.col("Nitrate").alias("NO3"))
    res = _invoke(tmp_path, df.reverse(), "--json")
    doc = json.loads(res.stdout)
    assert "lead_ugl" in doc["params"] and "NO3" in doc["params"]
    assert any("ignored non-numeric columns: operator" in x for x in doc["warnings"])
    assert any("both look like nitrate_mgl" in x for x in doc["warnings"])
    assert any("sorted them" in x for x in doc["warnings"])


# ---- problems that stop the run with one line ---------------------------------------------

@pytest.mark.parametrize(("change", "args", "message"), [
    (lambda d: d.with_columns(pl.col("SpCond") / 1000), [], "looks like mS/cm"),
    (lambda d: d.with_columns(pl.col("Temperature (°C)") * 1.8 + 32), [], "degrees Fahrenheit"),
    (lambda d: d.with_columns(pl.col("DO") * 9), [], "percent saturation"),
    (lambda d: d.with_columns(pl.col("Ammonia") * 1000), [], "µg/L"),
    (lambda d: d.with_columns(pl.col("pH") * 3), [], "outside 1-14.5"),
    (lambda d: pl.concat([d, d.head(3)]), [], "rows repeat a time"),
    (lambda d: d.select("time", "event", pl.lit("blue").alias("colour")), [], "no numeric parameter columns"),
    (lambda d: d.with_columns(pl.lit("n/a").alias("pH")), ["--columns", "pH=ph"], "is not numeric"),
    (lambda d: d, ["--columns", "Nitrate=nitrate_mgl,NO3x=ph"], "--columns names 'NO3x', which is not a column"),
    (lambda d: d, ["--columns", "Nitrate=nitrate_mgl,pH=nitrate_mgl"], "--columns maps both 'Nitrate' and 'pH'"),
    (lambda d: d, ["--columns", "Nitrate"], "must look like COLUMN=parameter"),
    (lambda d: d.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("soon"))
                              .otherwise(pl.col("time")).alias("time")), [], "cannot read 'soon'"),
    (lambda d: d.with_columns(pl.lit(2).alias("event")), ["--label-col", "event"], "true/false or 0/1"),
    (lambda d: d.with_columns((pl.int_range(pl.len()) % 3).alias("event")), ["--label-col", "event"],
     "true/false or 0/1"),
    (lambda d: d, ["--label-col", "evnt"], "--label-col 'evnt' is not a column"),
    (lambda d: d.with_columns(pl.lit(5).alias("time")), [], "not times"),
    (lambda d: d.rename({"event": "e1"}).with_columns(pl.col("e1").alias("e2")), [],
     "several columns could be the label column"),
    (lambda d: d, ["--train-fraction", "0"], "--train-fraction must lie strictly between 0 and 1"),
    (lambda d: d, ["--train-fraction", "1"], "--train-fraction must lie strictly between 0 and 1"),
    (lambda d: d, ["--train-fraction", "1.5"], "--train-fraction must lie strictly between 0 and 1"),
    (lambda d: d, ["--train-fraction", "-0.2"], "--train-fraction must lie strictly between 0 and 1"),
])
def test_bad_table_is_user_error(tmp_path, change, args, message):
    res = _invoke(tmp_path, change(_frame()), "--time-col", "time", *args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.drop("event"), "has no label column"),
    (lambda d: d.drop("Ammonia"), "only in the table: ammonia_mgl"),
    (lambda d: d.with_columns(pl.lit(1.0).alias("chloride")), "only in the training table: chloride"),
])
def test_bad_train_table(tmp_path, change, message):
    (tmp_path / "train.csv").write_text(change(_frame(seed=3)).write_csv())
    res = _invoke(tmp_path, _frame(), "--train-table", str(tmp_path / "train.csv"))
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(("args", "message"), [
    (["--table", "{missing}", "--time-col", "t"], "does not exist"),
    (["--table", "{txt}", "--time-col", "t"], "unknown table format"),
    (["--table", "{notime}"], "no column holds times"),
    (["--table", "{csv}", "--train-fraction", "0.5", "--train-table", "{csv}"], "not both"),
    (["--table", "{csv}", "--time-col", "when"], "--time-col 'when' is not a column"),
])
def test_bad_table_arguments(tmp_path, args, message):
    csv = tmp_path / "ok.csv"
    _frame().write_csv(csv)
    _frame().drop("time").write_csv(tmp_path / "nt.csv")
    (tmp_path / "x.json").write_text("{}")
    args = [a.format(missing=tmp_path / "nope.csv", txt=tmp_path / "x.json", csv=csv,
                     notime=tmp_path / "nt.csv") for a in args]
    res = CliRunner().invoke(cli, ["run", "water", *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_reader_canonical_frame(tmp_path):
    path = tmp_path / "t.csv"
    _frame().write_csv(path)
    t = read_water_table(path, time_col="time", label_col="event")
    assert t.params == WATER_PARAMETERS and t.interval_s == 900.0 and t.has_labels
    assert t.frame.columns == ["site_id", "ts", *WATER_PARAMETERS, "label"]
    assert t.warnings == []


def test_reader_finds_long_format_sites(tmp_path):
    """NEON-style long table: a siteID code column and a siteName text column."""
    a = _frame(seed=1).drop("event").with_columns(pl.lit("ARIK").alias("siteID"), pl.lit("Arikaree").alias("siteName"))
    b = _frame(seed=2).drop("event").with_columns(pl.lit("LEWI").alias("siteID"), pl.lit("Lewis Run").alias("siteName"))
    path = tmp_path / "long.csv"
    pl.concat([a, b]).rename({"time": "datetime"}).write_csv(path)
    t = read_water_table(path)
    assert t.site_col == "siteID" and t.time_col == "datetime" and not t.has_labels
    assert t.frame["site_id"].unique().to_list() == [0, 1]
    assert any("ignored non-numeric columns: siteName" in w for w in t.warnings)


# --------------------------------------------------------------------------- hostile options (issue #16)


@pytest.mark.parametrize(("cells", "match"), [
    (["2024-01-01 00:00", "not a time", "2024-01-01 00:02"], "cannot read 'not a time' (row 2)"),
    (["1", "2", "3"], "not times"),
])
def test_unparseable_time_column_is_one_line(tmp_path, cells, match):
    f = tmp_path / "t.csv"
    f.write_text("ts,ph,turb\n" + "".join(f"{c},7.{k},1\n" for k, c in enumerate(cells)))
    res = CliRunner().invoke(cli, ["run", "water", "--table", str(f), "--time-col", "ts"])
    assert res.exit_code == 2 and match in res.output and "Traceback" not in res.output, res.output


def test_inverted_or_infinite_guidelines_and_nan_event_size_are_refused(tmp_path):
    from uda.errors import UserError
    from uda.waterq.guidelines import load_guidelines

    g = tmp_path / "g.json"
    g.write_text('{"ph": {"lower": 9, "upper": 6}}')
    with pytest.raises(UserError, match="lower 9 >= upper 6"):
        load_guidelines(g)
    g.write_text('{"ph": {"lower": Infinity}}')
    with pytest.raises(UserError, match="finite number"):
        load_guidelines(g)
    for bad in ("nan", "-1", "inf"):
        res = CliRunner().invoke(cli, ["run", "water", "--data", str(tmp_path), "--min-event-size", bad])
        assert res.exit_code == 2 and "--min-event-size must be" in res.output, res.output
