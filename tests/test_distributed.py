"""Dask distributed: a real scheduler and workers on loopback, a worker killed mid-task,
and a damaged dataset file named in the error."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.generate import generate
from uda.scales import resolve_scale
from uda.store import open_dataset
from uda.tasks.base import compare_answers

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    """A tiny dataset split into many files, so a Dask task has many partitions."""
    out = tmp_path_factory.mktemp("dist") / "ds"
    generate(out, scale=resolve_scale("tiny", days=3), seed=5, workers=2, chunk_rows=2000)
    assert len(open_dataset(out).files("traffic")) >= 8
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def external_cluster():
    """``dask scheduler`` and ``dask worker`` started as separate processes on loopback."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask_cmd, "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", "127.0.0.1:0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                   "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1",
                                   "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def _route_json(args):
    res = CliRunner().invoke(cli, ["run", "route", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_external_scheduler_gives_the_polars_answer(many_files, external_cluster):
    from uda.tasks.route import run

    polars = run(many_files, engine="polars")
    remote = run(many_files, engine="dask", scheduler=external_cluster)
    assert compare_answers(polars.answer, remote.answer, rtol=1e-9) == []
    # and through the command line
    b = _route_json(["--data", str(many_files), "--engine", "dask", "--scheduler", external_cluster])
    assert b["objective"] == pytest.approx(polars.quality["objective"], rel=1e-9)
    # flow streams blocks of sensors and exchanges neighbour series between them
    from uda.tasks.flow import run as flow

    kw = {"models": "last,ridge_sp", "horizons": "1,3"}
    steps = []
    polars = flow(many_files, engine="polars", **kw)
    remote = flow(many_files, engine="dask", scheduler=external_cluster,
                  progress=lambda *a: steps.append(a), **kw)
    assert compare_answers(polars.answer, remote.answer, rtol=1e-9) == []
    assert steps[-1][1] == steps[-1][2] > 1  # every block reported done


class _KillOnFirstResult(distributed.diagnostics.plugin.SchedulerPlugin):
    """Kill (SIGKILL) the worker process that produced the first result, mid-computation."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.killed: int | None = None

    def transition(self, key, start, finish, *args, **kwargs):
        if self.killed is None and finish == "memory":
            ts = self.scheduler.tasks.get(key)
            ws = ts.who_has and next(iter(ts.who_has))
            pending = sum(1 for t in self.scheduler.tasks.values() if t.state in ("waiting", "processing", "queued"))
            if ws is not None and ws.pid and pending > 0:
                self.killed = ws.pid
                os.kill(ws.pid, signal.SIGKILL)


def test_worker_killed_mid_task_does_not_change_the_answer(many_files):
    from uda.tasks.route import run

    expected = run(many_files, engine="polars")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=50) as cluster:
        plugin = _KillOnFirstResult(cluster.scheduler)
        cluster.scheduler.add_plugin(plugin)
        got = run(many_files, engine="dask", scheduler=cluster.scheduler_address)
    assert plugin.killed is not None, "no worker was killed"
    assert compare_answers(expected.answer, got.answer, rtol=1e-9) == []


@pytest.mark.parametrize(("task", "engine"), [("route", "polars"), ("route", "dask"), ("flow", "polars"),
                                             ("flow", "dask")])
def test_damaged_file_is_named(tmp_path, task, engine):
    out = tmp_path / "ds"
    generate(out, scale=resolve_scale("tiny", days=3), seed=1, workers=1, tables=("traffic",))
    part = open_dataset(out).files("traffic")[0]
    data = bytearray(part.read_bytes())
    for i in range(64):
        data[8 + i] ^= 0xFF  # the first column chunk (sensor_id), which every task reads
    part.write_bytes(bytes(data))
    res = CliRunner().invoke(cli, ["run", task, "--data", str(out), "--engine", engine, "--json"])
    assert res.exit_code == 2, res.output
    assert "raw/traffic/part-0000000.parquet" in res.output and "Traceback" not in res.output


def test_bad_scheduler_address(many_files):
    res = CliRunner().invoke(cli, ["run", "route", "--data", str(many_files), "--engine", "dask",
                                   "--scheduler", f"tcp://127.0.0.1:{_free_port()}"])
    assert res.exit_code == 2 and "cannot connect to the Dask scheduler" in res.output
    res = CliRunner().invoke(cli, ["run", "route", "--data", str(many_files), "--engine", "dask",
                                   "--scheduler", "local:zero"])
    assert res.exit_code == 2 and "worker count" in res.output
