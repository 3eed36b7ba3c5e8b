"""Hostile input and faults (issue 16): each ends in exit 2 with one line, no traceback,
and nothing damaged; or in the documented behaviour (signals, litter, checksums)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.errors import UserError


def _run(args: list[str]):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(res, *needles: str) -> str:
    """Exit 2, one ``Error:`` line on stderr, no traceback; returns the line."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), res.stderr
    assert "Traceback" not in res.output
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


# ---------------------------------------------------------------- 1: scheduler addresses

class _Listener:
    """A loopback TCP port that accepts connections and then says nothing (``reply=None``)
    or answers every connection with ``reply`` and closes it (a web server, say)."""

    def __init__(self, reply: bytes | None = None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.reply = reply
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            if self.reply is None:
                self.conns.append(conn)
            else:
                conn.sendall(self.reply)
                conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("reply", [None, b"HTTP/1.0 400 Bad request\r\n\r\n" * 4])
def test_probe_of_a_port_that_is_no_scheduler_ends_in_time(reply):
    from uda.engines import probe_scheduler

    srv = _Listener(reply)
    try:
        t0 = time.monotonic()
        with pytest.raises(UserError, match="cannot connect to the Dask scheduler|not a Dask scheduler"):
            probe_scheduler(srv.address, timeout=0.5)
        assert time.monotonic() - t0 < 4
    finally:
        srv.close()


def test_probe_accepts_a_real_scheduler():
    distributed = pytest.importorskip("distributed")
    from uda.engines import connect_client, probe_scheduler

    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as cluster:
        probe_scheduler(cluster.scheduler_address, timeout=5)
        client = connect_client(cluster.scheduler_address, timeout=5)
        client.close()


@pytest.mark.parametrize("address", ["tcp://:::", "tcp://", "tcp://host", "tcp://127.0.0.1:0",
                                     "tcp://127.0.0.1:70000", "tcp://a b:1", "udp://127.0.0.1:1"])
def test_malformed_scheduler_address_is_one_line(tiny_dataset, address):
    t0 = time.monotonic()
    res = _run(["run", "route", "--data", tiny_dataset, "--engine", "dask", "--scheduler", address])
    assert_one_line_error(res, "scheduler")
    assert time.monotonic() - t0 < 5


def test_silent_port_through_the_cli_ends_in_time(tiny_dataset, monkeypatch):
    import uda.engines

    monkeypatch.setattr(uda.engines, "CONNECT_TIMEOUT_S", 0.5)
    srv = _Listener(None)
    try:
        t0 = time.monotonic()
        res = _run(["run", "route", "--data", tiny_dataset, "--engine", "dask", "--scheduler", srv.address])
        assert_one_line_error(res, "no Dask answer within 0.5 s")
        assert time.monotonic() - t0 < 5
    finally:
        srv.close()


# ---------------------------------------------------------------- 4: signals end the case tree

_SLOW_TASK = '''
import os, time
from pathlib import Path

def run(data, *, engine, scheduler=None, **options):
    """Record the pids of this case process and its Dask workers and nannies, then wait."""
    from distributed import Client
    import psutil
    pids = {os.getpid()}
    with Client(scheduler, timeout="30s", set_as_default=False) as client:
        for pid in client.run(os.getpid).values():
            pids.add(pid)
            pids.add(psutil.Process(pid).ppid())
    Path(options["pids"] + ".part").write_text(" ".join(map(str, sorted(pids))))
    os.rename(options["pids"] + ".part", options["pids"])
    time.sleep(600)
'''


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _poll(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_to_bench_ends_the_case_tree_with_its_dask_workers(tmp_path, sig):
    pytest.importorskip("distributed")
    import os
    import signal
    import subprocess
    import sys

    (tmp_path / "slowtask.py").write_text(_SLOW_TASK)
    pids_file = tmp_path / "pids.txt"
    (tmp_path / "suite.toml").write_text(
        'pythonpath = ["."]\ntimeout_s = 300\n[[cases]]\ntask = "slow"\ntarget = "slowtask:run"\n'
        f'data = false\nengines = ["dask"]\nschedulers = ["local:1"]\nrepeats = 0\n'
        f'options = {{ pids = "{pids_file}" }}\n')
    bench = subprocess.Popen([sys.executable, "-m", "uda.cli.main", "bench", "--suite",
                              str(tmp_path / "suite.toml"), "--out", str(tmp_path / "res")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _poll(pids_file.exists, 120), "the case never started its workers"
        pids = [int(x) for x in pids_file.read_text().split()]
        assert len(pids) >= 2 and all(_alive(p) for p in pids)  # the case and its worker
        bench.send_signal(getattr(signal, sig))
        bench.wait(timeout=30)
        assert bench.returncode != 0
        assert _poll(lambda: not any(_alive(p) for p in pids), 10), \
            [p for p in pids if _alive(p)]
        assert "Traceback" not in bench.stderr.read()
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for p in pids if pids_file.exists() else []:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


# ---------------------------------------------------------------- datasets for damage tests

@pytest.fixture(scope="module")
def feeds_dataset(tmp_path_factory):
    """Two days of the tiny city published as department feeds, standardised (clean/ written)."""
    from uda.generate import generate
    from uda.scales import resolve_scale
    from uda.synth.profiles import resolve_profile
    from uda.tasks.standardise import standardise

    out = tmp_path_factory.mktemp("rel") / "feeds"
    generate(out, scale=resolve_scale("tiny", days=2), seed=3, workers=2, defects=resolve_profile("realistic"))
    standardise(out)
    assert (out / "clean" / "manifest.json").is_file()
    return out


@pytest.fixture
def feeds_copy(feeds_dataset, tmp_path):
    import shutil

    dest = tmp_path / "ds"
    shutil.copytree(feeds_dataset, dest)
    return dest


def _snapshot(root) -> dict[str, bytes]:
    from pathlib import Path

    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def _flip_byte(path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x10
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------- 2: verify covers clean/

def test_verify_reports_a_deleted_clean_file(feeds_copy):
    victim = sorted((feeds_copy / "clean" / "traffic").glob("*.parquet"))[0]
    victim.unlink()
    res = _run(["verify", feeds_copy])
    assert res.exit_code == 2 and "clean/traffic" in res.stderr and "missing" in res.stderr
    assert "Traceback" not in res.output
    res = _run(["run", "flow", "--data", feeds_copy])
    assert_one_line_error(res, f"clean/traffic/{victim.name}", "missing")


def test_verify_reports_a_changed_clean_byte(feeds_copy):
    victim = sorted((feeds_copy / "clean" / "traffic").glob("*.parquet"))[0]
    _flip_byte(victim)
    for quick in ([], ["--quick"]):
        res = _run(["verify", feeds_copy, *quick])
        assert res.exit_code == 2 and "clean/traffic" in res.stderr and "checksum" in res.stderr


def test_verify_reports_clean_without_manifest(feeds_copy):
    (feeds_copy / "clean" / "manifest.json").unlink()
    assert_one_line_error(_run(["verify", feeds_copy]), "clean/ exists but has no manifest.json")


def test_verify_of_an_intact_standardised_dataset(feeds_dataset):
    res = _run(["verify", feeds_dataset])
    assert res.exit_code == 0 and "clean/ matches clean/manifest.json" in res.output


# ---------------------------------------------------------------- 11: a run checks files on open

def _dataset_copy(src, tmp_path):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(src, ds)
    return ds


@pytest.mark.parametrize(("table", "args"), [("traffic", ["flow"]), ("taps", ["route", "--od", "taps"])])
def test_run_refuses_a_truncated_raw_file(tiny_dataset, tmp_path, table, args):
    from uda.store import open_dataset

    ds = _dataset_copy(tiny_dataset, tmp_path)
    rel = open_dataset(ds).table(table)["files"][0]["path"]
    victim = ds / rel
    victim.write_bytes(victim.read_bytes()[:-100])
    before = _snapshot(ds)
    assert_one_line_error(_run(["run", *args, "--data", ds]), rel, "bytes")
    assert _snapshot(ds) == before


def test_run_refuses_a_same_size_file_with_another_footer(tiny_dataset, tmp_path):
    """A file replaced by another Parquet file of the same length (10 rows, padded)."""
    import pyarrow.parquet as pq

    from uda.store import open_dataset

    ds = _dataset_copy(tiny_dataset, tmp_path)
    rel = open_dataset(ds).table("traffic")["files"][0]["path"]
    victim = ds / rel
    size = victim.stat().st_size
    pq.write_table(pq.read_table(victim).slice(0, 10), victim)
    data = victim.read_bytes()
    victim.write_bytes(data[:4] + b"\0" * (size - len(data)) + data[4:])  # the footer stays last
    assert victim.stat().st_size == size
    assert_one_line_error(_run(["run", "flow", "--data", ds]), rel, "does not match the manifest")


def test_page_checksums_are_written_and_verify_checks_them(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from uda.store import write_part

    t = pa.table({"a": list(range(20000)), "b": [float(i) / 7 for i in range(20000)]})
    part = write_part(tmp_path, "x.parquet", t)
    p = tmp_path / part.path
    _flip_byte(p, 0.4)
    with pytest.raises(OSError, match="CRC"):
        pq.read_table(p, page_checksum_verification=True)


# ---------------------------------------------------------------- 5 and 12: route options and --out

BRAESS = __import__("pathlib").Path(__file__).parent / "data" / "tntp" / "Braess-Example"


@pytest.mark.parametrize("args", [["--trip-rate", "inf"], ["--trip-rate", "nan"], ["--beta", "inf"],
                                  ["--gap", "nan"], ["--gap", "inf"], ["--trip-rate", "-1"],
                                  ["--trip-rate", "1e308"]])
def test_route_refuses_impossible_numbers(tiny_dataset, args):
    before = _snapshot(tiny_dataset)
    assert_one_line_error(_run(["run", "route", "--data", tiny_dataset, *args]), args[0])
    assert _snapshot(tiny_dataset) == before


def test_route_tntp_refuses_infinite_gap():
    assert_one_line_error(_run(["run", "route", "--tntp", BRAESS, "--gap", "inf"]), "--gap")


def test_route_does_not_overwrite_its_out_file(tmp_path):
    out = tmp_path / "flows.csv"
    out.write_text("precious\n")
    assert_one_line_error(_run(["run", "route", "--tntp", BRAESS, "--out", out]), "already exists", "--force")
    assert out.read_text() == "precious\n"
    res = _run(["run", "route", "--tntp", BRAESS, "--out", out, "--force"])
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("init_node,term_node,flow")


def test_route_does_not_overwrite_results_in_its_out_folder(tiny_dataset, tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert_one_line_error(_run(["run", "route", "--data", tiny_dataset, "--out", out]), "summary.json", "--force")
    assert (out / "summary.json").read_text() == "{}"
    res = _run(["run", "route", "--data", tiny_dataset, "--out", out, "--force", "--max-iter", "5"])
    assert res.exit_code == 0, res.output
    assert (out / "summary.json").read_text() != "{}"


def test_route_refuses_a_remote_out_that_exists():
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/rel16/flows.csv", b"x")
    assert_one_line_error(_run(["run", "route", "--tntp", BRAESS, "--out", "memory://rel16/flows.csv"]),
                          "already holds results")
    assert fs.cat("/rel16/flows.csv") == b"x"


# ---------------------------------------------------------------- 6: malformed manifests

def _edit_manifest(ds, edit) -> None:
    import json

    m = json.loads((ds / "manifest.json").read_text())
    out = edit(m)
    (ds / "manifest.json").write_text(out if isinstance(out, str) else json.dumps(m))


def _first(m):
    return next(iter(m["tables"].values()))


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda m: _first(m).__setitem__("files", ["a.parquet", "b.parquet"]), "file 1 must be an object"),
    (lambda m: _first(m)["files"][0].__setitem__("path", 7), "bad path"),
    (lambda m: _first(m)["files"][0].__setitem__("path", "city/a\0b.parquet"), "bad path"),
    (lambda m: _first(m)["files"][0].__setitem__("path", "/etc/passwd"), "bad path"),
    (lambda m: _first(m)["files"][0].__setitem__("path", "../../etc/passwd"), "outside the dataset"),
    (lambda m: _first(m)["files"][0].__setitem__("rows", -1), "rows and bytes"),
    (lambda m: _first(m)["files"][0].__setitem__("sha256", None), "sha256"),
    (lambda m: _first(m).__setitem__("schema", "oops"), "schema must be"),
    (lambda m: _first(m).__setitem__("rows", "many"), "rows must be"),
    (lambda m: m.__setitem__("format_version", 99), "format_version 99"),
    (lambda m: m.__setitem__("format_version", "1"), "format_version '1'"),
    (lambda m: m.__setitem__("params", [1]), "'params' must be an object"),
    (lambda m: "[" * 200_000 + "]" * 200_000, "nested deeper"),
    (lambda m: '{"format": "uda-dataset", "tables": {}, "x": ' + "[" * 200_000 + "]" * 200_000 + "}",
     "nested deeper"),
    (lambda m: '{"format": "uda-dataset", "format_version": 1, "tables": {}, "x": ' + "[" * 20 + "]" * 20 + "}",
     "nested deeper"),
])
def test_malformed_manifest_is_one_line_for_verify_and_run(tiny_dataset, tmp_path, edit, needle):
    ds = _dataset_copy(tiny_dataset, tmp_path)
    _edit_manifest(ds, edit)
    before = _snapshot(ds)
    assert_one_line_error(_run(["verify", ds]), needle)
    assert_one_line_error(_run(["run", "route", "--data", ds]), needle)
    assert_one_line_error(_run(["verify", ds, "--quick"]), needle)
    assert _snapshot(ds) == before


def test_oversized_manifest_is_refused_before_reading(tiny_dataset, tmp_path, monkeypatch):
    import uda.store.manifest

    ds = _dataset_copy(tiny_dataset, tmp_path)
    monkeypatch.setattr(uda.store.manifest, "MAX_MANIFEST_BYTES", 1000)
    assert_one_line_error(_run(["verify", ds]), "more than a manifest can be")


def test_malformed_clean_manifest(feeds_copy):
    _edit_manifest(feeds_copy / "clean", lambda m: m.__setitem__("format_version", 2))
    res = _run(["verify", feeds_copy])
    assert res.exit_code == 2 and "clean/" in res.stderr and "format_version 2" in res.stderr
    assert_one_line_error(_run(["run", "flow", "--data", feeds_copy]), "format_version 2")


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
    res = _run(["bench", "--suite", _suite_file(tmp_path, text), "--out", out])
    assert_one_line_error(res, needle)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(("args", "needle"), [(["--scale", "gigantic"], "unknown scale 'gigantic'"),
                                              (["--scale", "tiny:days=0"], "--days 0 is impossible"),
                                              (["--engine", "spark"], "unknown engine 'spark'")])
def test_bad_bench_overrides_exit_2(tmp_path, args, needle):
    res = _run(["bench", "--suite", _suite_file(tmp_path, _CASE), "--out", tmp_path / "res", *args])
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
    assert_one_line_error(_run(["report", bad]), needle)
    assert_one_line_error(_run(["compare", good, bad]), needle)
    assert not (tmp_path / "b.md").exists()


def test_report_of_a_folder_says_it_is_a_folder(tmp_path):
    assert_one_line_error(_run(["report", tmp_path]), "is a folder")


@pytest.mark.parametrize("b", [
    lambda: {**_results_obj(), "cases": []},
    lambda: _results_obj([0.0, 0.0, 0.0]),
    lambda: _results_obj([0.5]),
    lambda: {**_results_obj(), "cases": [{**_results_obj()["cases"][0], "id": "other/polars/tiny"}]},
])
def test_compare_with_nothing_to_compare_exits_2(tmp_path, b):
    a = _write_json(tmp_path / "a.json", _results_obj())
    assert_one_line_error(_run(["compare", a, _write_json(tmp_path / "b.json", b())]), "nothing to compare")


def test_compare_of_comparable_runs_still_passes(tmp_path):
    a = _write_json(tmp_path / "a.json", _results_obj())
    res = _run(["compare", a, a])
    assert res.exit_code == 0 and "no regression found" in res.output


@pytest.mark.parametrize("args", [["--days", "nan"], ["--days", "inf"], ["--days", "-1"], ["--days", "1e300"],
                                  ["--days", "1", "--deadline", "1e400s"], ["--days", "1", "--sensors", "0"]])
def test_size_refuses_impossible_numbers(tmp_path, args):
    a = _write_json(tmp_path / "a.json", _results_obj())
    res = _run(["size", "--sensors", "100", *args, "--results", a] if "--sensors" not in args
               else ["size", *args, "--results", a])
    assert_one_line_error(res)


# ---------------------------------------------------------------- 7, 10: generate --out

def test_generate_with_a_300_character_folder_name(tmp_path):
    assert_one_line_error(_run(["generate", "--out", tmp_path / ("x" * 300)]), "at most 200 bytes")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_generation_leaves_a_temp_folder_that_the_next_one_removes(tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "uda.cli.main", "generate", "--scale", "small",
                             "--out", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _poll(lambda: any(p.name.startswith(".ds.tmp-") for p in tmp_path.iterdir()), 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    litter = [p for p in tmp_path.iterdir() if p.name.startswith(".ds.tmp-")]
    assert litter and not out.exists()
    # an unrelated temp folder of a live process is kept
    import os

    live = tmp_path / f".ds.tmp-{os.getppid()}-0123abcd"
    live.mkdir()
    res = _run(["generate", "--out", out, "--sensors", "10", "--days", "1", "--tables", "traffic", "--json"])
    assert res.exit_code == 0, res.output
    assert "removed 1 temporary folder(s) left by killed generations" in res.stderr
    assert litter[0].name in res.stderr
    assert not litter[0].exists() and live.exists()
    assert _run(["verify", out]).exit_code == 0


# ---------------------------------------------------------------- the CLI boundary

def test_an_unexpected_exception_is_one_line_exit_1(monkeypatch):
    import uda.harness.sizing.city

    def boom(*a, **k):
        raise ZeroDivisionError("deliberate")

    monkeypatch.setattr(uda.harness.sizing.city, "size", boom)
    res = _run(["size", "--sensors", "1", "--days", "1"])
    assert res.exit_code == 1
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "internal error (ZeroDivisionError: deliberate)" in err[0] and "bug" in err[0]
    monkeypatch.setenv("UDA_DEBUG", "1")
    res = _run(["size", "--sensors", "1", "--days", "1"])
    assert isinstance(res.exception, ZeroDivisionError)
