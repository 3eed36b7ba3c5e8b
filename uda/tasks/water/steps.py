"""The engine-neutral steps of the water pipeline: everything per block, and assembling the
blocks' results into one canonical order."""

from __future__ import annotations

import numpy as np

from uda.waterq.block import Block
from uda.waterq.detectors import detector_alarms
from uda.waterq.guidelines import Guideline
from uda.waterq.indices import block_indices
from uda.waterq.massbalance import empty_mass_balance
from uda.waterq.settings import WaterOptions


def analyse_block(block: Block, guides: dict[str, Guideline], opts: WaterOptions,
                  detectors: bool = True) -> dict[str, np.ndarray]:
    """Indices, exceedances and detector alarm episodes of every site in ``block``.

    Parameters
    ----------
    block
        The sites' series.
    guides
        Guidelines per parameter.
    opts
        Analysis settings.
    detectors
        Also run the signature detectors.

    Returns
    -------
    dict of ndarray
        ``wqi_*`` per (site, period), ``exc_*`` per exceedance episode
        (:func:`uda.waterq.indices.block_indices`), ``alarm_*`` per alarm episode
        (:func:`uda.waterq.detectors.detector_alarms`; ``alarm_detector`` indexes
        :data:`~uda.waterq.detectors.SIGNATURE_DETECTORS`). Rows are in site order, so
        results of disjoint blocks concatenate and sort identically.
    """
    out = block_indices(block, guides, opts)
    if detectors:
        out.update(detector_alarms(block, opts))
    return out


def concat_parts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate each key over the blocks' result dicts (keys sorted)."""
    keys = sorted({k for p in parts for k in p})
    return {k: np.concatenate([p[k] for p in parts if k in p]) for k in keys}


def sort_by_prefix(d: dict[str, np.ndarray], prefix: str, keys: list[str]) -> dict[str, np.ndarray]:
    """The arrays of ``d`` whose key starts with ``prefix``, rows sorted by ``keys`` (first = primary)."""
    cols = {k: v for k, v in d.items() if k.startswith(prefix)}
    if not cols:
        return cols
    order = np.lexsort(tuple(cols[k] for k in reversed(keys)))
    return {k: v[order] for k, v in cols.items()}


def assemble(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-block results and sort them into a canonical order."""
    d = concat_parts(parts)
    if "mb_site" not in d:
        d.update(empty_mass_balance())
    out: dict[str, np.ndarray] = {}
    out.update(sort_by_prefix(d, "wqi_", ["wqi_site", "wqi_period"]))
    out.update(sort_by_prefix(d, "exc_", ["exc_site", "exc_param", "exc_start"]))
    out.update(sort_by_prefix(d, "alarm_", ["alarm_detector", "alarm_site", "alarm_start"]))
    out.update(sort_by_prefix(d, "mb_", ["mb_site", "mb_start"]))
    return out
