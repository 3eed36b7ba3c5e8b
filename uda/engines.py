"""Engine selection: Polars on one machine, Dask from a laptop to a cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from uda.errors import UserError

ENGINES = ("polars", "dask")
LOCAL_SCHEDULERS = ("threads", "processes", "sync")
DEFAULT_SCHEDULER = "threads"


def check_engine(engine: str) -> str:
    """Return ``engine`` if known, else raise a :class:`UserError`."""
    if engine not in ENGINES:
        msg = f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}"
        raise UserError(msg)
    return engine


@contextlib.contextmanager
def dask_scheduler(scheduler: str | None = None) -> Iterator[object | None]:
    """Run the enclosed Dask computations on ``scheduler``.

    Parameters
    ----------
    scheduler
        ``"threads"`` (default), ``"processes"``, ``"sync"``, or the address of a running
        ``distributed`` scheduler such as ``tcp://127.0.0.1:8786``.

    Yields
    ------
    distributed.Client or None
        The client when connected to a cluster, else ``None``.
    """
    import dask

    scheduler = scheduler or DEFAULT_SCHEDULER
    if scheduler in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=scheduler):
            yield None
        return
    if "://" not in scheduler:
        msg = (f"unknown --scheduler {scheduler!r}; use one of {', '.join(LOCAL_SCHEDULERS)} "
               "or a scheduler address such as tcp://127.0.0.1:8786")
        raise UserError(msg)
    from distributed import Client

    try:
        client = Client(scheduler, timeout="10s", set_as_default=False)
    except OSError as exc:
        msg = f"cannot connect to the Dask scheduler at {scheduler} ({exc}); start it with `dask scheduler` or check the address"
        raise UserError(msg) from None
    try:
        with client.as_current(), dask.config.set(scheduler=client.get):
            yield client
    finally:
        client.close()
