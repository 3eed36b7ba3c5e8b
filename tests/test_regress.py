"""Tests of the instruction-count regression check: decision, parsing, trees, probe, CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.harness import regress as R

REPO = Path(__file__).resolve().parents[1]


def _ok(n: int) -> dict:
    return {"status": "ok", "detail": "", "instructions": n}


def test_decide_threshold_and_statuses():
    base = {"a": _ok(1000), "b": _ok(1000), "c": _ok(1000), "d": _ok(1000), "e": _ok(5),
            "f": {"status": "missing", "detail": "ImportError"}, "g": {"status": "error", "detail": "boom"}}
    head = {"a": _ok(1100), "b": _ok(1101), "c": _ok(900), "d": {"status": "error", "detail": "TypeError"},
            "f": _ok(7), "g": {"status": "error", "detail": "boom"}}
    rows = {r.kernel: r for r in R.decide(base, head, threshold=0.1)}
    assert rows["a"].status == "ok"  # exactly +10 % is still within the threshold
    assert rows["b"].status == "slower" and rows["b"].ratio == pytest.approx(1.101)
    assert rows["c"].status == "faster"
    assert rows["d"].status == "broken" and "TypeError" in rows["d"].detail
    assert rows["e"].status == "gone"
    assert rows["f"].status == "new" and rows["f"].head == 7
    assert rows["f"].detail == "not measured at BASE (ImportError)"
    assert rows["g"].status == "error"
    res = R.RegressResult("x", "y", 0.1, list(rows.values()), 1.0)
    assert res.failed
    assert not R.RegressResult("x", "y", 0.1, [rows["a"], rows["c"], rows["f"]], 1.0).failed
    assert json.loads(json.dumps(res.to_dict()))["failed"] is True
    assert res.not_measured_at_base == ["f"] and res.to_dict()["not_measured_at_base"] == ["f"]


def test_parse_callgrind(tmp_path):
    (tmp_path / "callgrind.out").write_text("desc: Trigger: Program termination\ntotals: 0\n")
    (tmp_path / "callgrind.out.1").write_text(
        "version: 1\ncreator: callgrind-3.19.0\ndesc: Trigger: Client Request: dijkstra_many\n"
        "events: Ir\nfl=x\n0 5\nsummary: 123456\ntotals: 123456\n")
    (tmp_path / "callgrind.out.2").write_text("desc: Trigger: Client Request: p_median\ntotals: 42\n")
    assert R.parse_callgrind(tmp_path) == {"dijkstra_many": 123456, "p_median": 42}


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def toy_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("X = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return repo


def test_resolve_and_extract_leave_the_checkout_alone(toy_repo, tmp_path):
    sha = R.resolve(toy_repo, "HEAD")
    assert len(sha) == 40
    (toy_repo / "a.py").write_text("X = 2  # uncommitted\n")
    status_before = _git(toy_repo, "status", "--porcelain")
    tree = R.extract(toy_repo, sha, tmp_path / "cache")
    assert (tree / "a.py").read_text() == "X = 1\n"
    assert R.extract(toy_repo, sha, tmp_path / "cache") == tree  # reused
    assert _git(toy_repo, "status", "--porcelain") == status_before
    assert _git(toy_repo, "worktree", "list").count("\n") == 1
    assert [p.name for p in (tmp_path / "cache" / "src").iterdir()] == [sha]


def test_probe_lists_and_runs_a_case_natively(tmp_path):
    out = subprocess.run([sys.executable, str(R.PROBE), "--list"], check=True, capture_output=True, text=True)
    names = out.stdout.split()
    assert {"dijkstra_many", "assign_bfw", "traffic_generator", "ccme_wqi", "sketches",
            "quality_scan"} <= set(names)
    env = dict(os.environ, PYTHONPATH=str(REPO), NUMBA_NUM_THREADS="1")
    report = tmp_path / "r.json"
    subprocess.run([sys.executable, str(R.PROBE), "--time", "1", "--cases", "p_median,sketches,nope",
                    "--out", str(report)], check=True, env=env, cwd=tmp_path)
    got = json.loads(report.read_text())
    assert got["p_median"]["status"] == "ok" and len(got["p_median"]["seconds"]) == 1
    assert got["sketches"]["status"] == "ok"
    assert got["nope"]["status"] == "missing"


def _load_probe():
    spec = importlib.util.spec_from_file_location("uda_regress_probe_under_test", R.PROBE)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    return probe


def test_probe_first_falls_back_in_order_and_raises_the_last_error():
    probe = _load_probe()
    assert probe._first("uda.no_such_module:X", "json:dumps") is json.dumps
    assert probe._first("json:no_such_name", "json:loads", "json:dumps") is json.loads
    with pytest.raises(ModuleNotFoundError, match="uda.nope"):
        probe._first("json:no_such_name", "uda.nope:X")
    with pytest.raises(AttributeError, match="no_such_name"):
        probe._first("uda.nope:X", "json:no_such_name")


def test_probe_builds_every_case_in_the_current_tree(tmp_path):
    """Every case resolves its names here (a moved kernel left behind would show as missing)."""
    names = subprocess.run([sys.executable, str(R.PROBE), "--list"], check=True, capture_output=True,
                           text=True).stdout.split()
    env = dict(os.environ, PYTHONPATH=str(REPO), NUMBA_NUM_THREADS="1")
    report = tmp_path / "r.json"
    subprocess.run([sys.executable, str(R.PROBE), "--build", "--out", str(report)], check=True, env=env,
                   cwd=tmp_path)
    got = json.loads(report.read_text())
    assert sorted(got) == sorted(names) and len(names) >= 17
    assert {n: e["status"] for n, e in got.items() if e["status"] != "ok"} == {}
    assert not any("seconds" in e for e in got.values())  # built, not run


def test_probe_takes_a_moved_name_from_the_old_tree_not_from_the_checkout(tmp_path):
    """In a tree from before a move, the old location is used; an editable install's finder,
    which would hand out this checkout's uda.contract, is not consulted for the tree's modules."""
    old = tmp_path / "old" / "uda"
    (old / "synth").mkdir(parents=True)
    (old / "__init__.py").write_text("")
    (old / "synth" / "__init__.py").write_text("")
    (old / "synth" / "water.py").write_text("PARAMETERS = ('old_tree',)\n")
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('probe', {str(R.PROBE)!r})\n"
            "probe = importlib.util.module_from_spec(spec); spec.loader.exec_module(probe)\n"
            "probe._tree_only()\n"
            "print(probe._first('uda.contract:WATER_PARAMETERS', 'uda.synth.water:PARAMETERS'))\n"
            "try:\n"
            "    import uda.contract\n"
            "except ImportError as exc:\n"
            "    print('refused', exc)\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "old"))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env,
                         cwd=tmp_path).stdout.splitlines()
    assert out[0] == "('old_tree',)"
    assert out[1].startswith("refused No module named 'uda.contract'")


def test_probe_reports_kernels_missing_in_an_old_tree(tmp_path):
    old = tmp_path / "old" / "uda" / "kernels"
    old.mkdir(parents=True)
    (old.parent / "__init__.py").write_text("")
    (old / "__init__.py").write_text("")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "old"))
    report = tmp_path / "r.json"
    subprocess.run([sys.executable, str(R.PROBE), "--warm", "--cases", "dijkstra_many",
                    "--out", str(report)], check=True, env=env, cwd=tmp_path)
    got = json.loads(report.read_text())["dijkstra_many"]
    assert got["status"] == "missing" and "uda.kernels.paths" in got["detail"]


def test_probe_env_pins_seed_threads_tree_and_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "8")
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    env = R.probe_env(tmp_path / "tree", ("haswell", "+avx2"), tmp_path / "cache")
    assert env["PYTHONPATH"] == str(tmp_path / "tree")
    assert env["NUMBA_NUM_THREADS"] == "1" and env["PYTHONHASHSEED"] == "0"
    assert env["NUMBA_CPU_NAME"] == "haswell" and env["NUMBA_CPU_FEATURES"] == "+avx2"
    assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "cache" / "numba")


def _fake_measure(counts_by_tree):
    def measure(tree, **_kw):
        counts = counts_by_tree[Path(tree).name]
        return {k: _ok(v) for k, v in counts.items()}, {"warm": 0.0, "callgrind": 0.0}
    return measure


@pytest.fixture
def two_commits(toy_repo):
    base = R.resolve(toy_repo, "HEAD")
    (toy_repo / "a.py").write_text("X = 3\n")
    _git(toy_repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "two")
    return toy_repo, base, R.resolve(toy_repo, "HEAD")


def _patch_tools(monkeypatch, measure):
    monkeypatch.setattr(R, "helper_library", lambda cache: Path("libfake.so"))
    monkeypatch.setattr(R, "valgrind_cpu", lambda cache: ("haswell", ""))
    monkeypatch.setattr(R, "probe_cases", lambda: ["k1", "k2"])
    monkeypatch.setattr(R, "measure_revision", measure)


@pytest.mark.parametrize(("head_k1", "code", "verdict"), [(1_150_000, 1, "slower"), (1_000_040, 0, "ok")])
def test_cli_exit_status_and_json(two_commits, tmp_path, monkeypatch, head_k1, code, verdict):
    repo, base, head = two_commits
    _patch_tools(monkeypatch, _fake_measure({base: {"k1": 1_000_000, "k2": 500},
                                             head: {"k1": head_k1, "k2": 500}}))
    res = CliRunner().invoke(cli, ["regress", base, head, "--repo", str(repo), "--cache-dir",
                                   str(tmp_path / "c"), "--json"])
    assert res.exit_code == code, res.output
    out = json.loads(res.stdout)
    assert out["failed"] is (code == 1)
    assert {k["kernel"]: k["status"] for k in out["kernels"]} == {"k1": verdict, "k2": "ok"}
    table = CliRunner().invoke(cli, ["regress", base, head, "--repo", str(repo), "--cache-dir",
                                     str(tmp_path / "c")])
    assert table.exit_code == code
    assert ("REGRESSION in k1" in table.stdout) is (code == 1)


def test_cli_lists_kernels_not_measured_at_base_without_failing(two_commits, tmp_path, monkeypatch):
    repo, base, head = two_commits

    def measure(tree, **_kw):
        if Path(tree).name == base:
            return ({"k1": _ok(1000), "k2": {"status": "missing", "detail": "ModuleNotFoundError: x"}},
                    {"warm": 0.0, "callgrind": 0.0})
        return {"k1": _ok(1000), "k2": _ok(500)}, {"warm": 0.0, "callgrind": 0.0}

    _patch_tools(monkeypatch, measure)
    args = ["regress", base, head, "--repo", str(repo), "--cache-dir", str(tmp_path / "c")]
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["not_measured_at_base"] == ["k2"] and out["failed"] is False
    row = next(k for k in out["kernels"] if k["kernel"] == "k2")
    assert row["status"] == "new" and row["detail"] == "not measured at BASE (ModuleNotFoundError: x)"
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0
    assert "not measured at BASE" in " ".join(table.stdout.split())
    assert "no regression\nnot measured at BASE (not compared): k2" in table.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["nosuchrev", "HEAD"], "unknown revision 'nosuchrev'"),
    (["HEAD", "HEAD", "--threshold", "0"], "--threshold 0.0 is out of range"),
    (["HEAD", "HEAD", "--kernels", "k1,bogus"], "unknown kernel 'bogus'"),
])
def test_cli_user_errors(two_commits, tmp_path, monkeypatch, args, message):
    repo, base, head = two_commits
    _patch_tools(monkeypatch, _fake_measure({}))
    res = CliRunner().invoke(cli, ["regress", *args, "--repo", str(repo), "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output


def test_cli_not_a_repository(tmp_path, monkeypatch):
    _patch_tools(monkeypatch, _fake_measure({}))
    res = CliRunner().invoke(cli, ["regress", "HEAD", "HEAD", "--repo", str(tmp_path)])
    assert res.exit_code == 2
    assert "is not inside a git repository" in res.output


def test_cli_missing_valgrind(two_commits, tmp_path, monkeypatch):
    repo, base, head = two_commits
    monkeypatch.setattr(R, "probe_cases", lambda: ["k1"])
    monkeypatch.setattr(R.shutil, "which", lambda tool: None if tool == "valgrind" else "/usr/bin/" + tool)
    res = CliRunner().invoke(cli, ["regress", base, head, "--repo", str(repo), "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 2
    assert "valgrind is not installed" in res.output


def test_cli_list():
    res = CliRunner().invoke(cli, ["regress", "--list"])
    assert res.exit_code == 0
    assert "dijkstra_many" in res.output.split()


def test_cli_needs_base():
    res = CliRunner().invoke(cli, ["regress"])
    assert res.exit_code == 2
    assert "give the BASE revision" in res.output
