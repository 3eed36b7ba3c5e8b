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


def neighbour_signal(Y: np.ndarray, train_end: int, indptr: np.ndarray,
                     indices: np.ndarray) -> np.ndarray:
    """Mean of the neighbours' standardised values per series and step."""
    mu, sd = standardise(Y, train_end)
    return K.neighbour_mean((Y - mu[:, None]) / sd[:, None], indptr.astype(np.int64),
                           indices.astype(np.int64))


def correlation_neighbours(Y: np.ndarray, train_end: int, *, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency linking each series to its ``k`` most correlated others (training part)."""
    n = Y.shape[0]
    mu, sd = standardise(Y, train_end)
    Z = np.nan_to_num((Y[:, :train_end] - mu[:, None]) / sd[:, None])
    C = (Z @ Z.T) / max(train_end, 1)
    np.fill_diagonal(C, -np.inf)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros(n + 1, dtype=np.int64), np.empty(0, dtype=np.int64)
    idx = np.argsort(-C, axis=1, kind="stable")[:, :k]
    return np.arange(0, n * k + 1, k, dtype=np.int64), idx.ravel().astype(np.int64)


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


@register
class Ridge(Forecaster):
    """Historical-average profile plus a ridge regression of the deviation from it.

    Parameters
    ----------
    lams
        Penalties tried; each series and horizon keeps the one with the least validation MAE.
    harmonics
        Daily sin/cos pairs of the target's slot added as features (0: the profile already
        carries the time of day; more did not help on the synthetic data).
    weeks
        Weeks of history in the profile (as in ``ha``).
    stride
        Train on every ``stride``-th origin (1 = all).
    """

    name = "ridge"
    description = ("historical-average profile plus a direct ridge regression (per series and horizon) "
                   "of the deviation from it on the last 6 deviations, the deviation at the same slot "
                   "yesterday and the target's weekend flag; penalty per series chosen on validation")
    lags = 6
    exo_lags = 0

    def __init__(self, lams=(1e-3, 1e-2, 1e-1, 1.0), harmonics: int = 0, weeks: int = 4,
                 stride: int = 1):
        self.lams = np.asarray(lams, dtype=np.float64)
        self.harmonics = harmonics
        self.weeks = weeks
        self.stride = stride

    def _exo(self, Y, ctx):
        if self.exo_lags == 0:
            return np.zeros((Y.shape[0], 1))
        if ctx.neighbours is None:
            msg = f"model {self.name!r} needs neighbour information, which this input does not provide"
            raise UserError(msg)
        return ctx.neighbours

    def _inputs(self, Y, ctx):
        """Deviations from the historical-average profile (standardised) and the profile."""
        cal = ctx.calendar
        Z = (Y - self.mu[:, None]) / self.sd[:, None]
        P = K.profile_matrix(Z, cal.weekend, cal.season, self.weeks)
        X = self._exo(Y, ctx)
        if self.exo_lags:
            X = X - np.nan_to_num(K.profile_matrix(X, cal.weekend, cal.season, self.weeks))
        return Z - P, P, X

    def _predict_dev(self, Df, Xf, ctx, coef, origins, horizons):
        cal = ctx.calendar
        return K.ridge_predict(Df, Xf, coef, origins, horizons, self.lags, self.exo_lags,
                               cal.slot, cal.weekend, cal.season, self.harmonics)

    def fit(self, Y, ctx, *, train_end, val_end, horizons):
        cal = ctx.calendar
        self.mu, self.sd = standardise(Y, train_end)
        self.horizons = np.asarray(horizons, dtype=np.int64)
        D, P, X = self._inputs(Y, ctx)
        coef, self.rows = K.ridge_fit(D, X, train_end, self.horizons, self.lags, self.exo_lags,
                                      cal.slot, cal.weekend, cal.season, self.harmonics, self.lams,
                                      self.stride)
        hmax = int(self.horizons.max())
        # the penalty is chosen on every 4th origin of the validation part (enough to rank 4 values)
        val_origins = np.arange(train_end, val_end - hmax + 1, 4, dtype=np.int64)
        if len(self.lams) == 1 or len(val_origins) == 0:
            self.choice = np.zeros((Y.shape[0], len(self.horizons)), dtype=np.int64)
        else:
            targets = val_origins[:, None] + self.horizons[None, :] - 1
            # deviation of the actual value from the profile: what the regression predicts
            want = D[:, targets]
            Df, Xf = K.forward_fill(D), K.forward_fill(X)
            err = np.empty((len(self.lams), Y.shape[0], len(self.horizons)))
            for li in range(len(self.lams)):
                dev = self._predict_dev(Df, Xf, ctx, np.ascontiguousarray(coef[:, :, li]),
                                        val_origins, self.horizons)
                with np.errstate(all="ignore"):
                    err[li] = np.nanmean(np.abs(dev - want), axis=1)
            err = np.where(np.isnan(err), np.inf, err)
            self.choice = np.argmin(err, axis=0)
        self.coef = np.take_along_axis(coef, self.choice[:, :, None, None], axis=2)[:, :, 0]
        return self

    def predict(self, Y, ctx, origins, horizons):
        horizons = np.asarray(horizons, dtype=np.int64)
        pos = [int(np.flatnonzero(self.horizons == h)[0]) for h in horizons]
        D, P, X = self._inputs(Y, ctx)
        dev = self._predict_dev(K.forward_fill(D), K.forward_fill(X), ctx,
                                np.ascontiguousarray(self.coef[:, pos]), origins, horizons)
        prof = np.nan_to_num(P[:, origins[:, None] + horizons[None, :] - 1])
        return (dev + prof) * self.sd[:, None, None] + self.mu[:, None, None]


@register
class SpatialRidge(Ridge):
    name = "ridge_sp"
    description = ("ridge plus the last 3 deviations of the neighbours' mean standardised signal "
                   "(VAR-like; neighbours from the road graph, or the 4 most correlated series)")
    exo_lags = 3
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
    nb = None
    if any(MODELS[m].needs_neighbours for m in models):
        indptr, indices = panel.indptr, panel.indices
        if indptr is None:
            indptr, indices = correlation_neighbours(panel.values, proto.train_end)
            panel.notes.append("no adjacency given: neighbours are the 4 most correlated series "
                               "over the training period")
        nb = neighbour_signal(panel.values, proto.train_end, indptr, indices)
    return Context(cal, nb)


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
