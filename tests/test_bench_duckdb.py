"""bench/bench_duckdb.py and bench/duckdb_queries.py: DuckDB gives uda's answers on every stage, and a differing answer is not timed."""

from __future__ import annotations

import json

import polars as pl
import pytest

pytest.importorskip("duckdb")

from bench import bench_duckdb  # noqa: E402
from bench.duckdb_queries import Duck  # noqa: E402
from uda.generate import generate  # noqa: E402
from uda.scales import resolve_scale  # noqa: E402


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A tiny city with realistic defects, standardised (``clean/`` written)."""
    from uda.tasks.standardise import standardise

    path = tmp_path_factory.mktemp("duck") / "real"
    generate(path, scale=resolve_scale("tiny", days=3), seed=2, workers=2, defects="realistic")
    standardise(path, hashes=False)
    return path


def test_every_stage_agrees_with_uda_on_tiny(tiny_dataset, real, tmp_path):
    out = tmp_path / "r.json"
    res = bench_duckdb.main(["--scale", "tiny", "--data", str(tiny_dataset), "--data-defects", str(real),
                             "--work", str(tmp_path / "work"), "--repeats", "1", "--json", str(out)])
    assert set(res["stages"]) == set(bench_duckdb.STAGES)
    for stage, r in res["stages"].items():
        assert r["errors"] == {}, stage
        assert "duckdb" in r["methods"] and "uda polars" in r["ratios"], stage
        assert r["ratios"]["uda polars"]["ratio_of_medians"] > 0
    assert set(res["stages"]["route_slots"]["methods"]) == {"uda polars", "uda dask", "duckdb"}
    assert res["stages"]["utilisation"]["funnel_counts_check"] == "equal to the standardise report"
    assert json.loads(out.read_text())["stages"].keys() == res["stages"].keys()


def test_duckdb_detector_tallies_are_not_trivial_and_match(real):
    from uda.store import open_dataset

    ds = open_dataset(real)
    duck = Duck(2).utilisation(ds)
    ours = bench_duckdb.uda_utilisation(ds, "polars")
    assert duck["detectors"] == ours["detectors"] and duck["used"] == ours["used"]
    assert sum(v["tp"] for per in duck["detectors"].values() for v in per.values()) > 0
    assert duck["detectors"]["traffic"]["missing"]["tp"] > 0


def test_a_differing_answer_is_reported_and_not_timed():
    a = pl.DataFrame({"k": [1, 2], "x": [1.0, 2.0]})
    b = pl.DataFrame({"k": [1, 2], "x": [1.0, 2.1]})
    r = bench_duckdb.run_stage("s", {"uda polars": lambda: a, "duckdb": lambda: b}, bench_duckdb.same_frame,
                               repeats=2, reference="uda polars")
    assert "duckdb" in r["errors"] and "largest difference" in r["errors"]["duckdb"]
    assert set(r["methods"]) == {"uda polars"} and r["ratios"] == {}
    r = bench_duckdb.run_stage("s", {"uda polars": lambda: a, "duckdb": lambda: a.clone()}, bench_duckdb.same_frame,
                               repeats=2, reference="uda polars")
    assert r["errors"] == {} and len(r["methods"]["duckdb"]["walls_s"]) == 2
