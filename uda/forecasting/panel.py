"""Panels of regular time series, their calendar, and what a forecaster may use besides them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from uda.errors import UserError

#: The default start of a wide table without timestamps (a Monday).
DEFAULT_START = "2024-01-01T00:00"


@dataclass
class Panel:
    """A panel of regular time series.

    Attributes
    ----------
    values
        ``(n_series, n_time)`` float64, NaN = missing.
    ids
        One identifier per series.
    start
        Timestamp of column 0 (naive local time).
    interval_s
        Step length in seconds; a day must be a whole number of steps.
    indptr, indices
        Optional CSR adjacency between series (neighbours for the spatial model).
    notes
        Treatments applied on the way in (dropped series, filled gaps ...), reported.
    """

    values: np.ndarray
    ids: list[str]
    start: np.datetime64
    interval_s: int
    indptr: np.ndarray | None = None
    indices: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def season(self) -> int:
        """Steps per day."""
        return season_of(self.interval_s)

    def select(self, keep: np.ndarray) -> Panel:
        """The panel restricted to series where ``keep`` is true (adjacency re-indexed)."""
        keep = np.asarray(keep, dtype=bool)
        indptr = indices = None
        if self.indptr is not None:
            new_id = np.cumsum(keep) - 1
            rows, nbrs = [], []
            for i in np.flatnonzero(keep):
                nb = self.indices[self.indptr[i]:self.indptr[i + 1]]
                nb = new_id[nb[keep[nb]]]
                rows.append(len(nb))
                nbrs.append(nb)
            indptr = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
            indices = (np.concatenate(nbrs) if nbrs else np.empty(0)).astype(np.int64)
        return Panel(self.values[keep], [s for s, k in zip(self.ids, keep, strict=True) if k],
                     self.start, self.interval_s, indptr, indices, list(self.notes))


def season_of(interval_s: int) -> int:
    """Steps per day for a step of ``interval_s`` seconds (must divide a day)."""
    if interval_s <= 0 or 86400 % interval_s:
        msg = f"interval of {interval_s} s does not divide a day; use e.g. 5min, 15min or 1h"
        raise UserError(msg)
    return 86400 // interval_s


def parse_interval(text: str) -> int:
    """``'5min'``, ``'15min'``, ``'1h'``, ``'300s'`` -> seconds."""
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hour": 3600}
    t = text.strip().lower()
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num):] or "s"
    if not num.isdigit() or unit not in units:
        msg = f"cannot read interval {text!r}; write it like 5min, 15min, 1h or 300s"
        raise UserError(msg)
    return season_check(int(num) * units[unit])


def season_check(interval_s: int) -> int:
    """Return ``interval_s`` after checking that it divides a day."""
    season_of(interval_s)
    return interval_s


@dataclass
class Calendar:
    """Per-step calendar: slot of day and weekend flag, for indices ``0 .. length - 1``."""

    slot: np.ndarray
    weekend: np.ndarray
    season: int

    @classmethod
    def regular(cls, start: np.datetime64, interval_s: int, length: int) -> Calendar:
        """Calendar of a regular grid starting at ``start``."""
        season = season_of(interval_s)
        t = np.datetime64(start, "s") + np.arange(length) * np.timedelta64(interval_s, "s")
        day = t.astype("datetime64[D]")
        secs = (t - day).astype(np.int64)
        dow = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        return cls(slot=(secs // interval_s).astype(np.int64),
                   weekend=(dow >= 5).astype(np.int8), season=season)


@dataclass
class Context:
    """What a forecaster may use besides the series: calendar and neighbour signal."""

    calendar: Calendar
    neighbours: np.ndarray | None = None  # (n, T) standardised mean of neighbours
    nearest: np.ndarray | None = None  # (n, k, T) standardised values of the k chosen neighbours


def standardise(Y: np.ndarray, train_end: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-series mean and standard deviation over ``Y[:, :train_end]`` (0 and 1 if undefined)."""
    head = Y[:, :train_end]
    with np.errstate(all="ignore"):
        cnt = np.sum(~np.isnan(head), axis=1)
        mu = np.where(cnt > 0, np.nansum(head, axis=1) / np.maximum(cnt, 1), 0.0)
        var = np.where(cnt > 0, np.nansum((head - mu[:, None]) ** 2, axis=1) / np.maximum(cnt, 1), 0.0)
    sd = np.sqrt(var)
    sd = np.where(sd > 1e-12 * np.maximum(np.abs(mu), 1.0), sd, 1.0)
    return mu, sd


def standardised(Y: np.ndarray, train_end: int) -> np.ndarray:
    """``Y`` scaled by its training mean and standard deviation (see :func:`standardise`)."""
    mu, sd = standardise(Y, train_end)
    return (Y - mu[:, None]) / sd[:, None]
