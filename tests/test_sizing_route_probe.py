"""The probe of route's network stages on a target city's street network (``uda size``)."""

from __future__ import annotations

import numpy as np
import pytest

from uda.harness.sizing import models, probes
from uda.harness.sizing.check import check
from uda.harness.sizing.probes import (
    city_network,
    iterations_to_gap,
    probe_network,
    probe_options,
    with_probe,
)


def test_the_probe_builds_the_generated_citys_network_without_its_data(week_dataset):
    from uda.routing.network import read_city
    from uda.store import open_dataset

    # the week dataset has 40 stations, 6 districts and seed 7; the probe's city has the tiny
    # preset's few stations and sites: the streets, zones, population and jobs are the same
    want = read_city(open_dataset(week_dataset))
    got = city_network(200, seed=7)
    for name in ("node_id", "link_id", "zone_ids", "tail", "head", "length_m", "free_speed_kmh",
                 "capacity_vph", "centroid", "population", "jobs"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert not np.array_equal(city_network(200, seed=8).length_m, want.length_m)


def test_the_probe_runs_the_tasks_own_stages(tiny_dataset):
    from uda.tasks import route

    res = route.run(tiny_dataset, engine="polars")
    probe, why = probe_network(24, seed=1, budget_s=60)
    assert why == "" and probe is not None
    assert probe.iterations == res.quality["iterations"] and probe.iterations_source == "measured"
    assert (probe.zones, probe.links) == (res.summary["zones"], res.summary["links"])
    assert set(probe.stages) == set(models.NETWORK_STAGES) <= set(res.summary["stage_seconds"])
    assert probe.wall_s > 0 and probe.cpu_s >= 0 and 1 <= probe.runs <= probes.REPEATS
    capped, _ = probe_network(24, seed=1, options={"max_iter": 3}, budget_s=60)
    assert capped.iterations == 3


def test_past_its_budget_the_probe_extrapolates_the_iterations():
    city = city_network(24, seed=1)
    from uda.kernels.assign import warm_up

    warm_up()
    net0 = city.network(city.free_flow_time_s, city.centroid)
    wall, cpu, its, source, stages = probes._stages(city, net0, {}, deadline=0.0)  # stops after 4 gaps
    assert source == "extrapolated" and 4 <= its <= 500
    assert wall >= sum(stages.values()) and cpu >= 0


def test_iterations_to_gap_solves_a_power_law():
    gaps = [0.5 * (i + 1) ** -1.5 for i in range(8)]
    n = iterations_to_gap(gaps, 1e-4, 1000)
    assert n == pytest.approx((0.5 / 1e-4) ** (1 / 1.5) - 1, abs=1)
    assert iterations_to_gap(gaps, 1e-4, 50) == 50  # capped at max_iter
    assert iterations_to_gap([0.1, 0.1, 0.1, 0.1], 1e-4, 77) == 77  # not converging
    assert iterations_to_gap([0.1, 1e-5], 1e-4, 77) == 1  # already there


def test_probe_options_and_when_the_probe_does_not_run():
    assert probe_options({"od": "taps"}) is None
    assert probe_options({"max_iter": 20, "slot_minutes": 30}) == {"max_iter": 20}
    probe, why = probe_network(24, options={"od": "taps"})
    assert probe is None and "smart-card" in why
    probe, why = probe_network(2000, budget_s=0.0)  # one loading alone is beyond the budget
    assert probe is None and "budget" in why
    sizes = {"sensors": 24.0, "iterations": 4.0}
    assert with_probe(sizes, "flow", {}, {}, 60) == (sizes, None)
    assert with_probe(sizes, "route", {}, {}, 0) == (sizes, None)
    probed, info = with_probe(sizes, "route[max_iter=3]", {"params": {"seed": 1}}, {"max_iter": 3}, 60)
    assert info["probed"] and probed["iterations"] == 3 and probed["probe_wall_s"] == info["wall_s"]
    assert sizes == {"sensors": 24.0, "iterations": 4.0}  # a copy


def _route_results(tmp_path, name: str, scales: dict[str, tuple[int, int]], network_s: float) -> str:
    """Route cases whose time is 0.1 s + 20 ns per row + ``network_s`` in the network stages."""
    from uda.harness.results import SCHEMA, SCHEMA_VERSION

    cases, datasets = [], {}
    for scale, (sensors, days) in scales.items():
        grid = models.street_grid(sensors)
        rows = sensors * days * 288
        datasets[f"{scale}-seed1"] = {
            "scale": scale, "params": {"sensors": sensors, "days": days, "seed": 1, "districts": 4},
            "tables": {"traffic": {"rows": rows, "bytes": rows * 4}, "sensors": {"rows": sensors, "bytes": 1},
                       "links": {"rows": int(grid["links"]), "bytes": 1}, "zones": {"rows": int(grid["zones"]),
                                                                                  "bytes": 1}}}
        wall = 0.1 + 2e-8 * rows + network_s
        warm = [{"wall_s": wall, "cpu_s": wall, "peak_rss_bytes": 2e8}] * 2
        cases.append({"id": f"route/polars/{scale}", "task": "route", "engine": "polars", "scheduler": None,
                      "scale": scale, "dataset": f"{scale}-seed1", "options": {}, "status": "ok", "rows_in": rows,
                      "limits": {}, "cold": warm[0], "warm": warm, "quality": {"iterations": 3.0},
                      "task_summary": {"stage_seconds": {"travel_times": 2e-8 * rows, "od": network_s / 4,
                                                         "assignment": network_s / 2, "sites": network_s / 4}},
                      "summary": {"wall_s_median": wall, "cpu_s_median": wall, "peak_rss_bytes": 2e8, "n_warm": 2}})
    res = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": name,
           "created_utc": "2026-12-05T02:00:00+00:00", "machine": {"cpu_model": "x", "cpu_affinity": 2},
           "datasets": datasets, "cases": cases}
    p = tmp_path / f"{name}.json"
    p.write_text(__import__("json").dumps(res))
    return str(p)


def test_check_and_size_use_the_probe_and_say_so(tmp_path):
    from click.testing import CliRunner

    from uda.cli.main import cli

    sweep = _route_results(tmp_path, "sweep", {"tiny": (24, 7), "s80": (80, 7), "small": (200, 7)}, 0.01)
    held = _route_results(tmp_path, "validate", {"mid": (600, 7)}, 0.01)
    out = check(results=[sweep], against=[held], probe_s=30)
    (row,) = out["rows"]
    probe = row["probe"]
    assert probe["probed"] and probe["zones"] == 36 and probe["iterations"] == 4  # the mid network's own count
    rest = 0.1 + 2e-8 * 600 * 7 * 288
    assert row["wall_s"]["predicted"] == pytest.approx(rest + probe["wall_s"], rel=1e-6)
    assert row["cpu_s"]["predicted"] == pytest.approx(rest + probe["cpu_s"], rel=1e-6)
    assert any("measured at mid by a probe" in n for n in out["notes"])
    fitted = check(results=[sweep], against=[held], probe_s=0)
    assert "probe" not in fitted["rows"][0] and not fitted["notes"]
    res = CliRunner().invoke(cli, ["size", "--sensors", "600", "--days", "7", "--results", sweep])
    assert res.exit_code == 0, res.output
    assert "network stages (gravity OD, assignment, sites) measured at the city by a probe" in res.output
    res = CliRunner().invoke(cli, ["size", "--sensors", "600", "--days", "7", "--results", sweep, "--check", held,
                                   "--probe-seconds", "0"])
    assert res.exit_code == 0 and "CPU measured s" in res.output and "probe" not in res.output


@pytest.mark.parametrize("sensors", [-5.0, float("nan"), 1e12])
def test_no_probe_for_a_city_the_generator_cannot_build(sensors):
    sizes, info = with_probe({"sensors": sensors, "iterations": 4.0}, "route", {}, {}, 60)
    assert info == {"probed": False, "reason": f"{sensors:g} sensors is no city the generator builds"}
    assert "probe_wall_s" not in sizes


def test_iterations_to_gap_flat_history_or_unreachable_target_is_max_iter():
    # a gap that has flattened out (slope just below 0) must not overflow; a target of 0 is never reached
    assert iterations_to_gap([1e-2, 0.9999e-2, 0.9998e-2, 0.99975e-2], 1e-4, 500) == 500
    assert iterations_to_gap([1.0, 0.5, 0.3, 0.2], 0.0, 500) == 500
