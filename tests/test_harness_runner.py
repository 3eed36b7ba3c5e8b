"""The bench runner records every failure status while the other cases complete."""

from __future__ import annotations

import json
import multiprocessing
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from uda.errors import UserError
from uda.harness.results import load_results, source_digest
from uda.harness.runner.datasets import has_tables, run_in_child, scale_tables
from uda.harness.runner.suite import expand_suite, load_suite
from uda.harness.runner.summary import check_answers
from uda.harness.runner.supervise import run_suite
from uda.harness.suites import MID_SCALE
from uda.tasks.base import TaskResult

HERE = Path(__file__).resolve().parent
MODULE = Path(__file__).stem


# Test-only cases, run by the harness in child processes through ``target = "module:function"``
# with the tests folder on the suite's ``pythonpath``.

def case_ok(data, *, engine="polars", scheduler=None, **options):
    n = int(options.get("n", 1000))
    x = np.arange(n, dtype=np.int64)
    return TaskResult(task="ok", engine=engine, answer={"sum": int(x.sum()), "mean": float(x.mean())},
                      quality={"score": 1.0}, rows_in=n, bytes_in=x.nbytes)


def case_sleep(data, *, engine="polars", scheduler=None, **options):
    time.sleep(60)
    return case_ok(data, engine=engine)


def case_oom(data, *, engine="polars", scheduler=None, **options):
    held = []
    for _ in range(60):  # up to 3 GiB in 50 MiB steps; the runner's limit stops it early
        held.append(np.ones(50 * 2**20 // 8))
    return case_ok(data, engine=engine)


def case_raise(data, *, engine="polars", scheduler=None, **options):
    msg = "boom from the test case"
    raise ValueError(msg)


def case_engine_dependent(data, *, engine="polars", scheduler=None, **options):
    value = 1.0 if engine == "polars" else 1.5
    return TaskResult(task="wrong", engine=engine, answer={"value": value, "n": 3}, rows_in=3)


def _suite(tmp_path: Path, cases: list[dict]) -> Path:
    spec = {"name": "test", "pythonpath": [str(HERE)], "repeats": 1, "warmup": 0,
            "cold": "cached", "timeout_s": 20, "memory_mb": 2000, "cases": cases}
    p = tmp_path / "suite.json"
    p.write_text(json.dumps(spec))
    return p


def test_every_failure_status_is_recorded(tmp_path):
    suite = load_suite(_suite(tmp_path, [
        {"task": "ok", "target": f"{MODULE}:case_ok", "data": False, "engines": ["polars", "dask"]},
        {"task": "sleep", "target": f"{MODULE}:case_sleep", "data": False, "timeout_s": 1.5},
        {"task": "oom", "target": f"{MODULE}:case_oom", "data": False, "memory_mb": 400},
        {"task": "raise", "target": f"{MODULE}:case_raise", "data": False},
        {"task": "wrong", "target": f"{MODULE}:case_engine_dependent", "data": False,
         "engines": ["polars", "dask"]},
    ]))
    res, path = run_suite(suite, out_dir=tmp_path / "results")
    by_id = {c["id"]: c for c in res["cases"]}
    assert {cid: c["status"] for cid, c in by_id.items()} == {
        "ok/polars/-": "ok",
        "ok/dask-threads/-": "ok",
        "sleep/polars/-": "timeout",
        "oom/polars/-": "oom",
        "raise/polars/-": "error",
        "wrong/polars/-": "ok",
        "wrong/dask-threads/-": "wrong_answer",
    }
    ok = by_id["ok/polars/-"]
    assert ok["summary"]["wall_s_median"] > 0
    assert ok["summary"]["peak_rss_bytes"] > 10 * 2**20
    assert ok["rows_in"] == 1000 and ok["quality"] == {"score": 1.0}
    assert len(ok["warm"]) == 1 and ok["cold"]["wall_s"] > 0
    assert by_id["ok/dask-threads/-"]["answer_check"]["status"] == "agrees"
    assert "boom from the test case" in by_id["raise/polars/-"]["message"]
    assert "ValueError" in by_id["raise/polars/-"]["message"]
    assert "1.5 s" in by_id["sleep/polars/-"]["message"]
    assert "400 MiB" in by_id["oom/polars/-"]["message"]
    wrong = by_id["wrong/dask-threads/-"]
    assert wrong["answer_check"]["reference"] == "wrong/polars/-"
    assert wrong["summary"] is None  # a wrong answer's time does not count
    assert wrong["warm"], "its measurements are kept for inspection"
    assert ok["source_sha256"] == res["source_sha256"] == source_digest()
    loaded = load_results(path)
    assert loaded["run_id"] == res["run_id"] and path.parent == tmp_path / "results"
    assert loaded["machine"]["cores_logical"] >= 1 and loaded["packages"]["numpy"]


def test_runs_never_overwrite_each_other(tmp_path):
    suite = load_suite(_suite(tmp_path, [{"task": "ok", "target": f"{MODULE}:case_ok",
                                          "data": False, "repeats": 0}]))
    _, a = run_suite(suite, out_dir=tmp_path)
    _, b = run_suite(suite, out_dir=tmp_path)
    assert a != b and a.is_file() and b.is_file()


def test_toml_suite_expands_the_matrix(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('seed = 3\nrepeats = 2\n[[cases]]\ntask = "route"\nengines = ["polars", "dask"]\n'
                 'schedulers = ["threads", "processes"]\nscales = ["tiny", "small"]\n'
                 'options = {algorithm = "bfw"}\n')
    cases = expand_suite(load_suite(p))
    assert [c.id for c in cases] == [
        "route/polars/tiny/algorithm=bfw", "route/polars/small/algorithm=bfw",
        "route/dask-threads/tiny/algorithm=bfw", "route/dask-threads/small/algorithm=bfw",
        "route/dask-processes/tiny/algorithm=bfw", "route/dask-processes/small/algorithm=bfw"]
    assert all(c.repeats == 2 and c.target == "uda.tasks.route:run" for c in cases)
    only = expand_suite(load_suite(p), engines=["dask"], schedulers=["sync", "local"], scales=["tiny"])
    assert [c.id for c in only] == ["route/dask-sync/tiny/algorithm=bfw", "route/dask-local:2/tiny/algorithm=bfw"]


@pytest.mark.parametrize(("text", "suffix", "message"), [
    ("cases = [", ".toml", "is not valid TOML"),
    ('{"cases": []}', ".json", "non-empty \"cases\" list"),
    ('{"cases": [{"task": "nope"}]}', ".json", "unknown task 'nope'"),
    ('{"cases": [{"task": "route", "repeats": -1, "scales": ["tiny"]}]}', ".json", "repeats must be"),
    ('{"cases": [{"task": "route", "colour": 1}]}', ".json", "unknown key(s) colour"),
])
def test_bad_suite_files(tmp_path, text, suffix, message):
    p = tmp_path / f"bad{suffix}"
    p.write_text(text)
    with pytest.raises(UserError, match=None) as exc:
        expand_suite(load_suite(p))
    assert message in str(exc.value)


def test_unknown_suite_name():
    with pytest.raises(UserError, match="unknown suite 'nosuch'"):
        load_suite("nosuch")


def case_count_traffic(data, *, engine="polars", scheduler=None, **options):
    if engine == "polars":
        n = data.scan("traffic").select("sensor_id").collect().height
    else:
        from uda.engines import dask_scheduler

        with dask_scheduler(scheduler):
            n = int(data.dask("traffic", columns=["sensor_id"]).shape[0].compute())
    return TaskResult(task="count", engine=engine, answer={"rows": n}, rows_in=n,
                      bytes_in=data.table("traffic")["bytes"])


def test_missing_dataset_is_generated_and_recorded(tmp_path):
    spec = {"name": "data", "pythonpath": [str(HERE)], "repeats": 1, "cold": "cached", "seed": 5,
            "datasets_dir": str(tmp_path / "ds"),
            "cases": [{"task": "count", "target": f"{MODULE}:case_count_traffic",
                       "engines": ["polars"], "scales": ["tiny:days=1,sensors=10"]}]}
    p = tmp_path / "suite.json"
    p.write_text(json.dumps(spec))
    res, _ = run_suite(load_suite(p), out_dir=None)
    assert [c["status"] for c in res["cases"]] == ["ok"], res["cases"]
    ds = res["datasets"]["tiny:days=1,sensors=10-seed5"]
    assert Path(ds["path"]) == tmp_path / "ds" / "tiny-days1-sensors10-seed5"
    assert ds["params"]["sensors"] == 10 and ds["params"]["days"] == 1
    assert len(ds["manifest_sha256"]) == 64
    assert res["cases"][0]["rows_in"] == 10 * 288 == ds["tables"]["traffic"]["rows"]


def test_generated_dataset_has_the_bytes_of_uda_generate(tmp_path):
    """The harness generates with the library (in a process of its own): the same files as the command."""
    import hashlib

    from click.testing import CliRunner

    from uda.cli.main import cli
    from uda.harness.runner.datasets import ensure_dataset

    scale = "tiny:days=1,sensors=10,defects=realistic,chunk-rows=1000,tables=traffic"
    path = ensure_dataset(scale, seed=3, datasets_dir=tmp_path / "lib")
    ref = tmp_path / "cli"
    res = CliRunner().invoke(cli, ["generate", "--scale", "tiny", "--days", "1", "--sensors", "10", "--defects",
                                   "realistic", "--chunk-rows", "1000", "--tables", "traffic", "--seed", "3",
                                   "--out", str(ref)])
    assert res.exit_code == 0, res.output

    def files(root: Path) -> dict[str, str]:
        return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in sorted(root.rglob("*")) if f.is_file() and f.name != "manifest.json"}

    got, want = files(path), files(ref)
    assert len(want) > 5 and got == want
    m_got, m_want = (json.loads((p / "manifest.json").read_text()) for p in (path, ref))
    assert m_got["params"] == m_want["params"] and m_got["tables"] == m_want["tables"]
    with pytest.raises(UserError, match=r"`uda generate --scale tiny:days=1,sensors=10,start=2026-02-30 --seed 3` "
                                        r"failed: Error: "):
        ensure_dataset("tiny:days=1,sensors=10,start=2026-02-30", seed=3, datasets_dir=tmp_path / "bad")


def test_bad_scale_override():
    suite = {"source": "s", "cases": [{"task": "route", "scales": ["tiny:sensors"]}]}
    with pytest.raises(UserError, match="is not key=value"):
        expand_suite(suite)


def test_builtin_suites_expand():
    default = expand_suite(load_suite("default"))
    assert default and all(c.scale for c in default)
    assert {c.engine for c in default if c.task != "generate"} <= {"polars", "dask"}
    sweep = expand_suite(load_suite("sweep"))
    assert {c.scale.partition(":")[0] for c in sweep} == {"tiny", "small", "medium"}
    assert {c.scale for c in sweep if c.task == "flow"} == {"tiny", "small", MID_SCALE}
    assert {c.scale for c in expand_suite(load_suite("validate")) if c.task == "flow"} == {"medium"}
    assert all(c.cold == "cached" for c in sweep)


def test_interrupted_run_kills_the_case_process(tmp_path, monkeypatch):
    import psutil

    from uda.harness.measure import TreeSampler

    seen = []
    real_sample = TreeSampler.sample

    def sample_then_interrupt(self):
        rss = real_sample(self)
        if self.root.pid != psutil.Process().pid:
            seen.append(self.root.pid)
            raise KeyboardInterrupt
        return rss

    monkeypatch.setattr(TreeSampler, "sample", sample_then_interrupt)
    suite = load_suite(_suite(tmp_path, [{"task": "sleep", "target": f"{MODULE}:case_sleep",
                                          "data": False}]))
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, out_dir=None)
    assert seen and not psutil.pid_exists(seen[0])


def test_cases_run_on_edited_code_are_not_judged():
    """Engines disagreeing because the source changed in between are unchecked, not wrong."""
    limits = {"rtol": 1e-9, "atol": 0.0}
    cases = [{"id": "t/polars/-", "engine": "polars", "status": "ok", "limits": limits,
              "source_sha256": "a", "_check_key": "t"},
             {"id": "t/dask-threads/-", "engine": "dask", "status": "ok", "limits": limits,
              "source_sha256": "b", "_check_key": "t"},
             {"id": "t/dask-sync/-", "engine": "dask", "status": "ok", "limits": limits,
              "source_sha256": "a", "_check_key": "t"}]
    answers = {"t/polars/-": {"x": np.array([1.0])}, "t/dask-threads/-": {"x": np.array([2.0])},
               "t/dask-sync/-": {"x": np.array([2.0])}}
    check_answers(cases, answers)
    assert cases[1]["status"] == "ok" and cases[1]["answer_check"]["status"] == "unchecked"
    assert "source changed" in cases[1]["answer_check"]["reason"]
    assert cases[2]["status"] == "wrong_answer"  # same code, different answer


def test_a_cached_dataset_without_a_table_the_generator_now_makes_is_made_again(tmp_path):
    def cached(tables):
        (tmp_path / "manifest.json").write_text(json.dumps({"params": {"tables": tables}}))
        return has_tables(tmp_path, "tiny")

    assert scale_tables("tiny") == ("traffic", "passenger", "water")
    assert scale_tables("tiny:tables=water") == ("water",)
    assert cached(["traffic", "passenger", "water"])
    assert not cached(["traffic", "passenger"])  # made before a kind was added: generate again
    assert has_tables(tmp_path, "tiny:tables=passenger")
    (tmp_path / "manifest.json").write_text("{not json")
    assert not has_tables(tmp_path, "tiny")
    assert not has_tables(tmp_path / "missing", "tiny")


def test_an_interrupted_wait_stops_the_generating_process():
    """Ctrl-C or SIGTERM while a dataset is generated stops the generator with the harness."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_in_child(time.sleep, 60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 < 20  # not the child's 60 s
    assert not multiprocessing.active_children()
    assert run_in_child(int, "7") == ("ok", "")
    assert run_in_child(int, "x")[0] == "error"
