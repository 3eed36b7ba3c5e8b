"""``uda size``: design models fitted on synthetic sweeps, held-out error, cores, checks and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.errors import UserError
from uda.harness.results import SCHEMA, SCHEMA_VERSION, load_results
from uda.harness.sizing import fitting, models
from uda.harness.sizing.check import check, reference_points
from uda.harness.sizing.city import parse_duration, preset_size, size, units_for
from uda.harness.sizing.fitting import fit_terms
from uda.harness.sizing.models import TERMS, dataset_sizes, street_grid

# (sensors, days, districts) per scale; the mid scale has its own days like the real sweep
SCALES = {"tiny": (24, 7, 4), "small": (200, 14, 6), "mid": (600, 21, 8)}
# exact laws in the models' own terms: time = fixed + per row + per series; memory by task design
TIME = {"flow": {"fixed": 0.8, "rows": 2e-6, "series": 1e-3}, "utilisation": {"fixed": 0.8, "rows": 2e-6}}
MEMORY = {"flow": {"fixed": 2e8, "blocks in flight": 160.0, "neighbour blocks held": 8.0},
          "utilisation": {"fixed": 3e8, "groups in flight": 120.0, "sensor-days": models.SENSOR_DAY_BYTES}}


def _ds(scale: str, sensors: int, days: int, districts: int) -> dict:
    grid = street_grid(sensors)
    rows = {"traffic": sensors * days * 288, "taps": sensors // 2 * days * 300,
            "water": max(2, sensors // 8) * days * 96}
    tables = {t: {"rows": r, "bytes": r * 4} for t, r in rows.items()}
    tables.update(sensors={"rows": sensors, "bytes": 10}, links={"rows": int(grid["links"]), "bytes": 10},
                  zones={"rows": int(grid["zones"]), "bytes": 10}, districts={"rows": districts, "bytes": 10})
    return {"scale": scale, "params": {"sensors": sensors, "days": days, "stations": sensors // 2,
                                       "water_sites": max(2, sensors // 8), "water_interval_s": 900,
                                       "districts": districts},
            "tables": tables}


def _law(terms: dict[str, float], sizes: dict[str, float]) -> float:
    return sum(c * TERMS[n].size(sizes) for n, c in terms.items())


def _case(task: str, engine: str, scale: str, ds: dict, *, scheduler=None, cores=None, slow=1.0) -> dict:
    sizes = dataset_sizes(ds)
    sizes["rows"] = float(ds["tables"]["traffic"]["rows"])
    sizes["iterations"] = 1.0
    sizes["flow_in_flight"] = models.flow_in_flight(engine)
    wall = _law(TIME[task], sizes) * slow
    mem = _law(MEMORY[task], sizes)
    warm = [{"wall_s": wall, "cpu_s": 1.5 * wall, "peak_rss_bytes": mem}] * 2
    eng = engine if scheduler is None else f"{engine}-{scheduler}"
    cid = f"{task}/{eng}/{scale}" + (f"/cores={cores}" if cores else "")
    return {"id": cid, "task": task, "engine": engine, "scheduler": scheduler, "scale": scale,
            "dataset": f"{scale}-seed1", "options": {}, "status": "ok", "rows_in": int(sizes["rows"]),
            "limits": {"cores": cores}, "cold": warm[0], "warm": warm,
            "summary": {"wall_s_median": wall, "cpu_s_median": 1.5 * wall, "peak_rss_bytes": mem, "n_warm": 2}}


def _write(tmp_path, name: str, scales=SCALES, *, efficiency=False, tasks=("flow", "utilisation")) -> str:
    cases, datasets = [], {}
    for scale, (sensors, days, districts) in scales.items():
        ds = _ds(scale, sensors, days, districts)
        datasets[f"{scale}-seed1"] = ds
        for task in tasks:
            cases.append(_case(task, "polars", scale, ds))
            cases.append(_case(task, "dask", scale, ds, scheduler="threads"))
    if efficiency:
        small = datasets["small-seed1"]
        for task in tasks:  # one core 1.6x slower (p = 0.75); LocalCluster 1 -> 2 workers 1.5x faster
            cases.append(_case(task, "polars", "small", small, cores=1, slow=1.6))
            cases.append(_case(task, "dask", "small", small, scheduler="threads", cores=1, slow=1.6))
            cases.append(_case(task, "dask", "small", small, scheduler="local:1", slow=1.5))
            cases.append(_case(task, "dask", "small", small, scheduler="local:2", slow=1.0))
    res = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": name,
           "created_utc": "2026-11-21T07:00:00+00:00", "machine": {"cpu_model": "x", "cpu_affinity": 2},
           "datasets": datasets, "cases": cases}
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(res))
    return str(p)


def test_fit_terms_recovers_an_exact_law_and_drops_terms_that_do_not_vary():
    sizes = [{"rows": r, "sensors": s} for r, s in ((1e3, 10), (5e4, 40), (2e5, 300), (9e5, 500))]
    y = np.array([0.8 + 2e-6 * s["rows"] + 1e-3 * s["sensors"] for s in sizes])
    m = fit_terms(("fixed", "rows", "series"), sizes, y)
    assert m.coef == pytest.approx([0.8, 2e-6, 1e-3], rel=1e-6)
    assert m.dominant({"rows": 1e9, "sensors": 10})[0] == "rows"
    flat = [dict(s, sensors=7) for s in sizes]
    m = fit_terms(("fixed", "rows", "series"), flat, np.array([0.8 + 2e-6 * s["rows"] for s in flat]))
    assert m.coef[2] == 0 and m.coef[:2] == pytest.approx([0.8, 2e-6], rel=1e-6)


def test_generator_formulas_match_the_generated_city():
    from uda.generate import DEFAULT_CHUNK_ROWS
    from uda.scales import PRESETS

    assert models.CHUNK_ROWS == DEFAULT_CHUNK_ROWS
    for name, n_links, n_zones in (("tiny", 224, 16), ("small", 528, 16)):  # the generated datasets' tables
        g = street_grid(PRESETS[name].sensors)
        assert (g["nodes"], g["links"], g["zones"]) == (PRESETS[name].grid_side ** 2, n_links, n_zones)
    assert models.traffic_files(20_000, 180) == 527  # large: 38 sensors of 180 days per file


class _Files:
    """The traffic files the generator writes (whole sensors, at most CHUNK_ROWS rows each),
    as ``Dataset.file_ranges`` reports them, for ``TrafficLayout.of``."""

    path = "generated"

    def __init__(self, sensors: int, days: int, interval_s: int):
        per_sensor = days * 86400 // interval_s
        per_file = max(1, models.CHUNK_ROWS // per_sensor)
        self.lo = list(range(0, sensors, per_file))
        self.hi = [min(lo + per_file, sensors) - 1 for lo in self.lo]
        self.rows = [(hi - lo + 1) * per_sensor for lo, hi in zip(self.lo, self.hi, strict=True)]
        t0 = np.datetime64("2026-03-02T00:00", "ms")
        self.ts = (t0, t0 + np.timedelta64(days * 86400 - interval_s, "s"))

    def file_ranges(self, table: str, column: str):
        if column == "sensor_id":
            return self.lo, self.hi, self.rows
        return [self.ts[0]] * len(self.rows), [self.ts[1]] * len(self.rows), self.rows


@pytest.mark.parametrize("sensors", [1, 24, 200, 331, 600, 2000, 20_000])
@pytest.mark.parametrize("days", [1, 7, 21, 30, 180])
@pytest.mark.parametrize("interval_s", [60, 300, 900])
def test_flow_layout_is_the_task_s_own(sensors, days, interval_s):
    # the closed form gives the blocks flow's TrafficLayout builds from the generator's files:
    # how many, and the series x steps of the two largest
    from uda.tasks.flow import TrafficLayout

    layout = TrafficLayout.of(_Files(sensors, days, interval_s))
    series = sorted((int(h - lo + 1) for lo, h in zip(layout.lo, layout.hi, strict=True)), reverse=True)
    got = models.flow_layout({"sensors": sensors, "days": days, "traffic_rows": sensors * days * 86400 / interval_s})
    assert got["n_time"] == layout.n_time and got["blocks"] == len(layout.blocks)
    assert got["largest"] == series[0] * layout.n_time
    assert got["second"] == (series[1] if len(series) > 1 else 0) * layout.n_time


def test_flow_memory_follows_the_blocks_in_flight():
    # mid: two files of 330 and 270 sensors, one block each; medium: 8 x 231 + 152 sensors,
    # the 8-block minimum keeps a file per block; large: 2 files of 38 sensors per block
    mid = {"sensors": 600, "days": 21, "traffic_rows": 600 * 21 * 288}
    medium = {"sensors": 2000, "days": 30, "traffic_rows": 2000 * 30 * 288}
    large = {"sensors": 20_000, "days": 180, "traffic_rows": 20_000 * 180 * 288}
    block, held = TERMS["blocks in flight"].size, TERMS["neighbour blocks held"].size
    assert block(dict(mid, flow_in_flight=1.0)) == 330 * 6048  # Polars fits one block at a time
    assert block(dict(mid, flow_in_flight=2.0)) == (330 + 270) * 6048  # Dask: one per thread
    assert block(dict(medium, flow_in_flight=1.0)) == 231 * 8640 == block(dict(mid, flow_in_flight=1.0))
    assert block(dict(large, flow_in_flight=2.0)) == 2 * 76 * 51840
    # Polars keeps the raw series of the blocks ahead (8 bytes a value); Dask cuts out halos
    assert held(dict(mid, flow_in_flight=1.0)) == 330 * 6048 and held(dict(medium, flow_in_flight=1.0)) == 231 * 8640
    assert held(dict(medium, flow_in_flight=2.0)) == 0 and TERMS["neighbour blocks held"].known == 8.0
    assert held(dict(sensors=24, days=7, traffic_rows=24 * 7 * 288, flow_in_flight=1.0)) == 0


@pytest.mark.parametrize(("sensors", "days"), [(200, 14), (600, 21), (2000, 30), (800, 180), (5000, 180)])
def test_flow_blocks_held_on_polars_follow_the_neighbours_reach(sensors, days, monkeypatch):
    # the generated city's neighbour pairs, flow's own layout and plan, and evaluate_blocks'
    # own keeping of loaded blocks: the formula's count is the blocks held, or up to 2 more
    import weakref
    from dataclasses import replace

    from uda.city import build_city
    from uda.forecasting import evaluation
    from uda.harness.sizing.probes import _Tables
    from uda.scales import PRESETS
    from uda.tasks import flow

    city = build_city(replace(PRESETS["tiny"], name="t", sensors=sensors, days=1), 1)
    layout = flow.TrafficLayout.of(_Files(sensors, days, 300))
    plan = evaluation.Plan.of(layout.lo, layout.hi, flow.sensor_pairs(_Tables(city.tables)))
    live, most = [0], [0]

    def load(k):
        def make():
            y = np.zeros((int(layout.hi[k] - layout.lo[k] + 1), 4))
            live[0] += 1
            weakref.finalize(y, lambda: live.__setitem__(0, live[0] - 1))
            return np.arange(layout.lo[k], layout.hi[k] + 1), y
        return make

    def fit(block, halos, pairs, proto, cal, models):
        most[0] = max(most[0], live[0])
        return {"sums": {"m": 1}, "usable": 1, "dropped": np.empty(0, np.int64)}

    monkeypatch.setattr(evaluation, "fit_block", fit)
    monkeypatch.setattr(evaluation, "merge_block_sums", lambda parts: {})
    evaluation.evaluate_blocks([load(k) for k in range(len(layout.blocks))], plan, engine="polars", n_time=2016,
                         start=np.datetime64("2026-03-02T00:00"), interval_s=300, models=["last"],
                         horizons=np.array([1]), split=(0.7, 0.15, 0.15), origin_step=1)
    held = models.flow_held_blocks({"sensors": sensors, "days": days, "traffic_rows": sensors * days * 288})
    assert most[0] <= held <= most[0] + 2


def test_streaming_memory_is_not_proportional_to_rows(tmp_path):
    path = _write(tmp_path, "sweep")
    out = size(sensors=20_000, days=180, interval_s=300, deadline_s=3600, results=[path])
    est = {(e["task"], e["engine"]): e for e in out["estimates"]}
    util = est[("utilisation", "polars")]
    # the city's own sizes: 20,000 sensors x 180 days, groups capped at the chunk size
    assert util["sizes"]["traffic_rows"] == 20_000 * 180 * 288
    assert util["peak_rss_bytes"] == pytest.approx(_law(MEMORY["utilisation"], util["sizes"]), rel=1e-6)
    parts = {n: c * TERMS[n].size(util["sizes"]) for n, c in MEMORY["utilisation"].items()}
    assert util["peak_rss_bytes_dominant"]["term"] == max(parts, key=parts.get)
    assert util["peak_rss_bytes_dominant"]["share"] == pytest.approx(max(parts.values()) / sum(parts.values()))
    assert util["fits"]["peak_rss_bytes"]["terms"]["sensor-days"] == models.SENSOR_DAY_BYTES
    flow = est[("flow", "polars")]
    assert flow["peak_rss_bytes"] == pytest.approx(_law(MEMORY["flow"], flow["sizes"]), rel=1e-6)
    assert flow["wall_s"] == pytest.approx(_law(TIME["flow"], flow["sizes"]), rel=1e-6)
    assert flow["wall_s_dominant"]["term"] == "rows"
    # the same sweep fitted as a + b * rows predicts far more memory for the big city
    rows = size(sensors=20_000, days=180, interval_s=300, deadline_s=3600, results=[path], model="rows")
    big = {(e["task"], e["engine"]): e for e in rows["estimates"]}[("flow", "polars")]
    assert big["peak_rss_bytes"] > 5 * flow["peak_rss_bytes"]
    assert any("unverified" in n and "flow on polars" in n for n in out["notes"])
    held = flow["held_out"]
    assert held["held_out_scale"] == "mid" and held["fitted_on"] == ["tiny", "small"]
    # two sizes fit the fixed and the first term only (the per-series term is left out)
    assert 0 < abs(held["peak_rss_bytes"]["relative_error"]) < 0.05


def test_two_scales_fit_but_say_what_to_run_for_a_held_out_check(tmp_path):
    path = _write(tmp_path, "two", {k: SCALES[k] for k in ("tiny", "small")})
    out = size(sensors=100, days=7, interval_s=300, deadline_s=60, results=[path])
    assert all(e["held_out"] is None for e in out["estimates"])
    assert any("no held-out check" in n and "uda bench --suite sweep" in n for n in out["notes"])
    assert any("perfect scaling" in n for n in out["notes"])


def test_cores_and_cluster_come_from_measured_efficiency(tmp_path):
    path = _write(tmp_path, "eff", efficiency=True)
    out = size(sensors=4000, days=30, interval_s=300, deadline_s=60, results=[path])
    eff = out["efficiency"]["flow/polars"]
    assert eff["speedup"] == pytest.approx(1.6) and eff["parallel_fraction"] == pytest.approx(0.75)
    e = next(e for e in out["estimates"] if e["task"] == "flow" and e["engine"] == "polars")
    assert e["cores_basis"] == "measured"
    wall_1 = e["wall_s"] / (0.25 + 0.75 / 2)
    assert e["cores"] == units_for(wall_1, 0.75, 60)
    d = next(e for e in out["estimates"] if e["task"] == "flow" and e["engine"] == "dask-threads")
    cl = d["cluster"]
    p = out["efficiency"]["flow/dask-local"]["parallel_fraction"]
    assert p == pytest.approx(2 * (1 - 1 / 1.5))
    assert cl is None or cl["workers"] == units_for(d["wall_s"] * 1.5, p, 60)
    # one-core and cluster cases measure efficiency; they are not fitted as engines of their own
    assert {x["engine"] for x in out["estimates"]} == {"polars", "dask-threads"}


@pytest.mark.parametrize(("wall_1", "p", "deadline", "n"), [
    (50, 0.9, 60, 1), (100, 1.0, 60, 2), (100, 0.9, 60, 2), (100, 0.9, 50, 3), (1000, 0.9, 60, None), (100, 0.0, 60, None)])
def test_units_for_follows_amdahl(wall_1, p, deadline, n):
    assert units_for(wall_1, p, deadline) == n
    if n:
        assert wall_1 * ((1 - p) + p / n) <= deadline + 1e-9


def test_check_predicts_a_scale_the_fit_never_saw(tmp_path):
    fit = _write(tmp_path, "sweep")
    medium = _write(tmp_path, "validate", {"medium": (2000, 30, 12)})
    out = check(results=[fit, medium], against=[medium])  # medium is taken out of the fit
    assert {r["scale"] for r in out["rows"]} == {"medium"}
    assert all(r["fitted_on"] == ["tiny", "small", "mid"] for r in out["rows"])
    assert out["worst_factor"]["peak_rss_bytes"] == pytest.approx(1.0, rel=1e-6)
    assert out["worst_factor"]["wall_s"] == pytest.approx(1.0, rel=1e-6)
    res = CliRunner().invoke(cli, ["size", "--results", fit, "--check", medium])
    assert res.exit_code == 0, res.output
    assert "dask-threads" in res.output and "…" not in res.output and "worst factor: wall 1.00" in res.output


def test_size_table_is_whole_when_piped(tmp_path):
    res = CliRunner().invoke(cli, ["size", "--sensors", "20000", "--days", "180", "--results",
                                   _write(tmp_path, "eff", efficiency=True)])
    assert res.exit_code == 0, res.output
    assert "…" not in res.output
    assert "utilisation" in res.output and "dask-threads" in res.output and "blocks in flight" in res.output
    assert "efficiency flow/polars at small: speed-up 1.60" in res.output
    assert "unverified" in res.output


def test_size_command_json(tmp_path):
    res = CliRunner().invoke(cli, ["size", "--sensors", "4000", "--days", "14", "--interval", "5min",
                                   "--deadline", "1h", "--results", _write(tmp_path, "s"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {e["task"] for e in out["estimates"]} == {"flow", "utilisation"}


def test_curves_for_the_report(tmp_path):
    from uda.harness.sizing.fitting import curves

    cs = curves([load_results(_write(tmp_path, "s"))])
    assert {(c.task, c.metric) for c in cs} == {(t, m) for t in ("flow", "utilisation")
                                                for m in ("wall_s", "peak_bytes")}
    mem = next(c for c in cs if c.task == "flow" and c.engine == "polars" and c.metric == "peak_bytes")
    x = np.array([r for r, _ in mem.points])
    assert mem.predict(x) == pytest.approx([v for _, v in mem.points], rel=1e-6)
    between = mem.predict(np.array([np.sqrt(x[0] * x[1])]))
    assert mem.points[0][1] < between[0] < mem.points[1][1]
    rows, measured, predicted = mem.heldout
    assert rows == max(x) and measured == mem.points[-1][1] and predicted == pytest.approx(measured, rel=0.05)


@pytest.mark.parametrize(("text", "seconds"), [("5min", 300), ("15 min", 900), ("1h", 3600),
                                                ("2d", 172800), ("30", 30), ("0.5h", 1800)])
def test_parse_duration(text, seconds):
    assert parse_duration(text, option="--interval") == seconds


def test_one_duration_grammar_for_size_and_table_schemas():
    from uda.durations import duration_us
    from uda.quality.table.schema import parse_duration as step_us

    for text in ("5min", "15 min", "1h", "2d", "30", "0.5h", "500ms", "2 days", "1H", "3hours", " 90 s "):
        assert step_us(text) == duration_us(text) == round(parse_duration(text, option="--interval") * 1e6)
    assert duration_us("fast") is None and duration_us("5 fortnights") is None and duration_us("-1h") is None
    assert duration_us(1.5) == 1_500_000 and duration_us("0") == 0
    assert duration_us("1" * 40 + "d") == int("1" * 40) * 86_400_000_000  # exact, no float overflow
    with pytest.raises(UserError, match="longer than any duration"):
        parse_duration("9" * 400 + "d", option="--deadline")


@pytest.mark.parametrize(("args", "message"), [
    (["--sensors", "0", "--days", "1"], "must both be positive"),
    (["--sensors", "10", "--days", "-3"], "must both be positive"),
    (["--sensors", "10", "--days", "nan"], "must both be positive"),
    (["--sensors", "10", "--days", "1", "--interval", "fast"], "is not a duration"),
    (["--sensors", "10", "--days", "1", "--interval", "2d"], "longer than a day"),
    (["--sensors", "10", "--days", "1", "--deadline", "0min"], "must be longer than zero"),
    (["--sensors", "10", "--days", "1", "--stations", "0"], "--stations 0 must be positive"),
    (["--days", "1"], "give --sensors N and --days D"),
    (["--sensors", "10", "--days", "1", "--probe-seconds", "nan"], "--probe-seconds must be a finite number"),
    (["--sensors", "10", "--days", "1", "--probe-seconds", "inf"], "--probe-seconds must be a finite number"),
])
def test_impossible_size_parameters_exit_2(tmp_path, args, message):
    res = CliRunner().invoke(cli, ["size", *args, "--results", _write(tmp_path, "s")])
    assert res.exit_code == 2, res.output
    assert message in res.output and len(res.output.strip().splitlines()) == 1


def test_missing_or_too_few_results_say_what_to_run(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["size", "--sensors", "10", "--days", "1", "--results", str(tmp_path)])
    assert res.exit_code == 2 and "uda bench --suite sweep" in res.output
    res = runner.invoke(cli, ["size", "--sensors", "10", "--days", "1", "--results", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in res.output
    one = _write(tmp_path, "one", {"tiny": SCALES["tiny"]})
    res = runner.invoke(cli, ["size", "--sensors", "10", "--days", "1", "--results", one])
    assert res.exit_code == 2 and "one size per task (tiny)" in res.output
    assert len(res.output.strip().splitlines()) == 1
    water = _write(tmp_path, "water", {"medium": (2000, 30, 12)}, tasks=("flow",))
    water_path = tmp_path / "water.json"
    water_path.write_text(water_path.read_text().replace('"flow', '"water'))
    with pytest.raises(UserError, match="no case of"):
        check(results=[_write(tmp_path, "fit")], against=[water])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = runner.invoke(cli, ["size", "--results", _write(tmp_path, "fit"), "--check", str(bad)])
    assert res.exit_code == 2 and "is not valid JSON" in res.output and len(res.output.strip().splitlines()) == 1


def test_default_stations_and_sites_follow_the_presets():
    from uda.scales import PRESETS

    for p in PRESETS.values():
        assert preset_size(p.sensors, "water_sites") == pytest.approx(p.water_sites)
        assert preset_size(p.sensors, "districts") == pytest.approx(p.districts)
    assert PRESETS["small"].stations < preset_size(600, "stations") < PRESETS["medium"].stations


def test_datasets_with_department_feeds_map_to_families():
    from uda.harness.sizing.models import family_bytes_per_row, family_rows

    ds = {"tables": {"true_traffic": {"rows": 1000, "bytes": 4000},
                     "feed_taps_d000_v0": {"rows": 30, "bytes": 300},
                     "feed_taps_d001_v0": {"rows": 70, "bytes": 700},
                     "water": {"rows": 10, "bytes": 50}}}
    assert family_rows(ds) == {"traffic": 1000, "taps": 100, "water": 10}
    assert family_bytes_per_row(ds) == {"traffic": 4.0, "taps": 10.0, "water": 5.0}


def test_suites_measure_one_and_two_cores_and_workers():
    from uda.harness.runner.suite import expand_suite, load_suite

    cases = expand_suite(load_suite("sweep"))
    flow = {c.id: c for c in cases if c.task == "flow"}
    assert flow["flow/polars/small/cores=1"].cores == 1
    assert {"flow/dask-local:1/small", "flow/dask-local:2/small", "flow/dask-threads/small/cores=1"} <= set(flow)
    assert not any(c.scale.startswith("medium") and ":" not in c.scale for c in cases)  # medium is held out
    assert "water/polars/small:tables=water,water-sites=150,days=60" in {c.id for c in cases}
    from uda.harness.runner.suite import check_scale

    with pytest.raises(UserError, match="tables=bogus must be one of traffic, passenger, water"):
        check_scale("small:tables=bogus")
    bad = {"source": "s", "cases": [{"task": "route", "scales": ["tiny"], "cores": 0}]}
    with pytest.raises(UserError, match="cores must be a whole number > 0"):
        expand_suite(bad)


def test_check_reads_the_large_reference_file(tmp_path):
    ref = json.loads(open("results/reference/large.json").read())
    pts = reference_points(ref, "large.json")
    route = pts[("route", "dask-threads")][0]
    assert route["sizes"]["iterations"] == 20 and route["rows_in"] == 20_000 * 180 * 288
    assert pts[("water", "polars")][0]["rows_in"] == 200 * 180 * 96
    assert route["peak_rss_bytes"] == ref["steps"]["route/dask"]["max_rss_bytes_largest_process"]
    # flow from the synthetic sweep, checked against a large step of exactly its law
    sizes = pts[("flow", "polars")][0]["sizes"]
    ref = {"scale": "large", "steps": {"flow/polars": {"exit": 0, "wall_s": _law(TIME["flow"], sizes),
                                                       "max_rss_bytes_largest_process": _law(MEMORY["flow"], sizes)}}}
    path = tmp_path / "large.json"
    path.write_text(json.dumps(ref))
    out = check(results=[_write(tmp_path, "sweep")], against=[str(path)], engines=["polars"])
    (row,) = out["rows"]
    assert row["scale"] == "large" and row["peak_rss_bytes"]["ratio"] == pytest.approx(1.0, rel=1e-6)
    path.write_text(json.dumps({"scale": "huge", "steps": {}}))
    with pytest.raises(UserError, match="neither a results file nor a reference file"):
        check(results=[_write(tmp_path, "sweep")], against=[str(path)])


def test_a_stage_the_task_times_is_fitted_on_its_own_seconds():
    # route-like: the network stages are 1 % of the time at the measured sizes, 50 % at a bigger
    # city; serial below the kernels' parallel threshold, split over the threads above it
    sizes = [{"rows": r, "iterations": it, "zones": z, "links": k, "nodes": n, "sensors": 1.0, "threads": 2.0}
             for r, it, z, k, n in ((5e4, 19, 16, 224, 64), (8e5, 2, 16, 528, 144), (3.6e6, 4, 36, 1520, 400))]
    units = np.array([(s["iterations"] + 5) * s["zones"] * s["links"] for s in sizes])
    stage = 2e-8 * units
    pts = [{"sizes": s, "wall_s": 0.2 + 3e-8 * s["rows"] + st, "cpu_s": 1.0, "peak_rss_bytes": 1.0,
            "rows_in": s["rows"], "stages": {"od": st / 4, "assignment": st / 2, "sites": st / 4}}
           for s, st in zip(sizes, stage, strict=True)]
    m = fitting._fit_time(("fixed", "rows", "network stages"), pts)
    assert m.coef == pytest.approx([0.2, 3e-8, 2e-8], rel=1e-6)
    medium = {"rows": 1.7e7, "iterations": 55, "zones": 144, "links": 5328, "nodes": 1369, "threads": 2.0}
    assert models.network_blocks(medium) == 2 and models.network_blocks(sizes[2]) == 1
    assert m(medium) == pytest.approx(0.2 + 3e-8 * 1.7e7 + 2e-8 * 60 * 144 * 5328 / 2, rel=1e-6)
    # CPU time is the work of every block: not divided over the threads
    c = fitting._fit_time(("fixed", "rows", "network stages"), pts, "cpu_s")
    assert c.parts(medium)["network stages"] == pytest.approx(c.coef[2] * 60 * 144 * 5328, rel=1e-9)
    # a probe's measurement at the city replaces the fitted network term, for its metric only
    probed = dict(medium, probe_wall_s=0.7, probe_cpu_s=1.3)
    assert m.parts(probed)["network stages"] == 0.7 and c.parts(probed)["network stages"] == 1.3
    assert m.probed(probed) and not m.probed(medium)
    assert m(probed) == pytest.approx(0.2 + 3e-8 * 1.7e7 + 0.7, rel=1e-9)


def case_cores(data, *, engine="polars", scheduler=None, **options):
    """A harness case (run in a child process) that reports the cores and threads it was given."""
    import os

    from uda.tasks.base import TaskResult

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else -1
    quality = {"cpus": float(cpus), "polars_threads": float(os.environ.get("POLARS_MAX_THREADS", 0)),
               "numba_threads": float(os.environ.get("NUMBA_NUM_THREADS", 0))}
    return TaskResult(task="cores", engine=engine, answer={"ok": 1}, quality=quality, rows_in=1)


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_a_case_with_cores_1_runs_on_one_core_and_one_thread():
    from pathlib import Path

    from uda.harness.runner.supervise import run_suite

    suite = {"name": "t", "source": "t", "pythonpath": [str(Path(__file__).parent)], "repeats": 1,
             "timeout_s": 60, "cases": [{"task": "cores", "target": "test_harness_sizing:case_cores",
                                         "data": False, "engines": ["polars"], "cores": 1}]}
    res, _ = run_suite(suite, out_dir=None)
    (case,) = res["cases"]
    assert case["status"] == "ok", case.get("message")
    assert case["id"].endswith("/cores=1") and case["limits"]["cores"] == 1
    assert case["quality"] == {"cpus": 1.0, "polars_threads": 1.0, "numba_threads": 1.0}
