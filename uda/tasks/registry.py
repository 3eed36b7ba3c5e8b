"""The task registry: every analytic task registered once, as a :class:`Task`.

A task is what ``uda run NAME`` runs and what ``uda bench`` measures: a function
``run(data, *, engine="polars", scheduler=None, **options) -> TaskResult``
(:class:`uda.tasks.base.TaskResult`). The record says, without importing the task, where
its code and command live, which tables it reads, which quality measure heads its
answer, the options the harness sets, and the built-in suites it belongs to. Everything
else is derived from :data:`TASKS`:

- the ``uda run`` subcommands (``cli/run.py``);
- the built-in bench suites and the options they run each task with
  (:mod:`uda.harness.suites`);
- the harness's task lookup and its option check before any case runs
  (:mod:`uda.harness.runner`);
- asv's task benchmarks and the quality each one tracks (``bench/asv_tasks.py``);
- the rules saying which records a task reads (:mod:`uda.tasks.usage`), for ``uda run utilisation``.

Code is named by ``"module:attribute"`` strings and imported only when used, so this
module stays cheap to import (``uda --help`` reads it) and moving a task's code is a
one-line edit here. ``tests/test_registry.py`` runs a common check suite over every
registered task: engines agree, a rerun repeats, a bad option is a one-line error,
outputs are written atomically.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import Any

from uda.errors import UserError

#: Built-in ``uda bench`` suites a task can belong to (see :mod:`uda.harness.suites`).
SUITES = ("default", "sweep", "validate")
#: Arguments every task's ``run`` takes besides its options; the caller passes them.
RESERVED = ("data", "engine", "scheduler")


def _shown(value: Any, *, name: bool = True) -> str:
    """``value`` for a one-line message: a plain ``name`` as it is, anything else quoted and clipped."""
    if name and isinstance(value, str) and value.isidentifier():
        return value
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def resolve(path: str) -> Any:
    """The object named by ``"module:attribute"`` (imports the module).

    Parameters
    ----------
    path
        A dotted module path and an attribute name, separated by one colon.

    Returns
    -------
    Any
        The attribute.
    """
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Option:
    """An option of a task's ``run`` that the harness needs to know.

    Attributes
    ----------
    name
        Keyword argument of ``run``.
    type
        Python type a value must have (``bool`` values are not accepted for ``int``).
    default
        Value ``run`` uses when the option is not given.
    help
        One line: what the option does.
    writes_dataset
        ``True`` for a bool option that makes the task write into the dataset it reads;
        benchmarks that share one dataset set it to ``False``.
    """

    name: str
    type: type
    default: Any
    help: str
    writes_dataset: bool = False

    def check(self, task: str, value: Any, *, where: str = "") -> None:
        """Raise a :class:`~uda.errors.UserError` unless ``value`` has this option's type."""
        ok = isinstance(value, self.type) and not (isinstance(value, bool) and self.type is not bool)
        if not ok:
            msg = (f"{where}: " if where else "") + (
                   f"option {self.name} of task {task} must be {self.type.__name__}, "
                   f"got {type(value).__name__} {_shown(value, name=False)}")
            raise UserError(msg)


@dataclass(frozen=True)
class Task:
    """One analytic task, as the rest of uda needs to know it.

    Attributes
    ----------
    name
        Task name: ``uda run NAME``, the ``task`` of a bench case.
    run
        ``"module:function"`` of the task's ``run``.
    command
        ``"module:attribute"`` of its ``uda run`` Click command.
    tables
        Record tables the task reads (city tables aside).
    quality
        Headline key of ``TaskResult.quality``: the answer quality asv tracks.
    options
        Options the harness sets or checks (:class:`Option`); ``run``'s signature holds the rest.
    extra_options
        When ``run`` takes ``**options``: ``"module:attribute"`` of the dataclass (or
        sequence of names) listing the names it accepts there.
    suites
        Built-in bench suites the task is in (:data:`SUITES`).
    dataset
        ``uda generate`` overrides of the datasets the built-in suites run it on
        (``"defects=realistic"`` for tasks that read department feeds).
    bench_options
        Options the built-in suites run it with.
    usage
        Table -> ``"module:function"`` of the rule saying which of its rows the task reads
        with its default options (see :mod:`uda.tasks.usage`); one per table in ``tables``, or
        none for tasks that read every row (standardise, utilisation).
    """

    name: str
    run: str
    command: str
    tables: tuple[str, ...]
    quality: str
    options: tuple[Option, ...] = ()
    extra_options: str | None = None
    suites: tuple[str, ...] = ("default",)
    dataset: str = ""
    bench_options: Mapping[str, Any] = field(default_factory=dict)
    usage: Mapping[str, str] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        """The task's ``run`` function (imports its module)."""
        return resolve(self.run)

    def option_names(self) -> list[str]:
        """Every option ``run`` accepts (sorted), from its signature and :attr:`extra_options`."""
        params = inspect.signature(self.load()).parameters
        names = {n for n, p in params.items()
                 if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in RESERVED}
        if self.extra_options is not None:
            extra = resolve(self.extra_options)
            names |= {f.name for f in fields(extra)} if is_dataclass(extra) else set(extra)
        return sorted(names)

    def check_options(self, options: Mapping[str, Any], *, where: str = "",
                      skip_unloadable: bool = False) -> None:
        """Raise one :class:`~uda.errors.UserError` for an option ``run`` does not take, or a
        declared :class:`Option` given a value of the wrong type.

        Parameters
        ----------
        options
            Keyword options for ``run`` (without ``data``, ``engine`` and ``scheduler``).
        where
            Prefix of the message (e.g. the suite case the options come from).
        skip_unloadable
            Check nothing when the task's module does not import (the benchmark harness
            then records the failure in that task's cases and runs the others).
        """
        try:
            known = self.option_names()
        except Exception:
            if skip_unloadable:
                return
            raise
        prefix = f"{where}: " if where else ""
        unknown = sorted(set(options) - set(known), key=str)
        if unknown:
            many = "s" if len(unknown) > 1 else ""
            msg = (f"{prefix}task {self.name} has no option{many} {', '.join(map(_shown, unknown))}; "
                   f"its options: {', '.join(known)}")
            raise UserError(msg)
        declared = {o.name: o for o in self.options}
        for name, value in options.items():
            if name in declared:
                declared[name].check(self.name, value, where=where)

    def __call__(self, data: Any, *, engine: str = "polars", scheduler: str | None = None,
                 **options: Any) -> Any:
        """Check ``options`` (:meth:`check_options`), then ``run(data, engine=..., scheduler=..., **options)``.

        Returns
        -------
        TaskResult
            What the task's ``run`` returns.
        """
        self.check_options(options)
        return self.load()(data, engine=engine, scheduler=scheduler, **options)

    def keep_data_options(self) -> dict[str, bool]:
        """Options that leave the dataset as generated (every ``writes_dataset`` option off)."""
        return {o.name: False for o in self.options if o.writes_dataset}


_WRITE = Option("write", bool, True, "write the standardised tables to DATA/clean/", writes_dataset=True)

_REGISTERED: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add ``task`` to :data:`TASKS`; a name can be registered once.

    Raises
    ------
    ValueError
        On a second task of the same name, or an unknown suite.
    """
    if task.name in _REGISTERED:
        msg = f"task {task.name!r} is already registered"
        raise ValueError(msg)
    bad = sorted(set(task.suites) - set(SUITES))
    if bad:
        msg = f"task {task.name!r}: unknown suite(s) {', '.join(bad)}; known: {', '.join(SUITES)}"
        raise ValueError(msg)
    _REGISTERED[task.name] = task
    return task


register(Task(
    name="route", run="uda.tasks.route:run", command="uda.cli.run_route:route",
    tables=("traffic",), quality="relative_gap", suites=("default", "sweep", "validate"),
    usage={"traffic": "uda.tasks.usage:route_traffic"}))
register(Task(
    name="flow", run="uda.tasks.flow:run", command="uda.cli.run_flow:flow",
    tables=("traffic", "taps"), quality="ridge_mae_h1", suites=("default", "sweep", "validate"),
    usage={"traffic": "uda.tasks.usage:flow_traffic", "taps": "uda.tasks.usage:flow_taps"}))
register(Task(
    name="water", run="uda.tasks.water:run", command="uda.cli.run_water:water",
    tables=("water",), quality="multivariate_f1", suites=("default", "sweep", "validate"),
    extra_options="uda.waterq.settings:WaterOptions", usage={"water": "uda.tasks.usage:water_water"}))
# standardise is not in the sizing sweep: it is sized like utilisation, whose first step it is
register(Task(
    name="standardise", run="uda.tasks.standardise:run", command="uda.cli.run_standardise:standardise",
    tables=("traffic", "taps", "water"), quality="traffic_integrated_share", options=(_WRITE,),
    dataset="defects=realistic", bench_options={"write": False}))
register(Task(
    name="utilisation", run="uda.tasks.utilisation:run", command="uda.cli.run_utilisation:utilisation",
    tables=("traffic", "taps", "water"), quality="drift_f1", options=(_WRITE,),
    suites=("default", "sweep", "validate"), dataset="defects=realistic"))

#: Every registered task by name, in registration order (read-only).
TASKS: Mapping[str, Task] = MappingProxyType(_REGISTERED)


def get(name: str) -> Task:
    """The registered task ``name``; a :class:`~uda.errors.UserError` naming the known ones otherwise."""
    if name not in TASKS:
        msg = f"unknown task {name!r}; known: {', '.join(TASKS)}"
        raise UserError(msg)
    return TASKS[name]


def in_suite(suite: str) -> list[Task]:
    """Registered tasks that belong to the built-in ``suite``, in registration order."""
    return [t for t in TASKS.values() if suite in t.suites]
