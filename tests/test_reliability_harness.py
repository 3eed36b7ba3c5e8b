"""Hostile input and faults (issue 16), the harness: suites are checked before any case, damaged
results files, runs with nothing to compare and impossible sizes are one-line errors; an
unexpected exception is one line with exit 1."""

from __future__ import annotations

import pytest
from cli_checks import assert_one_line_error, run_cli

# ---------------------------------------------------------------- 8: suites validated before any case

def _suite_file(tmp_path, text: str):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


_CASE = '[[cases]]\ntask = "route"\nscales = ["tiny"]\n'


@pytest.mark.parametrize(("text", "needle"), [
    ('timeout_s = -5\n' + _CASE, "timeout_s must be"),
    ('memory_mb = 0\n' + _CASE, "memory_mb must be"),
    ('repeats = "three"\n' + _CASE, "repeats must be a whole number"),
    ('timeout_s = inf\n' + _CASE, "timeout_s must be a finite number"),
    ('timeout_s = nan\n' + _CASE, "timeout_s must be a finite number"),
    ('seed = -1\n' + _CASE, "seed must be"),
    ('seed = "x"\n' + _CASE, "seed must be"),
    ('rtol = -1.0\n' + _CASE, "rtol must be"),
    ('reference_engine = "spark"\n' + _CASE, "reference_engine"),
    ('pythonpath = "."\n' + _CASE, "pythonpath must be a list"),
    ('[[cases]]\ntask = "route"\nengines = ["spark"]\nscales = ["tiny"]\n', "unknown engine 'spark'"),
    ('[[cases]]\ntask = "route"\nengines = "polars"\nscales = ["tiny"]\n', "engines must be a list"),
    ('[[cases]]\ntask = "route"\nscales = ["gigantic"]\n', "unknown scale 'gigantic'"),
    ('[[cases]]\ntask = "route"\nscales = "tiny"\n', "scales must be a list"),
    ('[[cases]]\ntask = "route"\nscales = ["tiny:sensors=0"]\n', "--sensors 0 is impossible"),
    ('[[cases]]\ntask = "route"\nscales = ["tiny:colour=red"]\n', "overrides 'colour'"),
    ('[[cases]]\ntask = "route"\nscales = ["tiny:defects=awful"]\n', "awful"),
    ('[[cases]]\ntask = "route"\nscales = [3]\n', "scales must be names"),
    ('[[cases]]\ntask = "route"\nscales = ["tiny"]\nschedulers = ["tcp://:::"]\nengines = ["dask"]\n',
     "not a scheduler address"),
    ('[[cases]]\ntask = "route"\nscales = ["tiny"]\ndata = "yes"\n', "data must be true or false"),
    ('[[cases]]\ntask = "route"\nscales = ["tiny"]\ntarget = 5\n', "target must be"),
    ('[[cases]]\ntask = "route"\nscales = ["tiny"]\n[[cases]]\ntask = "flow"\nscales = ["tiny"]\nwarmup = -1\n',
     "case 2: warmup must be"),
])
def test_bad_suite_values_exit_2_before_any_case(tmp_path, text, needle):
    out = tmp_path / "res"
    res = run_cli(["bench", "--suite", _suite_file(tmp_path, text), "--out", out])
    assert_one_line_error(res, needle)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(("args", "needle"), [(["--scale", "gigantic"], "unknown scale 'gigantic'"),
                                              (["--scale", "tiny:days=0"], "--days 0 is impossible"),
                                              (["--engine", "spark"], "unknown engine 'spark'")])
def test_bad_bench_overrides_exit_2(tmp_path, args, needle):
    res = run_cli(["bench", "--suite", _suite_file(tmp_path, _CASE), "--out", tmp_path / "res", *args])
    assert_one_line_error(res, needle)


# ---------------------------------------------------------------- 7, 9, 13: results files, compare, size

def _results_obj(walls: list[float] | None = None) -> dict:
    from uda.harness.results import SCHEMA, SCHEMA_VERSION

    walls = [0.5, 0.51, 0.49] if walls is None else walls
    warm = [{"wall_s": w, "cpu_s": w, "peak_rss_bytes": 2**20} for w in walls]
    case = {"id": "route/polars/tiny", "task": "route", "engine": "polars", "scheduler": None,
            "scale": "tiny", "status": "ok", "cold": dict(warm[0]) if warm else None, "warm": warm,
            "summary": {"wall_s_median": 0.5, "n_warm": len(warm), "peak_rss_bytes": 2**20},
            "quality": {"gap": 1e-4}}
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": "r", "machine": {},
            "git": {}, "cases": [case]}


def _write_json(path, obj) -> str:
    import json

    path.write_text(json.dumps(obj))
    return str(path)


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda r: r["cases"][0]["warm"][0].__setitem__("wall_s", "fast"), "wall_s must be a number"),
    (lambda r: r["cases"][0]["warm"][0].__setitem__("wall_s", float("nan")), "NaN"),
    (lambda r: r["cases"][0]["summary"].__setitem__("wall_s_median", float("inf")), "Infinity"),
    (lambda r: r["cases"][0].__setitem__("warm", "many"), "warm must be a list"),
    (lambda r: r["cases"][0].__setitem__("quality", [1]), "quality must be an object"),
    (lambda r: r.__setitem__("datasets", {"d": {"tables": {"t": {"rows": "x"}}}}), "needs rows and bytes"),
])
def test_report_and_compare_refuse_damaged_results(tmp_path, mutate, needle):
    good = _write_json(tmp_path / "a.json", _results_obj())
    bad_obj = _results_obj()
    mutate(bad_obj)
    bad = _write_json(tmp_path / "b.json", bad_obj)
    assert_one_line_error(run_cli(["report", bad]), needle)
    assert_one_line_error(run_cli(["compare", good, bad]), needle)
    assert not (tmp_path / "b.md").exists()


def test_report_of_a_folder_says_it_is_a_folder(tmp_path):
    assert_one_line_error(run_cli(["report", tmp_path]), "is a folder")


@pytest.mark.parametrize("b", [
    lambda: {**_results_obj(), "cases": []},
    lambda: _results_obj([0.0, 0.0, 0.0]),
    lambda: _results_obj([0.5]),
    lambda: {**_results_obj(), "cases": [{**_results_obj()["cases"][0], "id": "other/polars/tiny"}]},
])
def test_compare_with_nothing_to_compare_exits_2(tmp_path, b):
    a = _write_json(tmp_path / "a.json", _results_obj())
    assert_one_line_error(run_cli(["compare", a, _write_json(tmp_path / "b.json", b())]), "nothing to compare")


def test_compare_of_comparable_runs_still_passes(tmp_path):
    a = _write_json(tmp_path / "a.json", _results_obj())
    res = run_cli(["compare", a, a])
    assert res.exit_code == 0 and "no regression found" in res.output


@pytest.mark.parametrize("args", [["--days", "nan"], ["--days", "inf"], ["--days", "-1"], ["--days", "1e300"],
                                  ["--days", "1", "--deadline", "1e400s"], ["--days", "1", "--sensors", "0"]])
def test_size_refuses_impossible_numbers(tmp_path, args):
    a = _write_json(tmp_path / "a.json", _results_obj())
    res = run_cli(["size", "--sensors", "100", *args, "--results", a] if "--sensors" not in args
               else ["size", *args, "--results", a])
    assert_one_line_error(res)


# ---------------------------------------------------------------- the CLI boundary

def test_an_unexpected_exception_is_one_line_exit_1(monkeypatch):
    import uda.harness.sizing.city

    def boom(*a, **k):
        raise ZeroDivisionError("deliberate")

    monkeypatch.setattr(uda.harness.sizing.city, "size", boom)
    res = run_cli(["size", "--sensors", "1", "--days", "1"])
    assert res.exit_code == 1
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "internal error (ZeroDivisionError: deliberate)" in err[0] and "bug" in err[0]
    monkeypatch.setenv("UDA_DEBUG", "1")
    res = run_cli(["size", "--sensors", "1", "--days", "1"])
    assert isinstance(res.exception, ZeroDivisionError)
