"""``uda size``: fits on measured sweeps, held-out error, city mapping and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.errors import UserError
from uda.harness.results import SCHEMA, SCHEMA_VERSION
from uda.harness.sizing import fit_affine, fit_power, parse_duration, size

SCALES = {"tiny": 20, "small": 200, "mid": 600, "medium": 2000}  # sensors; 7 days at 5 min


def _ds(scale: str, sensors: int) -> dict:
    rows = {"traffic": sensors * 7 * 288, "taps": sensors // 2 * 7 * 300, "water": sensors // 4 * 7 * 96}
    return {"scale": scale, "params": {"sensors": sensors, "days": 7, "stations": sensors // 2,
                                       "water_sites": sensors // 4, "water_interval_s": 900},
            "tables": {t: {"rows": r, "bytes": r * 4} for t, r in rows.items()}}


def _sweep(tmp_path, scales=SCALES) -> str:
    cases, datasets = [], {}
    for scale, sensors in scales.items():
        ds = _ds(scale, sensors)
        datasets[f"{scale}-seed1"] = ds
        traffic = ds["tables"]["traffic"]["rows"]
        water = ds["tables"]["water"]["rows"]
        for task, rows in (("flow", traffic + 500), ("water", water + 50)):
            wall = 2e-6 * rows**1.1
            mem = 2e8 + 300.0 * rows
            warm = [{"wall_s": wall, "cpu_s": 1.5 * wall, "peak_rss_bytes": mem}] * 3
            cases.append({"id": f"{task}/polars/{scale}", "task": task, "engine": "polars",
                          "scheduler": None, "scale": scale, "dataset": f"{scale}-seed1", "options": {},
                          "status": "ok", "rows_in": rows, "cold": warm[0], "warm": warm,
                          "summary": {"wall_s_median": wall, "cpu_s_median": 1.5 * wall,
                                      "peak_rss_bytes": mem, "n_warm": 3}})
    res = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": "sweep",
           "created_utc": "2026-11-21T07:00:00+00:00", "machine": {"cpu_model": "x", "cpu_affinity": 2},
           "datasets": datasets, "cases": cases}
    p = tmp_path / "sweep.json"
    p.write_text(json.dumps(res))
    return str(p)


def test_fits_recover_exact_laws():
    x = np.array([1e3, 1e4, 1e5])
    p = fit_power(x, 3.0 * x**0.8)
    assert p.b == pytest.approx(0.8) and p.a == pytest.approx(3.0)
    a = fit_affine(x, 5.0 + 2.0 * x)
    assert a.a == pytest.approx(5.0) and a.b == pytest.approx(2.0)


def test_size_predicts_from_a_sweep(tmp_path):
    out = size(sensors=4000, days=14, interval_s=300, deadline_s=3600, results=[_sweep(tmp_path)],
               time_model="power")
    by_task = {e["task"]: e for e in out["estimates"]}
    flow, water = by_task["flow"], by_task["water"]
    assert flow["family"] == "traffic" and water["family"] == "water"
    # the input grows with the traffic table: 4000 x 14 x 288 vs 2000 x 7 x 288
    assert flow["rows_in"] == pytest.approx((2000 * 7 * 288 + 500) * 4)
    assert flow["wall_s"] == pytest.approx(2e-6 * flow["rows_in"] ** 1.1, rel=1e-6)
    assert flow["peak_rss_bytes"] == pytest.approx(2e8 + 300 * flow["rows_in"], rel=1e-6)
    assert flow["cores"] == max(1, int(np.ceil(flow["cpu_s"] / 3600)))
    held = flow["held_out"]
    assert held["held_out_scale"] == "medium" and held["fitted_on"] == ["tiny", "small", "mid"]
    assert abs(held["wall_s"]["relative_error"]) < 1e-6
    assert abs(held["peak_rss_bytes"]["relative_error"]) < 1e-6
    st = out["storage"]
    assert st["bytes_per_day"]["traffic"] == pytest.approx(4000 * 288 * 4)
    assert st["total_bytes"] == pytest.approx(st["total_bytes_per_day"] * 14)


def test_affine_time_model_states_its_held_out_error(tmp_path):
    out = size(sensors=4000, days=14, interval_s=300, deadline_s=3600, results=[_sweep(tmp_path)])
    flow = next(e for e in out["estimates"] if e["task"] == "flow")
    assert flow["fits"]["wall_s"]["model"] == "affine"
    held = flow["held_out"]["wall_s"]
    # time grows as rows**1.1: a straight line through the smaller scales underestimates
    assert -0.3 < held["relative_error"] < 0
    assert held["predicted"] == pytest.approx(flow["held_out"]["wall_s"]["measured"] * (1 + held["relative_error"]))


def test_held_out_scale_is_strictly_the_largest_input(tmp_path):
    path = _sweep(tmp_path, {"tiny": 20, "small": 200, "medium": 2000})
    res = json.loads(open(path).read())
    dup = [dict(c, id=c["id"].replace("medium", "copy"), scale="copy") for c in res["cases"]
           if c["scale"] == "medium"]
    res["cases"] += dup
    open(path, "w").write(json.dumps(res))
    out = size(sensors=100, days=7, interval_s=300, deadline_s=60, results=[path])
    held = out["estimates"][0]["held_out"]
    assert held["fitted_on"] == ["tiny", "small"] and held["held_out_scale"] in ("medium, copy", "copy, medium")


def test_two_scales_fit_but_have_no_held_out_error(tmp_path):
    path = _sweep(tmp_path, {"tiny": 20, "small": 200})
    out = size(sensors=100, days=7, interval_s=300, deadline_s=60, results=[path])
    assert all(e["held_out"] is None for e in out["estimates"])


def test_size_command_json(tmp_path):
    res = CliRunner().invoke(cli, ["size", "--sensors", "4000", "--days", "14", "--interval", "5min",
                                   "--deadline", "1h", "--results", _sweep(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {e["task"] for e in out["estimates"]} == {"flow", "water"}


@pytest.mark.parametrize(("text", "seconds"), [("5min", 300), ("15 min", 900), ("1h", 3600),
                                                ("2d", 172800), ("30", 30), ("0.5h", 1800)])
def test_parse_duration(text, seconds):
    assert parse_duration(text, option="--interval") == seconds


@pytest.mark.parametrize(("args", "message"), [
    (["--sensors", "0", "--days", "1"], "must both be positive"),
    (["--sensors", "10", "--days", "-3"], "must both be positive"),
    (["--sensors", "10", "--days", "1", "--interval", "fast"], "is not a duration"),
    (["--sensors", "10", "--days", "1", "--interval", "2d"], "longer than a day"),
    (["--sensors", "10", "--days", "1", "--deadline", "0min"], "must be longer than zero"),
    (["--sensors", "10", "--days", "1", "--stations", "0"], "--stations 0 must be positive"),
])
def test_impossible_size_parameters_exit_2(tmp_path, args, message):
    res = CliRunner().invoke(cli, ["size", *args, "--results", _sweep(tmp_path)])
    assert res.exit_code == 2, res.output
    assert message in res.output and len(res.output.strip().splitlines()) == 1


def test_size_without_measurements_exit_2(tmp_path):
    res = CliRunner().invoke(cli, ["size", "--sensors", "10", "--days", "1", "--results", str(tmp_path)])
    assert res.exit_code == 2 and "run a scale sweep first" in res.output
    res = CliRunner().invoke(cli, ["size", "--sensors", "10", "--days", "1", "--results",
                                   str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in res.output
    with pytest.raises(UserError):
        size(sensors=1, days=1, interval_s=300, deadline_s=1, results=[str(tmp_path)])


def test_datasets_with_department_feeds_map_to_families():
    from uda.harness.sizing import _family_bytes_per_row, _family_rows

    ds = {"tables": {"true_traffic": {"rows": 1000, "bytes": 4000},
                     "feed_taps_d000_v0": {"rows": 30, "bytes": 300},
                     "feed_taps_d001_v0": {"rows": 70, "bytes": 700},
                     "water": {"rows": 10, "bytes": 50}}}
    assert _family_rows(ds) == {"traffic": 1000, "taps": 100, "water": 10}
    assert _family_bytes_per_row(ds) == {"traffic": 4.0, "taps": 10.0, "water": 5.0}


def test_curves_for_the_report(tmp_path):
    from uda.harness.results import load_results
    from uda.harness.sizing import curves

    cs = curves([load_results(_sweep(tmp_path))])
    assert {(c.task, c.metric) for c in cs} == {(t, m) for t in ("flow", "water") for m in ("wall_s", "peak_bytes")}
    mem = next(c for c in cs if c.task == "flow" and c.metric == "peak_bytes")
    assert [v for _, v in mem.points] == pytest.approx([2e8 + 300.0 * r for r, _ in mem.points])
    x = np.array([r for r, _ in mem.points])
    assert mem.predict(x) == pytest.approx(2e8 + 300.0 * x, rel=1e-6)
    rows, measured, predicted = mem.heldout
    assert rows == max(x) and predicted == pytest.approx(measured, rel=1e-6)
