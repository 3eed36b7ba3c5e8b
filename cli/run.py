"""``uda run TASK``: run one analytic task on a dataset or an imported table.

The subcommands come from the task registry (:data:`uda.tasks.registry.TASKS`) plus
``quality``, the table profiler, which is a command but not a benchmarked task.
:func:`engine_option` is the ``--engine``/``--scheduler`` pair every task command takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from uda.cli.lazy import LazyGroup
from uda.tasks.registry import TASKS

F = TypeVar("F", bound=Callable[..., object])

#: ``uda run`` subcommand -> ``"module:attribute"`` of its Click command.
COMMANDS = {**{t.name: t.command for t in TASKS.values()}, "quality": "uda.cli.run_quality:quality"}


def engine_option(help: str) -> Callable[[F], F]:
    """``--engine`` (``polars`` or ``dask``, default ``polars``) and ``--scheduler``, the two
    options every task command takes, in that order.

    Parameters
    ----------
    help
        The ``--engine`` help text: what the engine runs in this task.
    """
    from uda.engines import ENGINES, SCHEDULER_HELP

    def decorate(f: F) -> F:
        f = click.option("--scheduler", default=None, help=SCHEDULER_HELP)(f)
        return click.option("--engine", type=click.Choice(list(ENGINES)), default="polars",
                            show_default=True, help=help)(f)

    return decorate


@click.group(cls=LazyGroup, lazy=COMMANDS,
             help=f"Run one analytic task ({', '.join(COMMANDS)}).")
def run() -> None:
    """Run one analytic task (see the ``help`` above, built from the registry)."""
