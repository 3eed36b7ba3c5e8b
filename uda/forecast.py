"""Forecasters with one interface, their registry, and the evaluation protocol."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from uda.errors import UserError
from uda.kernels import forecast as K

#: Default chronological split of the time axis: train, validation, test.
DEFAULT_SPLIT = (0.7, 0.1, 0.2)
#: Points that count in every metric: the actual value is finite and not zero.
MASK_RULE = "a point counts iff the actual value is finite and != 0 (same mask for MAE, RMSE, MAPE)"
#: The default start of a wide table without timestamps (a Monday).
DEFAULT_START = "2024-01-01T00:00"


# --------------------------------------------------------------------------- data


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


def neighbour_signal(Y: np.ndarray, train_end: int, indptr: np.ndarray,
                     indices: np.ndarray) -> np.ndarray:
    """Mean of the neighbours' standardised values per series and step."""
    return _neighbour_mean(standardised(Y, train_end), indptr, indices)


def _neighbour_mean(Z: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    return K.neighbour_mean(Z, indptr.astype(np.int64), indices.astype(np.int64))


def _deviations(Z: np.ndarray, cal: Calendar | None) -> np.ndarray:
    """Standardised values ``Z`` minus their day-type profile (``Z`` itself without a calendar)."""
    if cal is None:
        return Z
    return Z - K.profile_matrix(Z, cal.weekend[:Z.shape[1]], cal.season, 4)


def correlation_neighbours(Y: np.ndarray, train_end: int, *, k: int = 4,
                           calendar: Calendar | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency linking each series to its ``k`` most correlated others (training part).

    With a ``calendar`` the correlation is that of the deviations from each series'
    day-type profile (what a spatial model can use), not of the values (mostly the shared
    daily cycle).
    """
    n = Y.shape[0]
    Z = np.nan_to_num(_deviations(standardised(Y, train_end), calendar)[:, :train_end])
    C = (Z @ Z.T) / max(train_end, 1)
    np.fill_diagonal(C, -np.inf)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros(n + 1, dtype=np.int64), np.empty(0, dtype=np.int64)
    idx = np.argsort(-C, axis=1, kind="stable")[:, :k]
    return np.arange(0, n * k + 1, k, dtype=np.int64), idx.ravel().astype(np.int64)


def nearest_neighbours(Z: np.ndarray, train_end: int, indptr: np.ndarray, indices: np.ndarray,
                       cal: Calendar, *, k: int = 4) -> np.ndarray:
    """Standardised series (of ``Z``, standardised values) of each series' ``k`` neighbours
    (of the CSR adjacency) whose deviations from their profiles correlate most with its own
    over the training part.

    Returns ``(n, k, T)``; NaN where a series has fewer than ``k`` neighbours.
    """
    n, T = Z.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    cols = np.asarray(indices, dtype=np.int64)
    D = _deviations(Z, cal)
    corr = K.pair_correlation(D, rows, cols, train_end) if len(rows) else np.empty(0)
    out = np.full((n, k, T), np.nan)
    for i in range(n):
        a, b = indptr[i], indptr[i + 1]
        if b > a:
            best = cols[a:b][np.argsort(-corr[a:b], kind="stable")[:k]]
            out[i, :len(best)] = Z[best]
    return out


# --------------------------------------------------------------------------- forecasters


class Forecaster:
    """One forecasting model: parameters in ``__init__``, ``fit``, then ``predict``.

    ``fit`` sees ``Y[:, :train_end]`` (plus ``Y[:, train_end:val_end]`` for choosing
    hyperparameters, if the model has any); ``predict`` returns forecasts of shape
    ``(n_series, n_origins, n_horizons)`` where origin ``o`` uses ``Y[:, :o]`` only.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_neighbours: ClassVar[bool] = False

    def fit(self, Y: np.ndarray, ctx: Context, *, train_end: int, val_end: int,
            horizons: np.ndarray) -> Forecaster:
        """Learn from the history (the default has nothing to learn)."""
        return self

    def predict(self, Y: np.ndarray, ctx: Context, origins: np.ndarray,
                horizons: np.ndarray) -> np.ndarray:
        """Forecasts from ``origins`` for ``horizons``."""
        raise NotImplementedError


MODELS: dict[str, type[Forecaster]] = {}


def register(cls: type[Forecaster]) -> type[Forecaster]:
    """Class decorator adding a forecaster to :data:`MODELS` under ``cls.name``."""
    MODELS[cls.name] = cls
    return cls


@register
class LastValue(Forecaster):
    name = "last"
    description = "last observed value before the origin"

    def predict(self, Y, ctx, origins, horizons):
        return K.last_value_predict(Y, origins, horizons)


@register
class SeasonalNaiveDay(Forecaster):
    name = "snaive_day"
    description = "same slot on the most recent day before the origin (up to 3 more days back if missing)"
    periods = 1

    def predict(self, Y, ctx, origins, horizons):
        return K.seasonal_naive_predict(Y, origins, horizons, self.periods * ctx.calendar.season, 4)


@register
class SeasonalNaiveWeek(SeasonalNaiveDay):
    name = "snaive_week"
    description = "same slot and weekday on the most recent week before the origin (or one more week back)"
    periods = 7

    def predict(self, Y, ctx, origins, horizons):
        return K.seasonal_naive_predict(Y, origins, horizons, self.periods * ctx.calendar.season, 2)


@register
class HistoricalAverage(Forecaster):
    name = "ha"
    description = "mean of the same slot on days of the same type (weekday/weekend) over the previous 4 weeks"

    def __init__(self, weeks: int = 4):
        self.weeks = weeks

    def predict(self, Y, ctx, origins, horizons):
        cal = ctx.calendar
        return K.historical_average_predict(Y, origins, horizons, cal.weekend, cal.season,
                                            self.weeks)


@register
class HistoricalAverageSlot(HistoricalAverage):
    name = "ha_slot"
    description = "mean of the same slot over every day of the previous 4 weeks (weekdays and weekends together)"

    def predict(self, Y, ctx, origins, horizons):
        cal = ctx.calendar
        return K.historical_average_predict(Y, origins, horizons, np.zeros_like(cal.weekend),
                                            cal.season, self.weeks)


@register
class HoltWinters(Forecaster):
    name = "hw"
    description = "additive Holt-Winters, daily season, (alpha, beta, gamma) by least one-step SSE on a grid"

    def __init__(self, alphas=(0.05, 0.1, 0.2, 0.4, 0.7), betas=(0.0, 0.01),
                 gammas=(0.05, 0.1, 0.2, 0.4)):
        self.alphas = np.asarray(alphas, dtype=np.float64)
        self.betas = np.asarray(betas, dtype=np.float64)
        self.gammas = np.asarray(gammas, dtype=np.float64)

    def fit(self, Y, ctx, *, train_end, val_end, horizons):
        self.train_end = train_end
        self.params = K.hw_fit(np.ascontiguousarray(Y[:, :train_end]), ctx.calendar.season,
                               self.alphas, self.betas, self.gammas)
        return self

    def predict(self, Y, ctx, origins, horizons):
        return K.hw_predict(Y, self.params, ctx.calendar.season, self.train_end, origins, horizons)


#: Raw recent values used by the raw-level candidates of the ridge family.
RAW_LAGS = 3


def _filled(P: np.ndarray, fallback: np.ndarray | float) -> np.ndarray:
    """``P`` with its missing values taken from ``fallback``."""
    return np.where(np.isnan(P), fallback, P)


def _shift(X: np.ndarray, k: int) -> np.ndarray:
    """``X`` delayed by ``k`` steps along time (NaN for the first ``k``)."""
    out = np.full_like(X, np.nan)
    out[:, k:] = X[:, :X.shape[1] - k] if k < X.shape[1] else out[:, k:]
    return out


@register
class Ridge(Forecaster):
    """Direct linear models chosen per series and horizon by validation error.

    For every series and horizon a family of direct models (one per horizon) predicts the
    standardised value at the target from: the last ``lags`` values (forward-filled), the
    historical-average profile at the origin, and, at the target, the profile by day type,
    the profile over all recent days, the profile by weekday, the value at the same slot
    on the most recent day and week before the origin, and the weekend flag. The candidates
    differ in the features they use and in the baseline they are shrunk towards:

    * ``level``: the recent values only, shrunk towards the last value (raw level,
      persistence);
    * ``profile`` / ``profile_slot``: the target-side profiles only, shrunk towards the
      historical average by day type / over all days;
    * ``full``: everything, shrunk towards the historical average;
    * ``dev``: everything, shrunk towards "last value plus the change of the profile"
      (profile-relative persistence);
    * ``dev_short``: ``dev`` with the last 2 values only;

    each with every penalty of ``lams`` (a large penalty is the baseline itself), each
    fitted by least squares and (``robust``) by least squares weighted by ``1 / |residual|``
    of a pilot fit (one step towards least absolute deviations, for spiky series). The
    candidates are scored by blocked cross-validation inside ``[0, val_end)`` (the first
    60 %, then ``folds`` blocks, each predicted by the fit on everything before it); the
    ``top`` best per series and horizon are refitted on ``[0, val_end)`` and averaged.
    Missing inputs are forward-filled; profiles missing for a short history fall back to
    the coarser one (by weekday -> by day type -> all days -> the training mean).

    Parameters
    ----------
    lags
        Recent values used.
    lams
        Penalties tried (on standardised values).
    weeks
        Weeks of history in the profiles.
    max_pairs
        At most about this many origins per series in the fits (a stride beyond it).
    max_val
        At most about this many origins per series in each cross-validation fold.
    folds
        Cross-validation folds.
    top
        Candidates averaged.
    robust
        Also fit every candidate with robust weights.
    l1_steps
        Further reweighting steps of the robust candidates chosen.
    """

    name = "ridge"
    description = ("direct linear models per series and horizon on recent values, profiles by day type, "
                   "weekday and all days, same slot yesterday/last week; formulation (raw level, "
                   "profile, profile-relative) and penalty chosen by validation MAE, then refitted")
    lags: int = 6
    neighbour_lags: ClassVar[int] = 0
    nearest_lags: ClassVar[int] = 0

    def __init__(self, lags: int = 6, lams=(0.01, 0.1, 1.0, 10.0), weeks: int = 4,
                 max_pairs: int = 600, max_val: int = 150, folds: int = 3, top: int = 3,
                 robust: bool = True, l1_steps: int = 1):
        self.lags = lags
        self.robust = robust
        self.l1_steps = l1_steps
        self.top = top
        self.folds = folds
        self.max_val = max_val
        self.lams = np.asarray(lams, dtype=np.float64)
        self.weeks = weeks
        self.max_pairs = max_pairs

    # ----------------------------------------------------------------- features
    def _deviation(self, X: np.ndarray, cal: Calendar) -> np.ndarray:
        """Forward-filled ``X`` minus its day-type profile (0 where undefined)."""
        P = K.profile_matrix(X, cal.weekend, cal.season, self.weeks)
        return np.nan_to_num(K.forward_fill(X) - P)

    def _panels(self, Z: np.ndarray, ctx: Context):
        """The panel stack and the feature layout (see :mod:`uda.kernels.forecast`).

        The stack is allocated once and filled panel by panel, so a block's peak is the
        stack plus one or two panels of temporaries (not a list of panels and its copy).
        """
        cal = ctx.calendar
        if self.neighbour_lags and ctx.neighbours is None:
            msg = f"model {self.name!r} needs neighbour information, which this input does not provide"
            raise UserError(msg)
        near = None
        if self.nearest_lags:
            near = ctx.nearest if ctx.nearest is not None else np.full((Z.shape[0], 0, Z.shape[1]), np.nan)
        n_extra = (1 if self.neighbour_lags else 0) + (near.shape[1] if near is not None else 0)
        P = np.empty((7 + n_extra, *Z.shape))
        zeros = np.zeros_like(cal.weekend)
        # panels: 0 forward-filled values, 1 day-type profile, 2 all-days profile,
        # 3 weekly profile, 4 same slot yesterday, 5 same slot last week, 6 deviation (0 - 1)
        P[0] = K.forward_fill(Z)
        P[2] = _filled(K.periodic_mean(Z, zeros, cal.season, 14), 0.0)
        P[1] = _filled(K.profile_matrix(Z, cal.weekend, cal.season, self.weeks), P[2])
        P[3] = _filled(K.periodic_mean(Z, zeros, 7 * cal.season, self.weeks), P[1])
        P[4] = _filled(_shift(P[0], cal.season), P[1])
        P[5] = _filled(_shift(P[0], 7 * cal.season), P[3])
        np.subtract(P[0], P[1], out=P[6])
        # the last RAW_LAGS raw values (the raw-level family), then the last `lags`
        # deviations from the day-type profile (the others)
        opan = [0] * RAW_LAGS + [1] + [6] * self.lags
        olag = list(range(1, RAW_LAGS + 1)) + [1] + list(range(1, self.lags + 1))
        k = 7
        if self.neighbour_lags:
            P[k] = self._deviation(ctx.neighbours, cal)
            opan += [k] * self.neighbour_lags
            olag += list(range(1, self.neighbour_lags + 1))
            k += 1
        for j in range(near.shape[1] if near is not None else 0):
            P[k] = self._deviation(np.ascontiguousarray(near[:, j]), cal)
            opan += [k] * self.nearest_lags
            olag += list(range(1, self.nearest_lags + 1))
            k += 1
        spec = (np.asarray(opan, np.int64), np.asarray(olag, np.int64),
                np.asarray([1, 2, 3, 4, 5], np.int64))
        return P, spec

    def _candidates(self, spec) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Feature masks, priors, penalties and family names of every candidate."""
        opan, olag, tpan = spec
        Fa = 1 + len(opan)
        F = Fa + len(tpan) + 1
        inter = np.zeros(F, bool)
        inter[0] = True
        raw = np.zeros(F, bool)
        raw[1:1 + RAW_LAGS] = True
        p_o = 1 + RAW_LAGS  # the day-type profile at the origin
        d0 = p_o + 1  # first deviation lag
        devs = np.zeros(F, bool)
        devs[d0:d0 + self.lags] = True
        short = np.zeros(F, bool)
        short[d0:d0 + 2] = True
        nb = np.zeros(F, bool)
        nb[d0 + self.lags:Fa] = True
        tgt = np.zeros(F, bool)
        tgt[Fa:] = True

        def prior(*idx: int) -> np.ndarray:
            p = np.zeros(F)
            p[list(idx)] = 1.0
            return p

        last = prior(1)  # the last value
        ha = prior(Fa)  # the day-type profile at the target
        slot = prior(Fa + 1)  # the profile over all recent days at the target (``ha_slot``)
        dev = prior(d0, Fa)  # last deviation plus the profile at the target
        dev_raw = prior(1, Fa)
        dev_raw[p_o] = -1.0  # the same from the raw value: last + profile(t) - profile(o - 1)
        fams = [("level", inter | raw, last), ("level_dev", inter | raw | (dev_raw < 0) | tgt, dev_raw),
                ("profile", inter | tgt, ha),
                ("profile_slot", inter | tgt, slot), ("full", inter | devs | tgt, ha),
                ("dev", inter | devs | tgt, dev), ("dev_short", inter | short | tgt, dev)]
        if nb.any():
            fams += [("full_nb", inter | devs | nb | tgt, ha), ("dev_nb", inter | devs | nb | tgt, dev)]
        masks, priors, lams, names = [], [], [], []
        for fam, mask, prior in fams:
            for lam in self.lams:
                masks.append(mask)
                priors.append(prior)
                lams.append(lam)
                names.append(fam)
        return np.array(masks), np.array(priors), np.asarray(lams, np.float64), names

    # ----------------------------------------------------------------- fit / predict
    def fit(self, Y, ctx, *, train_end, val_end, horizons):
        cal = ctx.calendar
        self.mu, self.sd = standardise(Y, train_end)
        self.horizons = np.asarray(horizons, dtype=np.int64)
        Z = self._scaled(Y)
        P, spec = self._panels(Z, ctx)
        self._built = (Y, ctx, P, spec)  # predict on the same panel reuses them
        masks, priors, lams, self.families = self._candidates(spec)
        stride = max(1, val_end // self.max_pairs)
        # blocked cross-validation: the first 60 % of [0, val_end), then `folds` blocks;
        # fold j is predicted by the fit on everything before it
        edges = np.unique(np.linspace(0.6 * val_end, val_end, self.folds + 1).astype(np.int64))
        edges = np.concatenate([[0], edges])
        G, b, m = K.lin_gram(P, Z, *spec, cal.weekend, self.horizons, edges, stride)
        default = self.families.index("dev") + len(self.lams) // 2  # used without validation pairs
        sums = [(G, b, m)]
        if self.robust:
            # every candidate also fitted with robust weights, 1 / |residual| of a pilot fit
            # (`dev`): one step towards least absolute deviations, for spiky series; the
            # cross-validation chooses between the plain and the robust fits
            pilot = K.lin_solve(G.sum(axis=2), b.sum(axis=2), m.sum(axis=2), masks[[default]],
                                priors[[default]], lams[[default]])[:, :, 0]
            sums.append(K.lin_gram(P, Z, *spec, cal.weekend, self.horizons, edges, stride, pilot))
        self.families = self.families * len(sums)
        allm, allp, alll = (np.concatenate([x] * len(sums)) for x in (masks, priors, lams))
        err, cnt = K.lin_cv_error(P, Z, *sums[0], *sums[-1], allm, allp, alll, len(lams), *spec,
                                  cal.weekend, self.horizons, edges, self.max_val)
        # the `top` best candidates by cross-validated MAE, averaged (less winner's curse
        # than the single best when candidates differ by noise), refitted on [0, val_end)
        ranked = np.argsort(err, axis=2, kind="stable")[:, :, :self.top]
        self.choice = np.where(cnt[:, :, None] > 0, ranked, default)
        G, b, m = (np.stack(x) for x in zip(*[[a.sum(axis=2) for a in part] for part in sums],
                                            strict=True))
        self.coef = K.lin_solve_mean(G, b, m, allm, allp, alll, self.choice)
        robust = (self.choice >= len(lams)).any(axis=(1, 2))
        rows = slice(None) if robust.all() else np.flatnonzero(robust)
        for _ in range(self.l1_steps if robust.any() else 0):
            # further reweighting of the series whose chosen candidates include robust ones
            # (the others are skipped in place: no copy of the panel stack)
            Gw, bw, mw = K.lin_gram(P, Z, *spec, cal.weekend, self.horizons, edges[[0, -1]], stride,
                                    self.coef, active=robust)
            G[1][rows], b[1][rows], m[1][rows] = Gw[rows, :, 0], bw[rows, :, 0], mw[rows, :, 0]
            self.coef[rows] = K.lin_solve_mean(G[:, rows], b[:, rows], m[:, rows], allm, allp,
                                               alll, self.choice[rows])
        return self

    def _scaled(self, Y: np.ndarray) -> np.ndarray:
        """``Y`` on the scale the model was fitted in (training mean and standard deviation)."""
        return (Y - self.mu[:, None]) / self.sd[:, None]

    def chosen(self) -> dict[str, int]:
        """How often each family of candidates is among those chosen (series x horizon x top)."""
        fam = np.asarray(self.families)[self.choice]
        names, counts = np.unique(fam, return_counts=True)
        return {str(k): int(v) for k, v in zip(names, counts, strict=True)}

    def predict(self, Y, ctx, origins, horizons):
        cal = ctx.calendar
        horizons = np.asarray(horizons, dtype=np.int64)
        pos = [int(np.flatnonzero(self.horizons == h)[0]) for h in horizons]
        built = self.__dict__.pop("_built", None)
        if built is not None and built[0] is Y and built[1] is ctx:
            P, spec = built[2], built[3]
        else:
            P, spec = self._panels(self._scaled(Y), ctx)
        out = K.lin_predict(P, np.ascontiguousarray(self.coef[:, pos]), *spec, cal.weekend,
                            horizons, np.asarray(origins, dtype=np.int64))
        return out * self.sd[:, None, None] + self.mu[:, None, None]


@register
class SpatialRidge(Ridge):
    name = "ridge_sp"
    description = ("ridge plus the last 3 deviations of the neighbours' mean standardised signal "
                   "(neighbours from the road graph, an adjacency file, or the 4 most correlated series)")
    neighbour_lags = 3
    needs_neighbours = True


@register
class SpatioTemporalRidge(Ridge):
    name = "ridge_st"
    description = ("ridge plus the last 2 deviations of each of the 4 neighbours whose deviations "
                   "correlate most with the series' own (each with its own coefficients)")
    nearest_lags = 2
    needs_neighbours = True


def resolve_models(names: list[str] | str) -> list[str]:
    """Check model names against the registry (``'all'`` means every model)."""
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    if names == ["all"]:
        return list(MODELS)
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        msg = f"unknown model {', '.join(unknown) or '(none)'}; choose from: {', '.join(MODELS)} or all"
        raise UserError(msg)
    return list(dict.fromkeys(names))


def resolve_horizons(horizons: list[int] | str) -> np.ndarray:
    """Parse ``'3,6,12'`` into sorted unique positive steps."""
    if isinstance(horizons, str):
        try:
            horizons = [int(s) for s in horizons.split(",") if s.strip()]
        except ValueError:
            msg = f"cannot read horizons {horizons!r}; give steps ahead like 3,6,12"
            raise UserError(msg) from None
    h = np.unique(np.asarray(horizons, dtype=np.int64))
    if h.size == 0 or h.min() < 1:
        msg = f"horizons must be positive steps ahead like 3,6,12; got {list(horizons)}"
        raise UserError(msg)
    return h


# --------------------------------------------------------------------------- protocol


@dataclass
class Protocol:
    """Where the splits fall on the time axis and which origins are evaluated."""

    n_time: int
    train_end: int
    val_end: int
    origins: np.ndarray
    horizons: np.ndarray
    split: tuple[float, float, float]

    def describe(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"split": list(self.split), "train_steps": self.train_end,
                "val_steps": self.val_end - self.train_end,
                "test_steps": self.n_time - self.val_end,
                "origins": int(len(self.origins)),
                "origin_step": int(self.origins[1] - self.origins[0]) if len(self.origins) > 1 else 1,
                "horizons": [int(h) for h in self.horizons], "mask": MASK_RULE}


def make_protocol(n_time: int, season: int, horizons: np.ndarray, *,
                  split: tuple[float, float, float] = DEFAULT_SPLIT,
                  origin_step: int = 1) -> Protocol:
    """Chronological train/validation/test split and rolling origins over the test period.

    ``train_end = floor(split[0] * n_time)``, ``val_end = floor((split[0] + split[1]) * n_time)``;
    origins run from ``val_end`` to ``n_time - max(horizons)`` every ``origin_step`` steps, so
    every horizon is scored on the same origins and every target lies in the test period.
    """
    if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1.0) > 1e-9 or split[0] <= 0 or split[2] <= 0:
        msg = f"split {split} must be three non-negative fractions summing to 1 with train and test > 0"
        raise UserError(msg)
    if origin_step < 1:
        msg = f"origin step must be at least 1; got {origin_step}"
        raise UserError(msg)
    train_end = int(np.floor(split[0] * n_time + 1e-9))
    val_end = int(np.floor((split[0] + split[1]) * n_time + 1e-9))
    hmax = int(horizons.max())
    if hmax > season:
        msg = f"horizon {hmax} is longer than one day ({season} steps); use horizons up to {season}"
        raise UserError(msg)
    need = 2 * season + max(Ridge.lags, hmax)
    if train_end < need:
        msg = (f"series have {n_time} steps, so the training part ({split[0]:.0%}) has {train_end} steps; "
               f"the models need at least {need} (two days plus the lags); supply a longer history")
        raise UserError(msg)
    if n_time - val_end < hmax:
        msg = (f"the test part has {n_time - val_end} steps, fewer than the largest horizon {hmax}; "
               "use shorter horizons or a longer history")
        raise UserError(msg)
    origins = np.arange(val_end, n_time - hmax + 1, origin_step, dtype=np.int64)
    return Protocol(n_time, train_end, val_end, origins, horizons, tuple(split))


def usable_series(Y: np.ndarray, train_end: int) -> np.ndarray:
    """True for series with at least one observation in the training part."""
    return np.any(~np.isnan(Y[:, :train_end]), axis=1)


def block_error_sums(Y: np.ndarray, ctx: Context, proto: Protocol,
                     models: list[str]) -> dict[str, dict[str, Any]]:
    """Fit and score ``models`` on a block of series; additive sums per model.

    Missing forecasts (no usable history before the origin) are replaced by the series'
    training mean and counted as ``fallback``.

    Returns
    -------
    dict
        ``{model: {"sums": (n_horizons, 4), "fallback": int, "forecasts": int,
        "fit_s": float, "predict_s": float}}``
    """
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    mu, _ = standardise(Y, proto.train_end)
    out: dict[str, dict[str, Any]] = {}
    for name in models:
        model = MODELS[name]()
        t0 = time.perf_counter()
        model.fit(Y, ctx, train_end=proto.train_end, val_end=proto.val_end, horizons=proto.horizons)
        t1 = time.perf_counter()
        pred = model.predict(Y, ctx, proto.origins, proto.horizons)
        t2 = time.perf_counter()
        miss = np.isnan(pred)
        if miss.any():
            pred = np.where(miss, mu[:, None, None], pred)
        sums = K.error_sums(pred, Y, proto.origins, proto.horizons)
        out[name] = {"sums": sums, "fallback": int(miss.sum()), "forecasts": int(pred.size),
                     "fit_s": t1 - t0, "predict_s": t2 - t1}
    return out


def merge_block_sums(blocks: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Add up the per-block sums of :func:`block_error_sums` (blocks in a fixed order)."""
    merged: dict[str, dict[str, Any]] = {}
    for block in blocks:
        for name, r in block.items():
            if name not in merged:
                merged[name] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in r.items()}
            else:
                m = merged[name]
                m["sums"] = m["sums"] + r["sums"]
                for k in ("fallback", "forecasts", "fit_s", "predict_s"):
                    m[k] += r[k]
    return merged


def metrics_from_sums(merged: dict[str, dict[str, Any]], horizons: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE, MAPE (percent) per model and horizon, and skill against ``ha``.

    Skill of a model at a horizon is ``1 - MAE_model / MAE_ha`` (positive = better than the
    historical average); it is reported only when ``ha`` was evaluated.
    """
    models: dict[str, dict[str, dict[str, float]]] = {}
    for name, r in merged.items():
        per_h = {}
        for c, h in enumerate(horizons):
            n, sa, ss, sp = r["sums"][c]
            per_h[str(int(h))] = {
                "mae": float(sa / n) if n else float("nan"),
                "rmse": float(np.sqrt(ss / n)) if n else float("nan"),
                "mape": float(100.0 * sp / n) if n else float("nan"),
                "n": int(n),
            }
        models[name] = per_h
    skill: dict[str, dict[str, float]] = {}
    if "ha" in models:
        for name, per_h in models.items():
            skill[name] = {h: 1.0 - v["mae"] / models["ha"][h]["mae"]
                           if models["ha"][h]["mae"] > 0 else float("nan")
                           for h, v in per_h.items()}
    return {"models": models, "skill_mae_vs_ha": skill,
            "fallback": {n: r["fallback"] for n, r in merged.items()},
            "timing_s": {n: {"fit": r["fit_s"], "predict": r["predict_s"]} for n, r in merged.items()}}


def prepare(panel: Panel, *, horizons: list[int] | str | np.ndarray,
            split: tuple[float, float, float] = DEFAULT_SPLIT,
            origin_step: int = 1) -> tuple[Panel, Protocol]:
    """Check the panel, drop series unusable for training (reported), build the protocol."""
    h = resolve_horizons(horizons if not isinstance(horizons, np.ndarray) else list(horizons))
    proto = make_protocol(panel.values.shape[1], panel.season, h, split=split,
                          origin_step=origin_step)
    keep = usable_series(panel.values, proto.train_end)
    if not keep.any():
        msg = "every series is missing throughout the training period; nothing to forecast"
        raise UserError(msg)
    if not keep.all():
        dropped = [panel.ids[i] for i in np.flatnonzero(~keep)]
        shown = ", ".join(dropped[:5]) + (" ..." if len(dropped) > 5 else "")
        panel = panel.select(keep)
        panel.notes.append(f"dropped {len(dropped)} series with no observation in the training "
                           f"period: {shown}")
    return panel, proto


def make_context(panel: Panel, proto: Protocol, models: list[str]) -> Context:
    """Calendar and (if a model needs it) the neighbour signal of ``panel``."""
    cal = Calendar.regular(panel.start, panel.interval_s, panel.values.shape[1])
    if not any(MODELS[m].needs_neighbours for m in models):
        return Context(cal)
    indptr, indices = panel.indptr, panel.indices
    if indptr is None:
        indptr, indices = correlation_neighbours(panel.values, proto.train_end, calendar=cal)
        panel.notes.append(CORRELATION_NOTE)
    return neighbour_context(panel.values, proto.train_end, indptr, indices, cal)


#: What the result says when neighbours are found by correlation.
CORRELATION_NOTE = ("no adjacency given: neighbours are the 4 series whose deviations from their "
                    "profiles correlate most over the training period")


def neighbour_context(Y: np.ndarray, train_end: int, indptr: np.ndarray, indices: np.ndarray,
                      cal: Calendar) -> Context:
    """Context with the neighbours' mean signal and the nearest neighbours' series."""
    Z = standardised(Y, train_end)  # once for both signals
    return Context(cal, _neighbour_mean(Z, indptr, indices),
                   nearest_neighbours(Z, train_end, indptr, indices, cal))


def evaluate(panel: Panel, *, models: list[str] | str = "last,ha,ridge",
             horizons: list[int] | str | np.ndarray = (3, 6, 12),
             split: tuple[float, float, float] = DEFAULT_SPLIT,
             origin_step: int = 1) -> dict[str, Any]:
    """Fit and score forecasters on a panel with the rolling-origin protocol.

    Parameters
    ----------
    panel
        The series.
    models
        Registry names (see :data:`MODELS`).
    horizons
        Steps ahead to score.
    split
        Train, validation, test fractions of the time axis (chronological).
    origin_step
        Steps between consecutive rolling origins in the test period.

    Returns
    -------
    dict
        ``{"models": {model: {horizon: {"mae", "rmse", "mape", "n"}}}, "skill_mae_vs_ha": ...,
        "protocol": ..., "series": ..., "notes": [...], ...}``
    """
    names = resolve_models(models)
    panel, proto = prepare(panel, horizons=horizons, split=split, origin_step=origin_step)
    ctx = make_context(panel, proto, names)
    merged = block_error_sums(panel.values, ctx, proto, names)
    return finish(merged, proto, series=panel.values.shape[0], start=panel.start,
                  interval_s=panel.interval_s, notes=panel.notes)


def finish(merged: dict[str, dict[str, Any]], proto: Protocol, *, series: int,
           start: np.datetime64, interval_s: int, notes: list[str]) -> dict[str, Any]:
    """The JSON-ready result of an evaluation of ``series`` series."""
    res = metrics_from_sums(merged, proto.horizons)
    return {**res, "protocol": proto.describe(), "series": int(series), "steps": int(proto.n_time),
            "interval_s": int(interval_s), "start": str(start), "notes": list(notes)}
