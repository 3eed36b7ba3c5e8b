"""``uda compare``: no regression on identical runs, exactly the slowed task flagged otherwise."""

from __future__ import annotations

import copy
import json

import numpy as np
from click.testing import CliRunner

from uda.cli.main import cli
from uda.harness.compare import compare_results, ratio_ci
from uda.harness.results import SCHEMA, SCHEMA_VERSION

TASKS = ("route", "flow", "water", "utilisation")


def _results(run_id: str, *, slow: dict[str, float] | None = None, seed: int = 0) -> dict:
    """Synthetic results: 4 tasks x 2 engines, 7 warm repeats with 3 % noise."""
    rng = np.random.default_rng(seed)
    cases = []
    for i, task in enumerate(TASKS):
        for engine in ("polars", "dask"):
            base = 0.5 + 0.25 * i + (0.2 if engine == "dask" else 0.0)
            factor = (slow or {}).get(task, 1.0)
            walls = base * factor * (1 + 0.03 * rng.standard_normal(7))
            warm = [{"wall_s": float(w), "cpu_s": float(w) * 1.5, "peak_rss_bytes": 2**28} for w in walls]
            cases.append({"id": f"{task}/{engine}/small", "task": task, "engine": engine,
                          "scheduler": None, "scale": "small", "status": "ok",
                          "cold": dict(warm[0]), "warm": warm, "summary": {}})
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": run_id,
            "machine": {"cpu_model": "x"}, "git": {"commit": "abc"}, "cases": cases}


def _write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return str(p)


def test_identical_runs_show_no_regression(tmp_path):
    a = _results("a")
    out = compare_results(a, copy.deepcopy(a))
    assert out["regressions"] == []
    assert {r["verdict"] for r in out["cases"]} == {"same"}
    assert all(abs(r["ratio"] - 1) < 1e-12 for r in out["cases"])
    res = CliRunner().invoke(cli, ["compare", _write(tmp_path, "a.json", a), _write(tmp_path, "b.json", a)])
    assert res.exit_code == 0, res.output
    assert "no regression found" in res.output


def test_two_noisy_runs_of_the_same_code_show_no_regression():
    out = compare_results(_results("a", seed=1), _results("b", seed=2))
    assert out["regressions"] == []


def test_one_task_30_percent_slower_is_flagged_exactly(tmp_path):
    a, b = _results("a", seed=1), _results("b", slow={"flow": 1.3}, seed=2)
    out = compare_results(a, b, threshold=0.1)
    assert sorted(out["regressions"]) == ["flow/dask/small", "flow/polars/small"]
    flagged = [r for r in out["cases"] if r["verdict"] == "regression"]
    assert all(1.2 < r["ratio"] < 1.4 and r["ci_low"] > 1.1 for r in flagged)
    res = CliRunner().invoke(cli, ["compare", _write(tmp_path, "a.json", a), _write(tmp_path, "b.json", b),
                                   "--threshold", "0.1", "--json"])
    assert res.exit_code == 1
    got = json.loads(res.output)
    assert sorted(got["regressions"]) == ["flow/dask/small", "flow/polars/small"]


def test_faster_run_is_an_improvement_and_a_new_failure_is_a_regression():
    a = _results("a", seed=1)
    b = _results("b", slow={"water": 0.6}, seed=2)
    b["cases"][0]["status"] = "timeout"
    out = compare_results(a, b)
    verdicts = {r["id"]: r["verdict"] for r in out["cases"]}
    assert verdicts["water/polars/small"] == "improvement"
    assert verdicts["route/polars/small"] == "failed"
    assert out["regressions"] == ["route/polars/small"]


def test_ratio_ci_brackets_the_ratio():
    ratio, low, high = ratio_ci([1.0, 1.1, 0.9, 1.05], [2.0, 2.2, 1.8, 2.1])
    assert low <= ratio <= high and abs(ratio - 2.0) < 1e-9


def test_bad_results_files_exit_2(tmp_path):
    good = _write(tmp_path, "good.json", _results("a"))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    other = _write(tmp_path, "other.json", {"hello": 1})
    old = _write(tmp_path, "old.json", {**_results("a"), "schema_version": 99})
    runner = CliRunner()
    for args, message in [
        (["compare", str(tmp_path / "missing.json"), good], "does not exist"),
        (["compare", good, str(bad_json)], "is not valid JSON"),
        (["compare", good, other], "is not a uda results file"),
        (["compare", good, old], "schema version 99"),
        (["compare", good, good, "--threshold", "-1"], "--threshold -1.0 must be >= 0"),
        (["report", str(bad_json)], "is not valid JSON"),
        (["report", str(tmp_path / "missing.json")], "does not exist"),
    ]:
        res = runner.invoke(cli, args)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1


def test_single_measurements_get_no_verdict():
    a, b = _results("a", seed=1), _results("b", slow={"route": 2.0}, seed=2)
    for run in (a, b):
        for c in run["cases"]:
            c["warm"] = c["warm"][:1]
    out = compare_results(a, b)
    assert out["regressions"] == [] and {r["verdict"] for r in out["cases"]} == {"too_few_repeats"}
