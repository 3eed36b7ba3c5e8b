"""``uda run TASK``: run one analytic task on a dataset or an imported table."""

from __future__ import annotations

import click

from uda.cli.lazy import LazyGroup

TASKS = {
    "route": "uda.cli.run_route:route",
    "flow": "uda.cli.run_flow:flow",
    "water": "uda.cli.run_water:water",
    "standardise": "uda.cli.run_standardise:standardise",
    "utilisation": "uda.cli.run_utilisation:utilisation",
    "quality": "uda.cli.run_quality:quality",
}


@click.group(cls=LazyGroup, lazy=TASKS)
def run() -> None:
    """Run one analytic task (route, flow, water, standardise, utilisation, quality)."""
