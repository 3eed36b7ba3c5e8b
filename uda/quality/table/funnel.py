"""The funnel of a profiled table for one analytic (``--needs SPEC.toml``, :class:`uda.quality.table.schema.Needs`):
of the rows collected, those valid (needed columns present, not sentinels, in range), standardised
(on the needed time grid) and usable (the first row of each needed key).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from uda.quality.table.schema import Needs
from uda.quality.table.state import HashSet

STAGES = ("collected", "valid", "standardised", "usable")


class Funnel:
    """Rows per funnel stage, added batch by batch (:meth:`add`); :meth:`report` gives the counts and shares."""

    def __init__(self, needs: Needs) -> None:
        self.needs = needs
        self.counts = np.zeros(4, np.int64)
        self.usable_set = HashSet() if needs.key else None

    def add(self, typed: pl.DataFrame, t_us: np.ndarray | None, t_ok: np.ndarray | None, *, time_col: str | None,
            numeric: dict[str, tuple[np.ndarray, tuple[float, float]]]) -> None:
        """Add one typed batch.

        Parameters
        ----------
        typed
            The batch, columns cast to their types.
        t_us, t_ok
            Parsed times (µs) and where they parsed (``None`` without a time column).
        time_col
            The time column (a needed time column must parse).
        numeric
            For each numeric column: its sentinels so far and its range (the needs spec's range wins).
        """
        nd = self.needs
        n = typed.height
        valid = np.ones(n, bool)
        for c in nd.columns:
            s = typed[c]
            present = s.is_not_null().to_numpy()
            if c in numeric:
                sentinels, rng = numeric[c]
                v = s.cast(pl.Float64).fill_null(np.nan).to_numpy()
                present &= ~np.isnan(v) & ~np.isin(v, sentinels)
                lo, hi = nd.ranges.get(c, rng)
                with np.errstate(invalid="ignore"):
                    present &= (v >= lo) & (v <= hi)
            elif c == time_col:
                present &= t_ok
            valid &= present
        std = valid.copy()
        if nd.step_us is not None:
            std &= t_ok & (t_us % nd.step_us == 0)
        usable = std.copy()
        if self.usable_set is not None and usable.any():
            kh = typed.select(nd.key).hash_rows(seed=13).to_numpy()
            idx = np.flatnonzero(usable)
            usable[idx[self.usable_set.add(kh[idx])]] = False
        self.counts += [n, int(valid.sum()), int(std.sum()), int(usable.sum())]

    def report(self) -> dict[str, Any]:
        """Rows per stage and their shares of the rows collected."""
        f = [int(x) for x in self.counts]
        return {"collected": f[0], "valid": f[1], "standardised": f[2], "usable": f[3],
                "shares": {k: (v / f[0] if f[0] else 1.0) for k, v in zip(STAGES, f, strict=True)}}
