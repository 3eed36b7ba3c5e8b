"""Flow task on a generated dataset: Polars and Dask targets and scores agree; ridge wins."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.store import open_dataset
from uda.tasks.base import compare_answers
from uda.tasks.flow import (
    run,
    sensor_pairs,
    station_panel_dask,
    station_panel_polars,
    traffic_panel_dask,
    traffic_panel_polars,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """40 sensors for 14 days (two weekends), seeded."""
    out = tmp_path_factory.mktemp("flow") / "d14"
    res = CliRunner().invoke(cli, ["generate", "--scale", "tiny", "--sensors", "40", "--days", "14",
                                   "--seed", "3", "--tables", "traffic,passenger", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_targets_polars_and_dask_agree(dataset):
    ds = open_dataset(dataset)
    ids_p, Y_p, t0_p = traffic_panel_polars(ds)
    ids_d, Y_d, t0_d = traffic_panel_dask(ds)
    assert t0_p == t0_d
    np.testing.assert_array_equal(ids_p, ids_d)
    np.testing.assert_array_equal(Y_p, Y_d)
    assert Y_p.shape == (40, 14 * 288)
    sid_p, S_p, s0_p = station_panel_polars(ds)
    sid_d, S_d, s0_d = station_panel_dask(ds)
    assert s0_p == s0_d
    np.testing.assert_array_equal(sid_p, sid_d)
    np.testing.assert_array_equal(S_p, S_d)
    assert S_p.shape[1] == 14 * 96
    assert S_p.sum() == ds.table("taps")["rows"]  # every tap lands in one 15-minute cell


@pytest.mark.parametrize("target", ["traffic", "stations"])
def test_engines_give_the_same_scores(dataset, target):
    kw = {"target": target, "models": "last,ha,hw,ridge,ridge_sp", "horizons": "1,4"}
    a = run(dataset, engine="polars", **kw)
    b = run(dataset, engine="dask", scheduler="threads", **kw)
    assert compare_answers(a.answer, b.answer, rtol=1e-9) == []
    assert a.answer["mae"].shape == (5, 2)
    assert a.rows_in > 0 and a.summary["target"] == target


@pytest.mark.parametrize("target", ["traffic", "speed"])
def test_ridge_beats_every_baseline_at_every_horizon(dataset, target):
    base = ("last", "snaive_day", "ha", "ha_slot")
    res = run(dataset, engine="polars", target=target, models=",".join((*base, "ridge")),
              horizons="1,3,6,12").summary
    m = res["models"]
    for h in ("1", "3", "6", "12"):
        best = min(m[b][h]["mae"] for b in base)
        # measured (seed 3): traffic 0.94, 0.93, 0.85, 0.92 and speed 0.96, 0.94, 0.91, 0.88
        # of the best baseline's MAE at h = 1, 3, 6, 12; the goal on real tables is 0.98
        assert m["ridge"][h]["mae"] < 0.98 * best, (h, m["ridge"][h]["mae"], best)


def test_cli_data_json_and_errors(dataset, tmp_path):
    r = CliRunner().invoke(cli, ["run", "flow", "--data", str(dataset), "--engine", "dask",
                                 "--models", "last,ha", "--horizons", "3", "--target", "stations",
                                 "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out["models"]) == {"last", "ha"} and out["target"] == "stations"
    assert out["interval_s"] == 900
    bad = CliRunner().invoke(cli, ["run", "flow", "--data", str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    bad = CliRunner().invoke(cli, ["run", "flow", "--data", str(dataset), "--engine", "dask",
                                   "--scheduler", "nonsense", "--models", "last", "--horizons", "1"])
    assert bad.exit_code == 2 and "unknown --scheduler" in bad.output


def test_speed_target_and_bad_target(dataset):
    res = run(dataset, target="speed", models="last,ha", horizons="1")
    assert res.summary["interval_s"] == 300 and res.answer["n"].min() > 0
    assert res.answer["mae"][0, 0] < 30  # km/h, not veh/h
    from uda.errors import UserError

    with pytest.raises(UserError, match="unknown --target"):
        run(dataset, target="bikes")


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    """40 sensors, one per traffic file, so blocks and their neighbours span files."""
    out = tmp_path_factory.mktemp("flow") / "files"
    res = CliRunner().invoke(cli, ["generate", "--scale", "tiny", "--sensors", "40", "--days", "7",
                                   "--seed", "5", "--tables", "traffic", "--chunk-rows", "2016",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("block_mb", [0.01, 64])
def test_blocks_give_the_whole_panel_answer(many_files, block_mb):
    """Streaming by blocks (neighbours from other blocks) equals scoring the whole panel at once."""
    from uda.forecasting.evaluation import evaluate
    from uda.forecasting.neighbours import csr_from_pairs
    from uda.forecasting.panel import Panel
    from uda.tasks.flow import TrafficLayout, sensor_pairs

    ds = open_dataset(many_files)
    layout = TrafficLayout.of(ds, block_mb=block_mb)
    assert len(ds.files("traffic")) == 40
    assert len(layout.blocks) == (40 if block_mb < 1 else 8)
    ids, Y, t0 = traffic_panel_polars(ds)
    indptr, indices = csr_from_pairs(*sensor_pairs(ds), ids)
    # neighbours really cross block boundaries, so the halo exchange is exercised
    owner = np.searchsorted(layout.lo, ids[np.repeat(np.arange(len(ids)), np.diff(indptr))], "right")
    assert (owner != np.searchsorted(layout.lo, ids[indices], "right")).any()
    panel = Panel(Y, [str(i) for i in ids], np.datetime64(int(t0), "ms").astype("datetime64[s]"), 300,
                  indptr, indices)
    models = "last,ha,ridge,ridge_sp"
    whole = evaluate(panel, models=models, horizons="1,3")["models"]
    for engine in ("polars", "dask"):
        got = run(many_files, engine=engine, models=models, horizons="1,3", block_mb=block_mb).summary
        for m in whole:
            for h in ("1", "3"):
                assert got["models"][m][h]["n"] == whole[m][h]["n"]
                np.testing.assert_allclose(got["models"][m][h]["mae"], whole[m][h]["mae"], rtol=1e-9)
                np.testing.assert_allclose(got["models"][m][h]["rmse"], whole[m][h]["rmse"], rtol=1e-9)


def test_block_size_must_be_positive(dataset):
    r = CliRunner().invoke(cli, ["run", "flow", "--data", str(dataset), "--block-mb", "0"])
    assert r.exit_code == 2 and "--block-mb must be positive" in r.output


@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_progress_counts_blocks(many_files, engine):
    steps = []
    run(many_files, engine=engine, models="last", horizons="1", progress=lambda *a: steps.append(a))
    assert steps[0] == ("fitting blocks", 0, 8)
    assert [s[1] for s in steps] == list(range(9))


def test_file_ranges_from_footers_or_data(tmp_path):
    """Block planning reads per-file bounds from Parquet statistics, or the data without them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from uda.errors import UserError
    from uda.store import Dataset

    t = pa.table({"sensor_id": pa.array([5, 3, 9], pa.int32())})
    pq.write_table(t, tmp_path / "a.parquet")
    pq.write_table(t, tmp_path / "b.parquet", write_statistics=False)
    assert pq.ParquetFile(tmp_path / "b.parquet").metadata.row_group(0).column(0).statistics is None
    files = [{"path": n, "bytes": (tmp_path / n).stat().st_size, "rows": 3} for n in ("a.parquet", "b.parquet")]
    ds = Dataset(tmp_path, {"tables": {"traffic": {"files": files}}})
    assert ds.file_ranges("traffic", "sensor_id") == ([3, 3], [9, 9], [3, 3])
    with pytest.raises(UserError, match="has no column 'ts'"):
        ds.file_ranges("traffic", "ts")


def test_one_week_of_speeds_as_a_wide_table_with_adjacency(tmp_path):
    """The failing regime of issue #13: a week of 5-minute speeds from the generator, exported
    as a wide CSV with its road adjacency, run as a user would. The previous ridge lost to the
    last value by about 50 % here; measured now: 0.94, 0.93, 0.93 of the best baseline."""
    import numpy as np
    import polars as pl

    out = tmp_path / "week"
    res = CliRunner().invoke(cli, ["generate", "--scale", "tiny", "--sensors", "40", "--days", "7",
                                   "--seed", "5", "--tables", "traffic", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ds = open_dataset(out)
    ids, Y, t0 = traffic_panel_polars(ds, column="speed")
    ts = (np.datetime64(int(t0), "ms") + np.arange(Y.shape[1]) * np.timedelta64(300, "s"))
    wide = pl.DataFrame({"timestamp": ts}).with_columns(
        [pl.Series(str(s), Y[k]) for k, s in enumerate(ids)])
    wide.write_csv(tmp_path / "speed.csv")
    a, b = sensor_pairs(ds)
    pos = {int(s): k for k, s in enumerate(ids)}
    A = np.zeros((len(ids), len(ids)), dtype=int)
    for x, y in zip(a, b, strict=True):
        A[pos[int(x)], pos[int(y)]] = 1
    np.savetxt(tmp_path / "adj.csv", A, fmt="%d", delimiter=",")
    base = ("last", "snaive_day", "ha", "ha_slot")
    res = CliRunner().invoke(cli, ["run", "flow", "--wide", str(tmp_path / "speed.csv"), "--interval",
                                   "5min", "--adjacency", str(tmp_path / "adj.csv"), "--models",
                                   ",".join((*base, "ridge", "ridge_st")), "--horizons", "3,6,12",
                                   "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)["models"]
    for h in ("3", "6", "12"):
        best = min(m[x][h]["mae"] for x in base)
        assert m["ridge"][h]["mae"] < 0.98 * best, (h, m["ridge"][h]["mae"], best)
        assert m["ridge_st"][h]["mae"] < 0.98 * best, (h, m["ridge_st"][h]["mae"], best)


def test_cli_defaults_are_the_task_defaults():
    from uda.cli.run_flow import flow as flow_cmd
    from uda.forecasting.protocol import DEFAULT_HORIZONS
    from uda.forecasting.registry import DEFAULT_MODELS
    from uda.tasks.flow import DEFAULT_BLOCK_MB

    defaults = {p.name: p.default for p in flow_cmd.params}
    assert defaults["block_mb"] == DEFAULT_BLOCK_MB
    assert defaults["models"] == DEFAULT_MODELS and defaults["horizons"] == DEFAULT_HORIZONS
