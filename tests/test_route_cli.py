"""``uda run route``: JSON and CSV output, table output, one-line errors with exit status 2."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from uda.cli.main import cli

DATA = Path(__file__).parent / "data" / "tntp"
SIOUX = DATA / "SiouxFalls"
BRAESS = DATA / "Braess-Example"


def _run(*args):
    return CliRunner().invoke(cli, ["run", "route", *map(str, args)])


def test_tntp_json_and_csv(tmp_path):
    out = tmp_path / "flows.csv"
    res = _run("--tntp", SIOUX, "--algorithm", "bfw", "--gap", "1e-4", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    for key in ("relative_gap", "objective", "total_travel_time", "iterations", "seconds", "compile_seconds"):
        assert key in data
    assert data["relative_gap"] <= 1e-4 and data["converged"]
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["init_node", "term_node", "flow"] and len(rows) == 76
    assert (rows[0]["init_node"], rows[0]["term_node"]) == ("1", "2")


def test_tntp_table_output():
    res = _run("--tntp", BRAESS, "--algorithm", "fw", "--gap", "1e-6")
    assert res.exit_code == 0, res.output
    assert "relative gap" in res.output and "most congested links" in res.output


def _disconnect(net):
    """Turn links 3->2 and 4->2 into 3->1 and 4->1: zone 2 becomes unreachable."""
    net.write_text(net.read_text().replace("\t3\t2\t1\t", "\t3\t1\t1\t").replace("\t4\t2\t1\t", "\t4\t1\t1\t"))


def _copy(tmp_path, src=BRAESS):
    dest = tmp_path / "net"
    shutil.copytree(src, dest)
    for f in dest.iterdir():
        f.chmod(0o644)
    return dest


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: (d / "Braess_net.tntp").write_text((d / "Braess_net.tntp").read_text().replace("\t3\t4\t1\t", "\t3\t4\t-1\t")),
     "line 13: negative capacity -1"),
    (lambda d: (d / "Braess_trips.tntp").write_text("<NUMBER OF ZONES> 2\n<END OF METADATA>\nOrigin 1\n 2 : x;\n"),
     "line 4: expected 'zone : flow;'"),
    (lambda d: _disconnect(d / "Braess_net.tntp"), "1 OD pairs with demand 6 have no path (first: 1 -> 2)"),
    (lambda d: (d / "Braess_trips.tntp").unlink(), "has no *_trips.tntp file"),
])
def test_bad_input_is_one_line_error(tmp_path, edit, needle):
    folder = _copy(tmp_path)
    edit(folder)
    res = _run("--tntp", folder)
    assert res.exit_code == 2
    assert res.stderr.startswith("Error: ") and needle in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.output


def test_disconnected_demand_can_be_dropped_and_reported(tmp_path):
    folder = _copy(tmp_path)
    _disconnect(folder / "Braess_net.tntp")
    res = _run("--tntp", folder, "--unreachable", "drop", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["unreachable_demand"] == 6.0 and data["unreachable_pairs"] == 1


@pytest.mark.parametrize(("args", "needle"), [
    ((), "give --tntp DIR"),
    (("--tntp", SIOUX, "--gap", "-1"), "--gap must be >= 0"),
    (("--tntp", SIOUX, "--out", "/nonexistent-dir/flows.csv"), "folder /nonexistent-dir of --out does not exist"),
    (("--tntp", SIOUX, "--out", DATA), "is a folder; give a file name such as flows.csv"),
])
def test_bad_options(args, needle):
    res = _run(*args)
    assert res.exit_code == 2
    assert needle in res.stderr
