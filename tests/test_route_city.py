"""Route task on a generated city: Polars and Dask agree, travel times match a pandas reference."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.errors import UserError
from uda.generate import generate
from uda.routing.od import gravity_od
from uda.scales import resolve_scale
from uda.store import open_dataset
from uda.tasks.base import compare_answers
from uda.tasks.route import run, tap_trips_dask, tap_trips_polars


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """Two days of the tiny city, traffic split over several files (several Dask partitions)."""
    out = tmp_path_factory.mktemp("route") / "city"
    generate(out, scale=resolve_scale("tiny", days=2), seed=3, workers=2, chunk_rows=4000,
             tables=("traffic",))
    return out


@pytest.fixture(scope="module")
def results(city):
    return {e: run(city, engine=e, sites=3) for e in ("polars", "dask")}


def test_engines_agree(city, results):
    assert len(open_dataset(city).files("traffic")) > 1
    assert compare_answers(results["polars"].answer, results["dask"].answer, rtol=1e-9) == []
    q = results["polars"].quality
    assert q["relative_gap"] <= 1e-4 and q["converged"] == 1.0


def test_travel_times_match_pandas_reference(city, results):
    ds = open_dataset(city)
    traffic = pd.concat([pd.read_parquet(p) for p in ds.files("traffic")])
    sensors = ds.read("sensors").to_pandas()
    links = ds.read("links").sort("link_id").to_pandas()
    df = traffic.merge(sensors[["sensor_id", "link_id"]], on="sensor_id")
    df = df[df["speed"] > 0]
    df["slot"] = df["ts"].dt.hour
    ref = df.assign(pace=3.6 / df["speed"].astype(float)).groupby(["link_id", "slot"])["pace"].mean()
    tt = results["polars"].answer["link_travel_time_s"]
    assert tt.shape == (len(links), 24)
    length = links.set_index("link_id")["length_m"].astype(float)
    for (link, slot), pace in ref.items():
        assert tt[links.index[links["link_id"] == link][0], slot] == pytest.approx(length[link] * pace, rel=1e-9)
    # Links without sensors fall back to free-flow travel time.
    free = links["length_m"].astype(float) / (links["free_speed_kmh"].astype(float) / 3.6)
    no_sensor = ~links["link_id"].isin(sensors["link_id"]).to_numpy()
    assert no_sensor.any()
    np.testing.assert_allclose(tt[no_sensor], np.repeat(free.to_numpy()[no_sensor, None], 24, axis=1), rtol=1e-6)


def test_flow_conservation_and_od(city, results):
    ds = open_dataset(city)
    zones = ds.read("zones").sort("zone_id")
    links = ds.read("links").sort("link_id")
    r = results["polars"]
    demand, flow = r.answer["od_demand"], r.answer["link_flow"]
    n = ds.read("nodes").height
    balance = (np.bincount(links["from_node"].to_numpy(), flow, n) - np.bincount(links["to_node"].to_numpy(), flow, n))
    centroid = zones["centroid_node"].to_numpy()
    expected = np.bincount(centroid, demand.sum(axis=1), n) - np.bincount(centroid, demand.sum(axis=0), n)
    np.testing.assert_allclose(balance, expected, atol=1e-6 * demand.sum())
    # Gravity: productions follow population, no intrazonal trips.
    np.testing.assert_allclose(demand.sum(axis=1), 0.2 * zones["population"].to_numpy(), rtol=1e-6)
    assert np.all(np.diag(demand) == 0)
    assert len(r.answer["sites"]) == 3


def test_gravity_model_is_doubly_constrained():
    rng = np.random.default_rng(2)
    cost = rng.uniform(60, 1200, (6, 6))
    o, d = rng.uniform(10, 100, 6), rng.uniform(10, 100, 6)
    t = gravity_od(o, d, cost)
    np.testing.assert_allclose(t.sum(axis=1), o, rtol=1e-8)
    np.testing.assert_allclose(t.sum(axis=0), d * o.sum() / d.sum(), rtol=1e-6)
    assert np.all(np.diag(t) == 0)


def test_given_od_matrix_and_written_results(city, tmp_path):
    zones = open_dataset(city).read("zones").sort("zone_id")["zone_id"].to_list()
    od = tmp_path / "od.csv"
    od.write_text(f"origin_zone,dest_zone,flow\n{zones[0]},{zones[-1]},100\n{zones[1]},{zones[2]},50.5\n")
    out = tmp_path / "res"
    r = run(city, od=od, out=out, sites=2)
    assert r.answer["od_demand"].sum() == 150.5
    assert r.answer["od_demand"][0, -1] == 100
    flows = pd.read_csv(out / "link_flows.csv")
    assert list(flows.columns[:4]) == ["link_id", "init_node", "term_node", "flow"]
    np.testing.assert_allclose(flows["flow"], r.answer["link_flow"])
    assert set(pd.read_parquet(out / "link_travel_times.parquet")["source"]) == {"sensor", "free_flow"}
    assert json.loads((out / "summary.json").read_text())["quality"]["relative_gap"] <= 1e-4


@pytest.mark.parametrize(("body", "needle"), [
    ("origin_zone,dest_zone,flow\n0,99999,1\n", "zone 99999 is not a zone of the dataset"),
    ("origin_zone,dest_zone,flow\n0,1,-1\n", "flows must be finite and >= 0"),
    ("a,b\n1,2\n", "lacks columns origin_zone, dest_zone, flow"),
])
def test_bad_od_matrix(city, tmp_path, body, needle):
    od = tmp_path / "od.csv"
    od.write_text(body)
    with pytest.raises(UserError, match=needle):
        run(city, od=od)


def test_cli_data_json_and_errors(city, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["run", "route", "--data", str(city), "--engine", "dask", "--scheduler", "sync",
                              "--sites", "2", "--out", str(tmp_path / "r"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["engine"] == "dask" and data["quality"]["relative_gap"] <= 1e-4 and len(data["sites"]) == 2
    res = runner.invoke(cli, ["run", "route", "--data", str(city)])
    assert res.exit_code == 0, res.output
    assert "relative gap" in res.output and "sites" in res.output
    for args, needle in [
        (["--data", str(city), "--slot-minutes", "7"], "--slot-minutes 7 must be a positive divisor of 1440"),
        (["--data", str(city), "--slot", "24"], "--slot 24 is outside 0..23"),
        (["--data", str(city), "--tntp", "x"], "give either --data or --tntp, not both"),
        (["--data", str(tmp_path / "none")], "does not exist"),
        (["--data", str(city), "--sites", "0"], "--sites 0 must be >= 1"),
        (["--data", str(city), "--sites", "1000"], "--sites 1000 exceeds the"),
        (["--data", str(city), "--engine", "dask", "--scheduler", "bogus"], "unknown --scheduler 'bogus'"),
        (["--data", str(city), "--out", str(city / "manifest.json")], "is a file; give a folder"),
    ]:
        res = runner.invoke(cli, ["run", "route", *args])
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.stderr


def test_tap_trips_match_truth_and_engines_agree(tiny_dataset):
    ds = open_dataset(tiny_dataset)
    a, days_a = tap_trips_polars(ds)
    b, days_b = tap_trips_dask(ds)
    assert a.equals(b) and days_a == days_b == 7
    truth = ds.read("trips").to_pandas()
    truth = truth[truth["t_in"].dt.date == truth["t_out"].dt.date]
    expected = truth.groupby(["origin", "dest"]).size()
    got = a.to_pandas().groupby(["origin_station", "dest_station"])["trips"].sum()
    assert got.to_dict() == expected.to_dict()
    # Without day ranges in the manifest, Dask shuffles by card first: same answer.
    for f in ds.table("taps")["files"]:
        f.pop("day_min", None)
    c, _ = tap_trips_dask(ds)
    assert a.equals(c)


def test_od_from_taps(tiny_dataset):
    r = {e: run(tiny_dataset, engine=e, od="taps", sites=2) for e in ("polars", "dask")}
    assert compare_answers(r["polars"].answer, r["dask"].answer, rtol=1e-9) == []
    zones = open_dataset(tiny_dataset).read("zones")
    demand = r["polars"].answer["od_demand"]
    assert demand.sum() == pytest.approx(0.2 * zones["population"].sum())
    assert np.all(np.diag(demand) == 0) and r["polars"].summary["od_source"] == "taps"
    assert r["polars"].quality["relative_gap"] <= 1e-4
