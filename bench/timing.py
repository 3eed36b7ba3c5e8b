"""Timing helpers shared by the stand-alone bench scripts (no benchmarks here; nothing runs at import).

Scripts run as ``python bench/<script>.py`` put the project root on ``sys.path`` and
import this module as ``bench.timing``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def stats(times: list[float]) -> dict[str, float]:
    """Median, min and max of ``times`` (seconds) and how many there were.

    Parameters
    ----------
    times : list of float
        Wall times, at least one.

    Returns
    -------
    dict
        ``median``, ``min``, ``max`` and ``repeats``.
    """
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "repeats": len(times)}


def repeat(fn: Callable[[], object], repeats: int) -> tuple[dict[str, float], object]:
    """Call ``fn`` ``repeats`` times and summarise the wall times with :func:`stats`.

    Parameters
    ----------
    fn : callable
        Called with no arguments.
    repeats : int
        How many calls, at least one.

    Returns
    -------
    tuple
        The :func:`stats` of the wall times and the last call's result.
    """
    out = None
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return stats(times), out


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, dict[str, float]], dict[str, object]]:
    """Time each function ``repeats`` times, alternating between them.

    Alternating makes load changes on a shared machine hit every contender alike.

    Parameters
    ----------
    fns : dict of str to callable
        The contenders by name, each called with no arguments.
    repeats : int
        How many rounds, at least one.

    Returns
    -------
    tuple
        The :func:`stats` of each contender's wall times and each one's last result, by name.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    outs: dict[str, object] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t)
    return {name: stats(ts) for name, ts in times.items()}, outs
