"""Peak memory and CPU of the whole process tree, Dask distributed workers included."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import psutil

from uda.harness.measure import TreeSampler, kill_tree, measure_call

MB = 2**20


def _hold(nbytes: int) -> int:
    global _HELD
    _HELD = np.ones(nbytes // 8)
    return int(_HELD.size)


def test_peak_memory_counts_local_cluster_workers():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        workers = list(client.scheduler_info()["workers"])
        assert len(workers) == 2
        sampler = TreeSampler().start()
        try:
            def work():
                futs = [client.submit(_hold, 200 * MB, workers=[w], pure=False) for w in workers]
                client.gather(futs)
                return futs

            futs, m = measure_call(work, sampler=sampler)
        finally:
            sampler.stop()
        own = psutil.Process().memory_info().rss
        del futs
    assert m.processes >= 3  # this process and two worker processes
    # both workers' 200 MiB arrays are counted on top of this process
    assert m.peak_rss_bytes - own >= 2 * 190 * MB
    assert m.peak_rss_bytes - m.base_rss_bytes >= 2 * 190 * MB
    assert m.wall_s > 0 and m.cpu_s > 0


def test_child_process_memory_and_cpu_are_counted(tmp_path):
    code = "import numpy as np; a = np.ones(150 * 2**20 // 8); s = 0\nfor i in range(3_000_000): s += i"
    sampler = TreeSampler().start()
    try:
        _, m = measure_call(lambda: subprocess.run([sys.executable, "-c", code], check=True),
                            sampler=sampler)
    finally:
        sampler.stop()
    assert m.peak_rss_bytes - m.base_rss_bytes >= 140 * MB
    assert m.cpu_user_s > 0.05
    d = m.to_dict(rows=100)
    assert d["rows_per_s"] > 0 and d["cpu_s"] == m.cpu_user_s + m.cpu_sys_s


def test_kill_tree_kills_grandchildren():
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(60)']); print(p.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    grandchild = int(proc.stdout.readline())
    kill_tree(proc.pid)
    proc.wait()
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
