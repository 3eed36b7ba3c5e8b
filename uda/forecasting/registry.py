"""The forecaster registry: every model once, as a configured instance under an alias.

To add a model, write its :class:`~uda.forecasting.models.Forecaster` (a new module, or
one of the model modules) and add one :func:`register` line below; the common tests
(tests/test_flow_models.py), ``uda run flow --models all`` and asv (bench/asv_flow.py,
bench/asv_compile.py) pick it up from :data:`MODELS`.
"""

from __future__ import annotations

import copy

from uda.errors import UserError
from uda.forecasting.holtwinters import HoltWinters
from uda.forecasting.models import Forecaster, HistoricalAverage, LastValue, SeasonalNaive
from uda.forecasting.ridge import Ridge

#: Alias -> configured forecaster (never fitted itself: :func:`new_model` hands out copies).
MODELS: dict[str, Forecaster] = {}


def register(alias: str, model: Forecaster, description: str) -> Forecaster:
    """Add the configured ``model`` to :data:`MODELS` under ``alias``.

    Parameters
    ----------
    alias
        Name used by ``--models`` and in results; must be new.
    model
        Configured forecaster.
    description
        One line saying what it forecasts with.

    Returns
    -------
    Forecaster
        ``model``, with ``name`` and ``description`` set.
    """
    if alias in MODELS:
        msg = f"forecaster alias {alias!r} is registered twice"
        raise ValueError(msg)
    model.name, model.description = alias, description
    MODELS[alias] = model
    return model


register("last", LastValue(), "last observed value before the origin")
register("snaive_day", SeasonalNaive(days=1, tries=4),
         "same slot on the most recent day before the origin (up to 3 more days back if missing)")
register("snaive_week", SeasonalNaive(days=7, tries=2),
         "same slot and weekday on the most recent week before the origin (or one more week back)")
register("ha", HistoricalAverage(weeks=4),
         "mean of the same slot on days of the same type (weekday/weekend) over the previous 4 weeks")
register("ha_slot", HistoricalAverage(weeks=4, by_day_type=False),
         "mean of the same slot over every day of the previous 4 weeks (weekdays and weekends together)")
register("hw", HoltWinters(),
         "additive Holt-Winters, daily season, (alpha, beta, gamma) by least one-step SSE on a grid")
register("ridge", Ridge(),
         "direct linear models per series and horizon on recent values, profiles by day type, "
         "weekday and all days, same slot yesterday/last week; formulation (raw level, "
         "profile, profile-relative) and penalty chosen by validation MAE, then refitted")
register("ridge_sp", Ridge(neighbour_lags=3),
         "ridge plus the last 3 deviations of the neighbours' mean standardised signal "
         "(neighbours from the road graph, an adjacency file, or the 4 most correlated series)")
register("ridge_st", Ridge(nearest_lags=2),
         "ridge plus the last 2 deviations of each of the 4 neighbours whose deviations "
         "correlate most with the series' own (each with its own coefficients)")

#: The models ``uda run flow`` scores by default (a fixed set, so that adding a model does not
#: change the benchmark's default workload; ``--models all`` takes every registered one).
DEFAULT_MODELS = "last,snaive_day,snaive_week,ha,ha_slot,hw,ridge,ridge_sp,ridge_st"


def new_model(alias: str) -> Forecaster:
    """A fresh, unfitted copy of the forecaster registered under ``alias``."""
    return copy.deepcopy(MODELS[alias])


def needs_neighbours(aliases: list[str]) -> bool:
    """True if any of the forecasters ``aliases`` reads the neighbour signals."""
    return any(MODELS[m].needs_neighbours for m in aliases)


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
