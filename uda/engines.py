"""Engine selection: Polars on one machine, Dask from a laptop to a cluster."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from uda.errors import UserError

ENGINES = ("polars", "dask")
LOCAL_SCHEDULERS = ("threads", "processes", "sync")
#: Chosen by measurement on the 2-core reference machine (docs/scaling.md): the threaded
#: scheduler has no serialisation cost and the Numba kernels release the GIL.
DEFAULT_SCHEDULER = "threads"
#: ``progress(stage, done, total)``: what long work reports as it goes.
Progress = Callable[[str, int, int], None]
SCHEDULER_HELP = ("Dask scheduler: threads (default), processes, sync, local[:N] (a LocalCluster of N "
                  "worker processes on 127.0.0.1, default 2) or the address of a running "
                  "distributed scheduler such as tcp://127.0.0.1:8786.")


def check_engine(engine: str) -> str:
    """Return ``engine`` if known, else raise a :class:`UserError`."""
    if engine not in ENGINES:
        msg = f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}"
        raise UserError(msg)
    return engine


def _local_workers(scheduler: str) -> int:
    _, _, n = scheduler.partition(":")
    try:
        workers = int(n) if n else 2
    except ValueError:
        workers = 0
    if workers < 1:
        msg = f"--scheduler {scheduler!r}: the worker count must be a positive integer, e.g. local:2"
        raise UserError(msg)
    return workers


def _announce(client: object) -> None:
    link = getattr(client, "dashboard_link", None)
    if link:
        print(f"Dask dashboard: {link}", file=sys.stderr)


@contextlib.contextmanager
def dask_scheduler(scheduler: str | None = None, *, quiet: bool = False) -> Iterator[object | None]:
    """Run the enclosed Dask computations on ``scheduler``.

    Parameters
    ----------
    scheduler
        ``"threads"`` (default), ``"processes"``, ``"sync"``, ``"local"`` or ``"local:N"``
        (start a ``distributed.LocalCluster`` of N single-threaded worker processes that
        listens on 127.0.0.1 only), or the address of a running ``distributed`` scheduler
        such as ``tcp://127.0.0.1:8786``.
    quiet
        Do not print the dashboard link (it goes to stderr otherwise).

    Yields
    ------
    distributed.Client or None
        The client when a cluster is used, else ``None``.
    """
    import dask

    scheduler = scheduler or DEFAULT_SCHEDULER
    if scheduler in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=scheduler):
            yield None
        return
    if scheduler == "local" or scheduler.startswith("local:"):
        from distributed import Client, LocalCluster

        n = _local_workers(scheduler)
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0", silence_logs=40) as cluster, \
                Client(cluster, set_as_default=False) as client:
            if not quiet:
                _announce(client)
            with client.as_current(), dask.config.set(scheduler=client.get):
                yield client
        return
    if "://" not in scheduler:
        msg = (f"unknown --scheduler {scheduler!r}; use threads, processes, sync, local[:N] "
               "or a scheduler address such as tcp://127.0.0.1:8786")
        raise UserError(msg)
    from distributed import Client

    try:
        client = Client(scheduler, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        msg = f"cannot connect to the Dask scheduler at {scheduler} ({exc.__class__.__name__}); start it with `dask scheduler` or check the address"
        raise UserError(msg) from None
    try:
        if not quiet:
            _announce(client)
        with client.as_current(), dask.config.set(scheduler=client.get):
            yield client
    finally:
        client.close()


def _current_client() -> Any | None:
    """The ``distributed`` client of the enclosing :func:`dask_scheduler`, if any."""
    if "distributed" not in sys.modules:
        return None
    from distributed import Client

    try:
        return Client.current(allow_global=False)
    except ValueError:
        return None


def compute_with_progress(tasks: Sequence[Any], on_done: Callable[[int], None]) -> list[Any]:
    """``dask.compute(*tasks)`` on the current scheduler, calling ``on_done(n)`` as tasks finish.

    ``n`` counts the finished ``tasks`` (not their dependencies). The results are in the
    order of ``tasks``.
    """
    import dask

    client = _current_client()
    if client is not None:
        from distributed import as_completed

        futures = client.compute(list(tasks))
        for done, _ in enumerate(as_completed(futures), 1):
            on_done(done)
        return client.gather(futures)
    from dask.callbacks import Callback

    wanted = {t.key for t in tasks}
    count = 0

    def posttask(key, result, dsk, state, worker_id) -> None:
        nonlocal count
        if key in wanted:
            count += 1
            on_done(count)

    with Callback(posttask=posttask):
        return list(dask.compute(*tasks))
