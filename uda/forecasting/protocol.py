"""The rolling-origin protocol: splits, origins and horizons, scoring a block of series, metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from uda.errors import UserError
from uda.forecasting.panel import Context, standardise
from uda.forecasting.registry import MODELS, new_model
from uda.kernels import forecast as K

#: Default chronological split of the time axis: train, validation, test.
DEFAULT_SPLIT = (0.7, 0.1, 0.2)
#: Horizons (steps ahead) ``uda run flow`` scores by default.
DEFAULT_HORIZONS = "1,3,6,12"
#: Points that count in every metric: the actual value is finite and not zero.
MASK_RULE = "a point counts iff the actual value is finite and != 0 (same mask for MAE, RMSE, MAPE)"


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
    The training part must hold the most history any registered model needs
    (:meth:`~uda.forecasting.models.Forecaster.history`) and two days plus the largest horizon.
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
    # the most history any registered model declares, so that a table gets the same split
    # whichever models are scored
    need = max(2 * season + hmax, *(m.history(season) for m in MODELS.values()))
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
        model = new_model(name)
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


def finish(merged: dict[str, dict[str, Any]], proto: Protocol, *, series: int,
           start: np.datetime64, interval_s: int, notes: list[str]) -> dict[str, Any]:
    """The JSON-ready result of an evaluation of ``series`` series."""
    res = metrics_from_sums(merged, proto.horizons)
    return {**res, "protocol": proto.describe(), "series": int(series), "steps": int(proto.n_time),
            "interval_s": int(interval_s), "start": str(start), "notes": list(notes)}


def dropped_note(labels: list[str]) -> list[str]:
    """The note naming series skipped for having no observation in the training part."""
    if not labels:
        return []
    return [f"dropped {len(labels)} series with no observation in the training period: "
            + ", ".join(labels[:5]) + (" ..." if len(labels) > 5 else "")]
