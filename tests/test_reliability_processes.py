"""Hostile input and faults (issue 16), processes: a scheduler address that is malformed or no
scheduler, and signals to ``uda bench``, end in exit 2 with one line or end the whole case tree."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from cli_checks import assert_one_line_error, poll, run_cli

from uda.errors import UserError

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
    res = run_cli(["run", "route", "--data", tiny_dataset, "--engine", "dask", "--scheduler", address])
    assert_one_line_error(res, "scheduler")
    assert time.monotonic() - t0 < 5


def test_silent_port_through_the_cli_ends_in_time(tiny_dataset, monkeypatch):
    import uda.engines

    monkeypatch.setattr(uda.engines, "CONNECT_TIMEOUT_S", 0.5)
    srv = _Listener(None)
    try:
        t0 = time.monotonic()
        res = run_cli(["run", "route", "--data", tiny_dataset, "--engine", "dask", "--scheduler", srv.address])
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
        assert poll(pids_file.exists, 120), "the case never started its workers"
        pids = [int(x) for x in pids_file.read_text().split()]
        assert len(pids) >= 2 and all(_alive(p) for p in pids)  # the case and its worker
        bench.send_signal(getattr(signal, sig))
        bench.wait(timeout=30)
        assert bench.returncode != 0
        assert poll(lambda: not any(_alive(p) for p in pids), 10), \
            [p for p in pids if _alive(p)]
        assert "Traceback" not in bench.stderr.read()
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for p in pids if pids_file.exists() else []:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
