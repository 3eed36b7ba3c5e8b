"""``uda bench`` and ``uda info`` from the command line, including bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from uda.cli.main import cli

HERE = Path(__file__).resolve().parent


def _suite(tmp_path: Path) -> Path:
    p = tmp_path / "one.toml"
    p.write_text(f'name = "one"\npythonpath = ["{HERE}"]\nrepeats = 1\ncold = "cached"\n'
                 '[[cases]]\ntask = "ok"\ntarget = "test_harness_runner:case_ok"\ndata = false\n'
                 'options = { n = 50 }\n')
    return p


def test_bench_json_prints_only_the_results_object(tmp_path):
    out = tmp_path / "res"
    res = CliRunner().invoke(cli, ["bench", "--suite", str(_suite(tmp_path)), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["schema"] == "uda-bench-results" and [c["status"] for c in data["cases"]] == ["ok"]
    assert data["cases"][0]["id"] == "ok/polars/-/n=50" and data["cases"][0]["rows_in"] == 50
    written = out / f"{data['run_id']}.json"
    assert json.loads(written.read_text())["run_id"] == data["run_id"]
    assert (out / f"{data['run_id']}.md").is_file() and (out / f"{data['run_id']}.html").is_file()


def test_bench_prints_summary_table_and_report_path(tmp_path):
    out = tmp_path / "res"
    res = CliRunner().invoke(cli, ["bench", "--suite", str(_suite(tmp_path)), "--out", str(out), "--no-report"])
    assert res.exit_code == 0, res.output
    assert "ok" in res.output and "results:" in res.output and str(out) in res.output.replace("\n", "")


def test_bench_bad_input_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    runner = CliRunner()
    for args, message in [
        (["bench", "--suite", "nosuch"], "unknown suite 'nosuch'"),
        (["bench", "--suite", str(bad)], "is not valid JSON"),
        (["bench", "--suite", str(_suite(tmp_path)), "--engine", "spark"], "unknown engine 'spark'"),
        (["bench", "--suite", str(_suite(tmp_path)), "--task", "route"], "no case left after filtering"),
        (["bench", "--suite", str(_suite(tmp_path)), "--engine", "dask", "--scheduler", "yarn"],
         "unknown scheduler 'yarn'"),
    ]:
        res = runner.invoke(cli, args)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output and "Traceback" not in res.output


def test_info_json_has_machine_facts_and_versions():
    res = CliRunner().invoke(cli, ["info", "--json"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.stdout)
    assert facts["machine"]["cores_logical"] >= 1 and facts["machine"]["memory_bytes"] > 0
    assert facts["packages"]["polars"] and facts["packages"]["numba"]
