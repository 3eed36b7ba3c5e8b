"""The water pipeline on Polars: the whole table as one block."""

from __future__ import annotations

from typing import Any

from uda.tasks.water.steps import analyse_block
from uda.waterq.block import block_from_polars
from uda.waterq.guidelines import Guideline
from uda.waterq.indices import site_summary
from uda.waterq.massbalance import block_excess, mass_balance
from uda.waterq.settings import WaterOptions


def run_polars(ds: Any, params: tuple[str, ...], guides: dict[str, Guideline],
                opts: WaterOptions, ups: dict[int, list[tuple[int, float]]]) -> list[dict]:
    """Indices, detector alarms, site summaries and mass balances of the dataset's water table,
    read sorted by site and time into one block."""
    df = (ds.scan("water").select(["site_id", "ts", *params])
          .sort(["site_id", "ts"]).collect())
    block = block_from_polars(df, params)
    parts = [analyse_block(block, guides, opts), site_summary(block, guides)]
    if ups:
        parts.append(mass_balance(block, block_excess(block, opts), ups, opts))
    return parts
