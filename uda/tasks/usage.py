"""Which records each analytic task reads: a registry of per-task, per-table usage rules.

A rule takes a table's integrated (standardised, resolvable) rows as NumPy columns plus the
city ids, and returns a boolean mask of the rows the task reads with its default options
for any of its targets. The rules restate each task's own row filters, read from its code:

``route`` on ``traffic``
    :func:`uda.tasks.route.sensor_slots_polars` keeps rows whose ``speed`` is present,
    finite and positive, and :func:`uda.routing.travel_times.link_travel_times` only uses sensors
    that are in the ``sensors`` table.
``flow`` on ``traffic``
    the ``traffic`` and ``speed`` targets pivot ``flow`` / ``speed`` per sensor and drop
    missing values (:func:`uda.tasks.flow.pivot`): a row is read if either is present.
``flow`` on ``taps``
    the ``stations`` target counts every tap at a known station.
``water`` on ``water``
    every row of a known site with at least one parameter present.

A record is *used* when at least one rule selects it. The rules are registered with their
task (:attr:`uda.tasks.registry.Task.usage`: table -> ``"module:function"``), and each rule
says the columns it reads with :func:`reads`; a new task adds one function and names it in
its registry entry.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from uda.contract import WATER_PARAMETERS as PARAMETERS
from uda.tasks.registry import TASKS, resolve

#: ``rule(columns, city_ids) -> mask``; ``city_ids`` maps a city table name to its sorted ids.
Rule = Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], np.ndarray]


def reads(*columns: str) -> Callable[[Rule], Rule]:
    """Declare the columns a rule reads (its ``columns`` attribute, read by :func:`columns_needed`)."""
    def mark(rule: Rule) -> Rule:
        rule.columns = columns  # type: ignore[attr-defined]
        return rule

    return mark


def _known(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(table, ids)
    return (pos < table.size) & (table[np.minimum(pos, max(table.size - 1, 0))] == ids) if table.size \
        else np.zeros(ids.size, bool)


@reads("sensor_id", "speed")
def route_traffic(cols: dict[str, np.ndarray], city: dict[str, np.ndarray]) -> np.ndarray:
    """Rows the route task reads: a positive finite speed of a known sensor."""
    speed = cols["speed"]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(speed) & (speed > 0)
    return ok & _known(cols["sensor_id"], city["sensors"])


@reads("flow", "speed")
def flow_traffic(cols: dict[str, np.ndarray], city: dict[str, np.ndarray]) -> np.ndarray:
    """Rows the flow task's traffic or speed target reads: flow or speed present."""
    return ~np.isnan(cols["flow"]) | ~np.isnan(cols["speed"])


@reads("station_id")
def flow_taps(cols: dict[str, np.ndarray], city: dict[str, np.ndarray]) -> np.ndarray:
    """Taps the flow task's stations target counts: every tap at a known station."""
    return _known(cols["station_id"], city["stations"])


@reads("site_id", *PARAMETERS)
def water_water(cols: dict[str, np.ndarray], city: dict[str, np.ndarray]) -> np.ndarray:
    """Rows the water task reads: a known site with at least one parameter present."""
    present = np.zeros(cols["site_id"].size, bool)
    for p in PARAMETERS:
        present |= ~np.isnan(cols[p])
    return present & _known(cols["site_id"], city["water_sites"])


def rules() -> dict[str, dict[str, Rule]]:
    """Task -> table -> rule, for every registered task with usage rules."""
    return {t.name: {table: resolve(path) for table, path in t.usage.items()}
            for t in TASKS.values() if t.usage}


def columns_needed(table: str) -> list[str]:
    """Columns the rules of ``table`` read (``KeyError`` if no rule reads it)."""
    cols: dict[str, None] = {}
    for per_table in rules().values():
        if table in per_table:
            cols.update(dict.fromkeys(per_table[table].columns))
    if not cols:
        msg = f"no task has a usage rule for table {table!r}"
        raise KeyError(msg)
    return list(cols)


def used(cols: dict[str, np.ndarray], table: str, city: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
    """Mask of rows used by at least one task, and rows read per task.

    Parameters
    ----------
    cols
        Columns of :func:`columns_needed` (floats with NaN for missing values).
    table
        ``"traffic"``, ``"taps"`` or ``"water"``.
    city
        Sorted ids of ``sensors``, ``stations`` and ``water_sites``.
    """
    n = next(iter(cols.values())).size if cols else 0
    mask = np.zeros(n, bool)
    per_task = {}
    for task, per_table in rules().items():
        if table in per_table:
            m = per_table[table](cols, city)
            per_task[task] = int(m.sum())
            mask |= m
    return mask, per_task
