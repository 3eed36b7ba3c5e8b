"""Reports: headline, relative tables, plots with the sizing fit, uda run inputs, two runs, escaping."""

from __future__ import annotations

import base64
import csv
import io
import json
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from PIL import Image

from uda.cli.main import cli
from uda.harness.compare import compare_results
from uda.harness.report.documents import render_html, write_report
from uda.harness.report.headline import (
    flow_skill,
    headline,
    quality_headline,
    relative_table,
    speed_text,
)
from uda.harness.report.inputs import load_report_input
from uda.harness.report.text import md_escape
from uda.harness.results import SCHEMA, SCHEMA_VERSION

EVIL = "<script>alert('x')</script>|*bold* $x$"
SCALES = (("tiny", 10_000), ("mid", 30_000), ("small", 100_000))


def _case(task, engine, scale, rows, *, slow=1.0, quality=None, warm=(1.0, 1.02, 0.98), status="ok",
          check="agrees"):
    wall = rows / 1e6 * slow
    ms = [{"wall_s": wall * f, "cpu_s": wall * f, "peak_rss_bytes": 2**27 + rows * 100 * slow,
           "rows_per_s": rows / (wall * f)} for f in warm]
    summary = {"wall_s_median": wall, "wall_s_min": wall * min(warm), "wall_s_max": wall * max(warm),
               "cpu_s_median": wall, "peak_rss_bytes": ms[0]["peak_rss_bytes"], "rows_per_s": rows / wall,
               "n_warm": len(ms)}
    sched = "threads" if engine == "dask" else None
    return {"id": f"{task}/{engine}{'-' + sched if sched else ''}/{scale}", "task": task, "engine": engine,
            "scheduler": sched, "scale": scale, "status": status, "message": "" if status == "ok" else EVIL,
            "rows_in": rows, "cold": ms[0], "warm": ms if status == "ok" else [],
            "quality": quality or {}, "answer_check": {"status": check},
            "summary": summary if status == "ok" else None}


def _results(run_id="r1", dask_slow=1.3) -> dict:
    cases = []
    for task in ("route", EVIL):
        for scale, rows in SCALES:
            q = {"relative_gap": 1e-4, "iterations": 12.0, "converged": 1.0}
            cases.append(_case(task, "polars", scale, rows, quality=q, check="reference"))
            cases.append(_case(task, "dask", scale, rows, slow=dask_slow, quality=q))
    cases.append(_case(EVIL, EVIL, "tiny", 10_000, slow=2.0))
    cases.append(_case("flow", "polars", "tiny", 10, status="error"))
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": run_id,
            "created_utc": "2026-11-21T07:00:00+00:00", "suite": {"name": EVIL, "source": "test"},
            "machine": {"cpu_model": EVIL, "cores_logical": 2, "cpu_affinity": 2, "memory_bytes": 2**34},
            "packages": {"numpy": "2"}, "git": {"commit": "abc", "dirty": False},
            "datasets": {"tiny-seed1": {"scale": "tiny", "rows": 10, "bytes": 100, "manifest_sha256": "f" * 64}},
            "cases": cases}


class _StrictHTML(HTMLParser):
    """Collects elements and checks nesting; raises on a close tag that does not match."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.images, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        assert not any(k.startswith("on") for k, _ in attrs), attrs
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _check_html(page: str) -> _StrictHTML:
    p = _StrictHTML()
    p.feed(page)
    p.close()
    assert p.stack == [], p.stack
    assert "script" not in p.tags and "<script>" not in page
    for img in p.images:
        assert img["src"].startswith("data:image/png;base64,") and img.get("alt")
        Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1]))).verify()
    return p


def test_report_html_is_well_formed_escaped_and_every_image_decodes(tmp_path):
    paths = write_report(_results(), out_dir=tmp_path, stem="run")
    assert {"markdown", "html", "time", "memory-scaling", "cold", "quality"} <= set(paths)
    page = paths["html"].read_text()
    parsed = _check_html(page)
    assert len(parsed.images) == len([k for k in paths if k not in ("markdown", "html")])
    text = "".join(parsed.text)
    assert EVIL in text  # shown as text, not markup
    assert text.index("Headline") < text.index("Relative to the best engine") < text.index("Every case")
    md = paths["markdown"].read_text()
    assert "<script>" not in md and md_escape(EVIL) in md
    assert "](run-time.png)" in md and (tmp_path / "run-time.png").read_bytes().startswith(b"\x89PNG")
    assert "Cases that did not pass" in md


def test_relative_table_cells_are_ratios_to_the_best_with_absolute_time_in_the_title(tmp_path):
    rel = relative_table(_results(), "wall_s")
    assert rel["engines"][:2] == ["polars", "dask-threads"]
    small = next(r for r in rel["rows"] if r["task"] == "route" and r["scale"] == "small")
    assert small["cells"]["polars"]["ratio"] == pytest.approx(1.0)
    assert small["cells"]["dask-threads"]["ratio"] == pytest.approx(1.3)
    assert rel["geomean"]["dask-threads"]["ratio"] == pytest.approx(1.3)
    failed = next(r for r in rel["rows"] if r["task"] == "flow")
    assert failed["cells"]["polars"]["status"] == "error" and failed["cells"]["polars"]["ratio"] is None
    page = render_html(_results(), [])
    _check_html(page)
    assert 'title="0.1 s warm median of 3, min–max 0.098–0.102 s">1.00×</td>' in page
    assert ">1.30×</td>" in page and "hsl(" in page


def test_headline_names_the_fastest_engine_with_the_interval_of_compare():
    rows = headline(_results())
    route_small = next(r for r in rows if r["task"] == "route" and r["scale"] == "small")
    assert route_small["fastest"] == "polars" and route_small["runner_up"] == "dask-threads"
    assert route_small["ratio"] == pytest.approx(1.3)
    assert route_small["ci"][0] > 1 and route_small["distinct"] is True
    assert route_small["quality"] == "relative gap 0.0001 after 12 iterations (converged)"
    assert route_small["agreement"] == "agree"
    assert [r["scale"] for r in rows if r["task"] == "route"] == ["tiny", "mid", "small"]
    same = headline(_results(dask_slow=1.0))
    assert next(r for r in same if r["task"] == "route")["distinct"] is False


def test_headline_says_when_engines_differ():
    res = _results()
    res["cases"][1]["status"] = "wrong_answer"
    res["cases"][1]["summary"] = None
    row = headline(res)[0]
    assert row["agree"] is False and row["agreement"].startswith("differ") and row["fastest"] == "polars"


def test_flow_quality_is_skill_of_best_learnt_over_best_naive():
    q = {"last_mae_h1": 10.0, "last_mae_h3": 20.0, "ha_mae_h1": 30.0, "ha_mae_h3": 30.0,
         "ridge_mae_h1": 9.0, "ridge_mae_h3": 18.0, "hw_mae_h1": 40.0, "hw_mae_h3": 40.0}
    sk = flow_skill(q)
    assert (sk["model"], sk["baseline"]) == ("ridge", "last")
    assert sk["skill"] == pytest.approx(1 - 13.5 / 15.0)
    assert sk["by_horizon"] == {1: pytest.approx(0.1), 3: pytest.approx(0.1)}
    text, _ = quality_headline("flow", q)
    assert text == "ridge beats last: MAE skill +10.0 % (h1 +10.0 % … h3 +10.0 %)"
    assert quality_headline("water", {"zscore_f1": 0.5, "cusum_f1": 0.9, "cusum_precision": 1.0})[0] == \
        "best detector cusum: F1 0.900 (of 2)"
    assert quality_headline("utilisation", {"traffic_used_share": 0.75, "drift_f1": 1.0})[0] == \
        "used share: traffic 75.0%"


def test_scaling_plot_draws_the_sizing_fit_and_its_held_out_point(tmp_path):
    from uda.harness.report.plots import make_plots, sizing_curves

    fits, why = sizing_curves(_results())
    assert why is None
    curve = fits[("route", "polars", "wall_s")]
    assert [p[0] for p in curve.points] == [10_000, 30_000, 100_000] and curve.heldout is not None
    captions = {name: cap for name, cap, _png in make_plots(_results())}
    assert "sizing fit" in captions["time"] and "sizing fit" in captions["memory-scaling"]


def _run_outputs(tmp_path):
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"engine": "dask", "protocol": {}, "models": {
        "last": {"1": {"mae": 10.0}}, "ridge": {"1": {"mae": 8.0}}}}))
    route = tmp_path / "route"
    route.mkdir()
    (route / "summary.json").write_text(json.dumps({"task": "route", "engine": "polars", "quality": {
        "relative_gap": 2e-5}, "summary": {"stage_seconds": {"a": 1.0, "b": 2.0}}}))
    water = tmp_path / "water"
    water.mkdir()
    (water / "summary.json").write_text(json.dumps({"best_detector": "cusum", "seconds": 4.0, "detectors": {
        "zscore": {"f1": 0.4}, "cusum": {"f1": 0.8}}, "mass_balance": {"f1": None}}))
    util = tmp_path / "util"
    util.mkdir()
    (util / "utilisation.json").write_text(json.dumps({"engine": "polars", "seconds": 2.0, "funnel": {}, "totals": {
        "traffic": {"collected": 100, "used": 80}}, "detectors": {}}))
    return {"flow": flow, "route": route, "water": water, "util": util}


def test_report_reads_uda_run_results(tmp_path):
    outs = _run_outputs(tmp_path)
    expect = {"flow": "ridge beats last: MAE skill +20.0 % (h1)", "route": "relative gap 2e-05",
              "water": "best detector cusum: F1 0.800 (of 2)", "util": "used share: traffic 80.0%"}
    for name, path in outs.items():
        res = load_report_input(str(path))
        (row,) = headline(res)
        assert row["quality"] == expect[name]
    route = headline(load_report_input(str(outs["route"])))[0]
    assert route["times"] == {"polars": 3.0} and speed_text(route) == "polars 3 s (one call)"
    res = CliRunner().invoke(cli, ["report", str(outs["water"]), "--html", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["headline"][0]["quality"] == expect["water"]
    _check_html((tmp_path / "water.html").read_text())


def test_report_of_two_runs_shows_ratio_and_interval_of_compare(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    ra, rb = _results("A"), _results("B", dask_slow=2.6)
    a.write_text(json.dumps(ra))
    b.write_text(json.dumps(rb))
    res = CliRunner().invoke(cli, ["report", str(a), str(b), "--html", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in json.loads(res.stdout)["comparison"]["metrics"]["wall_s"]}
    ref = {r["id"]: r for r in compare_results(ra, rb)["cases"]}
    cid = "route/dask-threads/small"
    assert rows[cid]["ratio"] == pytest.approx(2.0) and rows[cid]["verdict"] == "regression"
    assert (rows[cid]["ci_low"], rows[cid]["ci_high"]) == (ref[cid]["ci_low"], ref[cid]["ci_high"])
    assert rows["route/polars/small"]["verdict"] == "same"
    page = (tmp_path / "a-vs-b.html").read_text()
    _check_html(page)
    md = (tmp_path / "a-vs-b.md").read_text()
    assert f"| {md_escape(cid)} | 0.13 | 0.26 | 2.00× | {ref[cid]['ci_low']:.2f}–{ref[cid]['ci_high']:.2f} |" in md


def test_report_tables_are_whole_when_piped_and_in_markdown_and_csv(tmp_path, monkeypatch):
    monkeypatch.setattr("uda.harness.report.documents.make_plots", lambda results: [])  # tables only: fast
    res_obj = _results()
    long_task = "t" * 150 + "-end"
    res_obj["cases"] = res_obj["cases"][:6]
    res_obj["cases"][0]["task"] = long_task
    p = tmp_path / "run.json"
    p.write_text(json.dumps(res_obj))
    runner = CliRunner()
    out = runner.invoke(cli, ["report", str(p)])
    assert out.exit_code == 0, out.output
    assert long_task in out.output and "…" not in out.output
    assert out.output.rstrip().endswith(str(tmp_path / "run.md"))
    md = runner.invoke(cli, ["report", str(p), "--format", "markdown"])
    assert f"| {long_task} | tiny |" in md.output
    got = runner.invoke(cli, ["report", str(p), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(got.stdout)))
    assert len(rows) == len(res_obj["cases"]) and rows[0]["task"] == long_task
    dask_small = next(r for r in rows if r["case"] == "route/dask-threads/small")
    assert float(dask_small["time_vs_best"]) == pytest.approx(1.3)
    assert rows[0]["time_vs_best"] == "1.0"  # alone in its group: the best


@pytest.mark.parametrize(("make", "needle"), [
    (lambda d: d / "nosuch.json", "does not exist"),
    (lambda d: (d / "x.json").write_text("[1, 2") and d / "x.json", "is not valid JSON"),
    (lambda d: (d / "x.json").write_text('{"foo": 1}') and d / "x.json", "is not a uda result"),
    (lambda d: d, "is a folder without a uda result"),
])
def test_report_bad_input_is_one_line_exit_2(tmp_path, make, needle):
    res = CliRunner().invoke(cli, ["report", str(make(tmp_path))])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def _damaged(tmp_path, edit):
    res = _results()
    edit(res)
    p = tmp_path / "r.json"
    p.write_text(json.dumps(res))
    return p


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda r: r["machine"].update(memory_bytes="x"), "machine.memory_bytes must be a number"),
    (lambda r: r["machine"].update(load_avg_1m="high"), "machine.load_avg_1m must be a number"),
    (lambda r: r.setdefault("git", {}).update(commit=12), "git.commit must be a string"),
    (lambda r: r["cases"][0].pop("task"), "task must be a string"),
    (lambda r: r.setdefault("datasets", {}).update(d={"rows": "many"}), "rows and bytes must be numbers"),
])
def test_damaged_results_are_one_line_errors(tmp_path, edit, needle):
    """Fields the report and compare compute with are type-checked when the file is read."""
    p = _damaged(tmp_path, edit)
    for args in (["report", str(p)], ["compare", str(p), str(p)]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2 and needle in res.output, res.output


def test_report_of_a_run_result_with_odd_fields_and_an_unwritable_folder(tmp_path):
    p = tmp_path / "u.json"
    p.write_text(json.dumps({"funnel": {}, "totals": {"traffic": {"collected": 10, "used": 4}},
                             "detectors": [1]}))
    res = CliRunner().invoke(cli, ["report", str(p), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = CliRunner().invoke(cli, ["report", str(p), "--out", str(blocker / "rep")])
    assert res.exit_code == 2 and "cannot create the report folder" in res.output, res.output


def test_si_prefixes_carry_over():
    from uda.harness.report.text import compact, fmt_rows

    assert [compact(v) for v in (0.25, 999, 999_999, 1.5e6)] == ["0.25", "999", "1M", "1.5M"]
    assert fmt_rows(999_999, ".2f", " ") == "1.00 M" and fmt_rows(0) == "–"


def test_report_refuses_three_files(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps(_results()))
    res = CliRunner().invoke(cli, ["report", str(p), str(p), str(p)])
    assert res.exit_code == 2 and "give one" in res.output


def test_md_escape_keeps_table_cells_intact():
    assert md_escape("a|b\nc") == "a\\|b c"


def test_bench_summary_is_whole_as_csv_and_markdown(tmp_path):
    from pathlib import Path

    here = Path(__file__).resolve().parent
    suite = tmp_path / "one.toml"
    long_option = "n" * 120
    suite.write_text(f'name = "one"\npythonpath = ["{here}"]\nrepeats = 2\ncold = "cached"\n'
                     '[[cases]]\ntask = "ok"\ntarget = "test_harness_runner:case_ok"\ndata = false\n'
                     f'options = {{ n = 50, {long_option} = 1 }}\n')
    runner = CliRunner()
    got = runner.invoke(cli, ["bench", "--suite", str(suite), "--out", str(tmp_path / "r"), "--no-report",
                              "--format", "csv"])
    assert got.exit_code == 0, got.output
    (row,) = list(csv.DictReader(io.StringIO(got.stdout)))
    assert row["status"] == "ok" and long_option in row["case"] and float(row["time_vs_best"]) == 1.0
    got = runner.invoke(cli, ["bench", "--suite", str(suite), "--out", str(tmp_path / "r"), "--no-report",
                              "--format", "markdown"])
    assert got.exit_code == 0, got.output
    assert f"| ok\\[n=50,{long_option}=1\\] | – |" in got.output  # the headline, whole
    got = runner.invoke(cli, ["bench", "--suite", str(suite), "--out", str(tmp_path / "r"), "--no-report"])
    assert got.exit_code == 0 and f"ok[n=50,{long_option}=1]" in got.output and "…" not in got.output


def test_same_machine_allows_the_kernel_reserve_to_move_total_memory():
    from uda.harness.compare import same_machine_facts

    a = {"cpu_model": "AMD EPYC", "cores_logical": 2, "memory_bytes": 25_276_510_208}
    assert same_machine_facts(a, {**a, "memory_bytes": 25_276_194_816})
    assert not same_machine_facts(a, {**a, "memory_bytes": 2 * 25_276_510_208})
    assert not same_machine_facts(a, {**a, "cores_logical": 4})
