"""Engine selection: Polars on one machine, Dask from a laptop to a cluster."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import time
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


def check_scheduler(scheduler: str) -> str:
    """Return ``scheduler`` if a case of ``uda bench`` can run on it (``local`` as ``local:2``), else a :class:`UserError`.

    Threads, processes, sync, ``local[:N]`` with N a positive whole number, or a well-formed
    scheduler address (``tcp://HOST:PORT``, not contacted here).
    """
    if scheduler in LOCAL_SCHEDULERS:
        return scheduler
    if "://" in scheduler:
        parse_scheduler_address(scheduler)
        return scheduler
    if scheduler == "local":
        return "local:2"
    if scheduler.startswith("local:") and scheduler[6:].isdigit() and int(scheduler[6:]) > 0:
        return scheduler
    msg = (f"unknown scheduler {scheduler!r}; use {', '.join(LOCAL_SCHEDULERS)}, local[:N] "
           "(a LocalCluster of N worker processes) or a scheduler address such as tcp://127.0.0.1:8786")
    raise UserError(msg)


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
def local_cluster(n_workers: int, *, dashboard: bool = True, silence_logs: int = logging.ERROR) -> Iterator[Any]:
    """A ``distributed.LocalCluster`` of ``n_workers`` single-threaded worker processes on 127.0.0.1 only.

    Parameters
    ----------
    n_workers
        Worker processes, one thread each.
    dashboard
        Serve the dashboard on a free loopback port; ``False`` starts none (``uda bench``
        measures the cluster's processes, and the dashboard's server is not the task's cost).
    silence_logs
        Level below which ``distributed`` does not log.

    Yields
    ------
    distributed.LocalCluster
        The running cluster (closed on exit); its ``scheduler_address`` is a loopback address.
    """
    from distributed import LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0" if dashboard else None,
                      silence_logs=silence_logs) as cluster:
        yield cluster


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
        from distributed import Client

        n = _local_workers(scheduler)
        with local_cluster(n) as cluster, Client(cluster, set_as_default=False) as client:
            if not quiet:
                _announce(client)
            with client.as_current(), dask.config.set(scheduler=client.get):
                yield client
        return
    if "://" not in scheduler:
        msg = (f"unknown --scheduler {scheduler!r}; use threads, processes, sync, local[:N] "
               "or a scheduler address such as tcp://127.0.0.1:8786")
        raise UserError(msg)
    client = connect_client(scheduler)
    try:
        if not quiet:
            _announce(client)
        with client.as_current(), dask.config.set(scheduler=client.get):
            yield client
    finally:
        client.close()


#: Seconds allowed to reach a scheduler address and get its identity (a hard bound).
CONNECT_TIMEOUT_S = 10.0
_ADDRESS = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def parse_scheduler_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of a ``tcp://HOST:PORT`` scheduler address, else a :class:`UserError`."""
    m = _ADDRESS.match(address)
    port = int(m.group(2)) if m else 0
    if m is None or not 0 < port < 65536:
        msg = (f"--scheduler {address!r} is not a scheduler address; write tcp://HOST:PORT with a port "
               "from 1 to 65535 (IPv6 hosts in brackets, e.g. tcp://[::1]:8786)")
        raise UserError(msg)
    return m.group(1).strip("[]"), port


def probe_scheduler(address: str, *, timeout: float | None = None) -> None:
    """Check within ``timeout`` seconds (:data:`CONNECT_TIMEOUT_S`) that a Dask scheduler answers at ``address``.

    Opens a TCP connection, then asks for the scheduler's identity over the ``distributed``
    protocol, all under one hard deadline (``distributed.Client`` alone can wait forever
    on a port that accepts connections but never answers, such as a web server).

    Raises
    ------
    UserError
        When the address is malformed, nothing listens there, it does not answer in
        time, or what answers is not a Dask scheduler.
    """
    import socket
    import threading

    host, port = parse_scheduler_address(address)
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    hint = "start it with `dask scheduler` or check the address"
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError:
        msg = f"cannot connect to the Dask scheduler at {address}: no answer within {timeout:g} s; {hint}"
        raise UserError(msg) from None
    except OSError as exc:
        msg = f"cannot connect to the Dask scheduler at {address} ({exc.strerror or exc.__class__.__name__}); {hint}"
        raise UserError(msg) from None
    reply: dict[str, Any] = {}

    async def identity() -> None:
        from distributed.comm import connect

        left = max(deadline - time.monotonic(), 0.1)
        comm = await asyncio.wait_for(connect(address, timeout=left), left)
        try:
            await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), max(deadline - time.monotonic(), 0.1))
            reply["answer"] = await asyncio.wait_for(comm.read(), max(deadline - time.monotonic(), 0.1))
        finally:
            comm.abort()

    def target() -> None:
        try:
            asyncio.run(identity())
        except BaseException as exc:  # noqa: BLE001 - reported below as a failed probe
            reply["error"] = exc

    # a thread of its own: an event loop may already run in this one (notebooks)
    thread = threading.Thread(target=target, name="uda-scheduler-probe", daemon=True)
    thread.start()
    thread.join(max(deadline - time.monotonic(), 0) + 2.0)
    answer = reply.get("answer")
    if isinstance(answer, dict) and answer.get("type") == "Scheduler":
        return
    if "answer" in reply:
        msg = f"{address} answers but is not a Dask scheduler; {hint}"
    elif thread.is_alive() or isinstance(reply.get("error"), TimeoutError | asyncio.TimeoutError):
        msg = (f"cannot connect to the Dask scheduler at {address}: something listens there but gave no "
               f"Dask answer within {timeout:g} s; {hint}")
    else:
        err = reply.get("error")
        msg = f"cannot connect to the Dask scheduler at {address} ({err.__class__.__name__}); {hint}"
    raise UserError(msg)


def connect_client(address: str, *, timeout: float | None = None) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``, checked first by :func:`probe_scheduler`."""
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    probe_scheduler(address, timeout=timeout)
    from distributed import Client

    try:
        return Client(address, timeout=f"{timeout:g}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        msg = f"cannot connect to the Dask scheduler at {address} ({exc.__class__.__name__}); start it with `dask scheduler` or check the address"
        raise UserError(msg) from None


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
