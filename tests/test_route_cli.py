"""``uda run route``: JSON and CSV output, table output, one-line errors with exit status 2, an
existing --out kept without --force."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error, run_cli, snapshot

DATA = Path(__file__).parent / "data" / "tntp"
SIOUX = DATA / "SiouxFalls"
BRAESS = DATA / "Braess-Example"


def _run(*args):
    return run_cli(["run", "route", *args])


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
    assert_one_line_error(_run("--tntp", folder), needle)


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
    assert_one_line_error(_run(*args), needle)


# ---------------------------------------------------------------- issue 16 (5, 12): impossible numbers, --out kept

@pytest.mark.parametrize("args", [["--trip-rate", "inf"], ["--trip-rate", "nan"], ["--beta", "inf"],
                                  ["--gap", "nan"], ["--gap", "inf"], ["--trip-rate", "-1"],
                                  ["--trip-rate", "1e308"]])
def test_route_refuses_impossible_numbers(tiny_dataset, args):
    before = snapshot(tiny_dataset)
    assert_one_line_error(_run("--data", tiny_dataset, *args), args[0])
    assert snapshot(tiny_dataset) == before


def test_route_tntp_refuses_infinite_gap():
    assert_one_line_error(_run("--tntp", BRAESS, "--gap", "inf"), "--gap")


def test_route_does_not_overwrite_its_out_file(tmp_path):
    out = tmp_path / "flows.csv"
    out.write_text("precious\n")
    assert_one_line_error(_run("--tntp", BRAESS, "--out", out), "already exists", "--force")
    assert out.read_text() == "precious\n"
    res = _run("--tntp", BRAESS, "--out", out, "--force")
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("init_node,term_node,flow")


def test_route_does_not_overwrite_results_in_its_out_folder(tiny_dataset, tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert_one_line_error(_run("--data", tiny_dataset, "--out", out), "summary.json", "--force")
    assert (out / "summary.json").read_text() == "{}"
    res = _run("--data", tiny_dataset, "--out", out, "--force", "--max-iter", "5")
    assert res.exit_code == 0, res.output
    assert (out / "summary.json").read_text() != "{}"


def test_route_refuses_a_remote_out_that_exists():
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/rel16/flows.csv", b"x")
    assert_one_line_error(_run("--tntp", BRAESS, "--out", "memory://rel16/flows.csv"),
                          "already holds results")
    assert fs.cat("/rel16/flows.csv") == b"x"


def test_cli_choices_are_the_kernels_and_the_checks():
    """The CLI keeps its own copies of the algorithm and policy names (importing the kernels would
    load Numba for ``uda --help``); they must stay equal to the ones the run checks."""
    from uda.cli.run_route import route
    from uda.kernels.assign import ALGORITHMS
    from uda.routing.assignment import UNREACHABLE_POLICIES

    choices = {p.name: tuple(p.type.choices) for p in route.params if hasattr(p.type, "choices")}
    assert choices["algorithm"] == ALGORITHMS
    assert choices["unreachable"] == UNREACHABLE_POLICIES
