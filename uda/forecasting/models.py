"""The forecaster interface and the naive baselines (last value, seasonal naive, historical average).

A forecaster is configured in ``__init__`` and registered once, as a configured instance
under an alias, in :mod:`uda.forecasting.registry`; every evaluation fits a fresh copy.
"""

from __future__ import annotations

import numpy as np

from uda.forecasting.panel import Context
from uda.kernels import forecast as K


class Forecaster:
    """One forecasting model: parameters in ``__init__``, ``fit``, then ``predict``.

    ``fit`` sees ``Y[:, :train_end]`` (plus ``Y[:, train_end:val_end]`` for choosing
    hyperparameters, if the model has any); ``predict`` returns forecasts of shape
    ``(n_series, n_origins, n_horizons)`` where origin ``o`` uses ``Y[:, :o]`` only.

    Attributes
    ----------
    name, description
        The alias and the one-line description it is registered under
        (:func:`uda.forecasting.registry.register` sets them).
    needs_neighbours
        True if ``predict`` reads the neighbour signals of the :class:`Context`.
    """

    name: str = ""
    description: str = ""
    needs_neighbours: bool = False

    def history(self, season: int) -> int:
        """Training steps the model needs, for ``season`` steps a day (two days: the profiles
        and Holt-Winters' initial state; the protocol asks for the most any model needs)."""
        return 2 * season

    def fit(self, Y: np.ndarray, ctx: Context, *, train_end: int, val_end: int,
            horizons: np.ndarray) -> Forecaster:
        """Learn from the history (the default has nothing to learn)."""
        return self

    def predict(self, Y: np.ndarray, ctx: Context, origins: np.ndarray,
                horizons: np.ndarray) -> np.ndarray:
        """Forecasts from ``origins`` for ``horizons``."""
        raise NotImplementedError


class LastValue(Forecaster):
    """The last observed value before the origin, for every horizon."""

    def predict(self, Y, ctx, origins, horizons):
        return K.last_value_predict(Y, origins, horizons)


class SeasonalNaive(Forecaster):
    """The value at the same slot ``days`` days before the target's day, looking up to
    ``tries - 1`` further periods back while it is missing.

    Parameters
    ----------
    days
        Season in days (1: yesterday's slot, 7: last week's slot and weekday).
    tries
        Periods looked at, the most recent first.
    """

    def __init__(self, days: int = 1, tries: int = 4):
        self.days = days
        self.tries = tries

    def predict(self, Y, ctx, origins, horizons):
        return K.seasonal_naive_predict(Y, origins, horizons, self.days * ctx.calendar.season,
                                        self.tries)


class HistoricalAverage(Forecaster):
    """Mean of the same slot over the previous ``weeks`` weeks, on days of the target's day
    type (weekday/weekend) or, with ``by_day_type=False``, on every day.
    """

    def __init__(self, weeks: int = 4, by_day_type: bool = True):
        self.weeks = weeks
        self.by_day_type = by_day_type

    def predict(self, Y, ctx, origins, horizons):
        cal = ctx.calendar
        weekend = cal.weekend if self.by_day_type else np.zeros_like(cal.weekend)
        return K.historical_average_predict(Y, origins, horizons, weekend, cal.season, self.weeks)
