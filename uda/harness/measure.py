"""Wall time, CPU time and peak memory of a whole process tree, sampled with psutil in a thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import psutil

#: Seconds between two samples of the process tree.
DEFAULT_INTERVAL = 0.02


@dataclass
class Measurement:
    """What one timed call cost.

    Attributes
    ----------
    wall_s
        Elapsed wall-clock seconds.
    cpu_user_s, cpu_sys_s
        User and system CPU seconds of the whole process tree (the process, its
        descendants such as Dask worker processes, and any extra processes watched).
    peak_rss_bytes
        Highest sampled sum of resident set sizes over the tree during the call.
    base_rss_bytes
        Tree RSS just before the call started (imports, loaded libraries, data kept
        from earlier calls).
    processes
        Largest number of processes seen in the tree during the call.
    """

    wall_s: float
    cpu_user_s: float
    cpu_sys_s: float
    peak_rss_bytes: int
    base_rss_bytes: int
    processes: int

    @property
    def cpu_s(self) -> float:
        """User plus system CPU seconds."""
        return self.cpu_user_s + self.cpu_sys_s

    def to_dict(self, *, rows: int | None = None) -> dict[str, float | int]:
        """A JSON-ready dict, with ``cpu_s`` and (given ``rows``) ``rows_per_s``."""
        d: dict[str, float | int] = asdict(self)
        d["cpu_s"] = self.cpu_s
        if rows is not None:
            d["rows_per_s"] = rows / self.wall_s if self.wall_s > 0 else 0.0
        return d


def _tree(root: psutil.Process, extra: Iterable[int]) -> list[psutil.Process]:
    procs = [root]
    try:
        procs.extend(root.children(recursive=True))
    except psutil.Error:
        pass
    seen = {p.pid for p in procs}
    for pid in extra:
        if pid in seen:
            continue
        try:
            p = psutil.Process(pid)
            procs.append(p)
            seen.add(pid)
            for c in p.children(recursive=True):
                if c.pid not in seen:
                    procs.append(c)
                    seen.add(c.pid)
        except psutil.Error:
            continue
    return procs


class TreeSampler:
    """Sample the RSS and CPU times of a process tree in a background thread.

    Parameters
    ----------
    pid
        Root process (default: this process). Its descendants are found at every sample,
        so worker processes started later (a Dask ``LocalCluster``'s workers) are counted.
    interval
        Seconds between samples.
    extra_pids
        Callable returning more process ids to watch with their descendants (for example
        the local workers of a ``distributed`` cluster that this process did not start).
    on_sample
        Optional callable ``on_sample(rss_bytes)`` called after every sample (the runner
        uses it to enforce a memory limit).

    Notes
    -----
    CPU time is the sum over every process ever seen of its last sampled user and system
    time; a process that exits between two samples loses at most one interval of CPU time.
    """

    def __init__(self, pid: int | None = None, *, interval: float = DEFAULT_INTERVAL,
                 extra_pids: Callable[[], Iterable[int]] | None = None,
                 on_sample: Callable[[int], None] | None = None):
        self.root = psutil.Process(pid or os.getpid())
        self.interval = interval
        self.extra_pids = extra_pids
        self.on_sample = on_sample
        self._lock = threading.Lock()
        self._cpu: dict[tuple[int, float], tuple[float, float]] = {}
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._peak = 0
        self._nproc = 0
        self._last_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        """Take one sample now; returns the tree's current RSS in bytes."""
        extra = list(self.extra_pids()) if self.extra_pids is not None else []
        rss = 0
        n = 0
        for p in _tree(self.root, extra):
            try:
                key = (p.pid, p.create_time())
                key_proc = self._procs.setdefault(key, p)
                with key_proc.oneshot():
                    mem = key_proc.memory_info().rss
                    t = key_proc.cpu_times()
            except psutil.Error:
                continue
            rss += mem
            n += 1
            with self._lock:
                self._cpu[key] = (t.user, t.system)
        with self._lock:
            self._last_rss = rss
            self._peak = max(self._peak, rss)
            self._nproc = max(self._nproc, n)
        if self.on_sample is not None:
            self.on_sample(rss)
        return rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> TreeSampler:
        """Start sampling in a daemon thread."""
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="uda-tree-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the sampling thread (after one last sample)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.sample()
        except psutil.Error:
            pass

    def __enter__(self) -> TreeSampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def cpu_totals(self) -> tuple[float, float]:
        """User and system CPU seconds summed over every process seen so far."""
        with self._lock:
            return (sum(u for u, _ in self._cpu.values()), sum(s for _, s in self._cpu.values()))

    def reset_peak(self) -> int:
        """Start a new peak window from the current RSS; returns that RSS."""
        rss = self.sample()
        with self._lock:
            self._peak = rss
            self._nproc = 0
        return rss

    @property
    def peak_rss(self) -> int:
        """Highest tree RSS since the last :meth:`reset_peak`."""
        with self._lock:
            return self._peak

    @property
    def processes(self) -> int:
        """Largest number of processes seen since the last :meth:`reset_peak`."""
        with self._lock:
            return self._nproc


def measure_call(fn: Callable[[], object], *, sampler: TreeSampler) -> tuple[object, Measurement]:
    """Call ``fn()`` and measure it with a running ``sampler``.

    Returns
    -------
    tuple
        ``(fn's return value, Measurement)``.
    """
    base = sampler.reset_peak()
    u0, s0 = sampler.cpu_totals()
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    sampler.sample()
    u1, s1 = sampler.cpu_totals()
    return out, Measurement(wall_s=wall, cpu_user_s=max(u1 - u0, 0.0), cpu_sys_s=max(s1 - s0, 0.0),
                            peak_rss_bytes=sampler.peak_rss, base_rss_bytes=base,
                            processes=sampler.processes)


def kill_tree(pid: int, *, timeout: float = 3.0, group: bool = False) -> None:
    """Kill process ``pid`` and all its descendants, then reap them.

    The tree is frozen first (``SIGSTOP``, repeated until no new descendant appears), so
    a process cannot start a child between being listed and being killed, nor are
    orphans left behind when a parent dies before its children. With ``group`` the
    process group ``pid`` leads (a child started with ``start_new_session``) is killed
    too, catching anything that left the tree but kept the group.
    """
    import signal

    try:
        root = psutil.Process(pid)
    except psutil.Error:
        root = None
    procs: dict[int, psutil.Process] = {}
    if root is not None:
        for _ in range(20):
            found = [root]
            try:
                found += root.children(recursive=True)
            except psutil.Error:
                pass
            new = [p for p in found if p.pid not in procs]
            if not new:
                break
            for p in new:
                procs[p.pid] = p
                try:
                    p.suspend()
                except psutil.Error:
                    continue
    if group and hasattr(os, "killpg"):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    for p in procs.values():
        try:
            p.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(list(procs.values()), timeout=timeout)
