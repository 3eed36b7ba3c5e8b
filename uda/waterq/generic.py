"""Detectors over every parameter (known or not), fitted on a training part.

:func:`fit_detectors` learns residual scales, a robust covariance, thresholds and (with
labels) the supervised model; :func:`apply_detectors` scores every row in one compiled
pass (:func:`uda.kernels.residuals.detector_rows`) and turns scores into alarms with
persistence and hysteresis. The detectors are those of the ``generic`` family of
:data:`uda.waterq.detectors.REGISTRY`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from uda.kernels.detect import window_max
from uda.kernels.residuals import (
    causal_residuals,
    cusum_two_sided,
    detector_rows,
    hysteresis,
    robust_distance,
)
from uda.waterq.detectors import GENERIC_DETECTORS, REGISTRY, warm_up
from uda.waterq.events import per_sample_f1
from uda.waterq.settings import DetectOptions
from uda.waterq.trees import NO_TREES, new_model, one_thread, pack_trees

#: The generic detectors fitted without labels (their scores come from every row's residuals).
_UNSUPERVISED: tuple[str, ...] = tuple(n for n in GENERIC_DETECTORS if not REGISTRY[n].needs_labels)

#: Quantile levels of the training scores tried as thresholds when labels exist.
QUANTILE_GRID: tuple[float, ...] = (0.9, 0.95, 0.97, 0.98, 0.99, 0.993, 0.995, 0.997, 0.998,
                                    0.999, 0.9995, 0.9998, 0.9999)


@dataclass
class FittedDetectors:
    """What :func:`fit_detectors` learnt on the training part.

    Attributes
    ----------
    params
        Parameter columns, in order.
    interval_s, window, min_periods, max_mask
        Sampling step and the forecast window settings in samples.
    scale
        Site id -> ``(p,)`` residual scale (1.4826 MAD of training residuals, floored
        at the sensor resolution).
    tail
        ``(p,)`` training quantile of ``|z|`` per parameter.
    precision
        ``(p, p)`` inverse covariance of the winsorised training residuals.
    thresholds
        Detector -> alarm threshold on its score.
    how
        Detector -> how its threshold was chosen.
    model
        The supervised classifier (``None`` without training labels).
    train_f1
        Detector -> per-sample F1 on the training part at the chosen threshold
        (out-of-fold for ``supervised``); empty without labels.
    trees
        ``model``'s trees as flat node arrays (:func:`pack_trees`) for the compiled
        evaluator of :func:`uda.kernels.residuals.detector_rows`; ``None`` without a model.
    """

    params: tuple[str, ...]
    interval_s: float
    window: int
    min_periods: int
    max_mask: int
    scale: dict[int, np.ndarray]
    tail: np.ndarray
    precision: np.ndarray
    thresholds: dict[str, float]
    how: dict[str, str]
    model: object | None
    train_f1: dict[str, float]
    trees: dict[str, Any] | None = None


def _resolution(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Smallest positive step between consecutive samples of each column (sensor resolution)."""
    p = values.shape[1]
    out = np.full(p, np.nan)
    for j in range(p):
        steps = []
        for a, b in zip(offsets[:-1], offsets[1:], strict=True):
            x = values[a:b, j]
            x = x[~np.isnan(x)]
            d = np.abs(np.diff(x))
            d = d[d > 0]
            if d.size:
                steps.append(d.min())
        if steps:
            out[j] = min(steps)
    return out


def _residuals(block, fitted_scale: dict[int, np.ndarray] | None, opts: DetectOptions,
               window: int, min_periods: int, max_mask: int) -> np.ndarray:
    p = block.values.shape[1]
    if fitted_scale is None:
        scale = np.ones((block.sites.size, p))
        gate, mask = math.inf, 0
    else:
        pooled = np.nanmedian(np.stack(list(fitted_scale.values())), axis=0)
        scale = np.stack([fitted_scale.get(int(s), pooled) for s in block.sites]) \
            if block.sites.size else np.ones((0, p))
        gate, mask = opts.gate, max_mask
    return causal_residuals(block.values, block.offsets, window, min_periods,
                            np.ascontiguousarray(scale, dtype=np.float64), gate, mask)


#: Rows before the current one in the supervised detector's recent-max feature.
RECENT_ROWS = 4


def detector_features(block, fitted: FittedDetectors, opts: DetectOptions, *, want_x: bool = True,
                      trees: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The unsupervised scores of every row of ``block`` (and the supervised one given ``trees``).

    One compiled causal pass per site (:func:`uda.kernels.residuals.detector_rows`).

    Returns
    -------
    dict of ndarray
        The scores ``residual`` (largest ``|u|``, ``u`` = residual in scale units /
        training tail), ``distance`` (robust Mahalanobis length of the residuals),
        ``changepoint`` (largest two-sided CUSUM of ``u``), each ``(n,)``; with
        ``want_x`` the supervised features ``X`` ``(n, 3p + 2)``; with ``trees`` the
        ``supervised`` probability.
    """
    p = block.values.shape[1]
    pooled = np.nanmedian(np.stack(list(fitted.scale.values())), axis=0) if fitted.scale else np.ones(p)
    scale = np.stack([fitted.scale.get(int(s), pooled) for s in block.sites]) \
        if block.sites.size else np.ones((0, p))
    t = trees if trees is not None else NO_TREES
    resid, dist, change, prob, X = detector_rows(
        np.ascontiguousarray(block.values, dtype=np.float64), block.offsets, fitted.window,
        fitted.min_periods, np.ascontiguousarray(scale, dtype=np.float64), float(opts.gate), int(fitted.max_mask),
        np.ascontiguousarray(fitted.tail, dtype=np.float64), np.ascontiguousarray(fitted.precision),
        float(opts.clip), float(opts.cusum_k), float(opts.cusum_clip), RECENT_ROWS, bool(want_x),
        t["roots"], t["feature"], t["threshold"], t["left"], t["right"], t["missing_left"], t["leaf"],
        t["value"], float(t["base"]))
    out = {"residual": resid, "distance": dist, "changepoint": change}
    if want_x:
        out["X"] = X
    if trees is not None:
        out["supervised"] = prob
    return out


def detector_features_stepwise(block, fitted: FittedDetectors, opts: DetectOptions) -> dict[str, np.ndarray]:
    """:func:`detector_features` computed piece by piece with the separate kernels (a reference).

    Returns
    -------
    dict of ndarray
        ``z`` ``(n, p)`` residuals in scale units, ``u`` = ``z / tail``, the scores
        ``residual``, ``distance``, ``changepoint`` and the features ``X``.
    """
    z = _residuals(block, fitted.scale, opts, fitted.window, fitted.min_periods, fitted.max_mask)
    u = z / fitted.tail
    au = np.abs(u)
    none = np.isnan(u).all(axis=1) if u.shape[1] else np.ones(u.shape[0], bool)
    with np.errstate(all="ignore"):
        resid = np.where(none, np.nan, np.nanmax(np.where(np.isnan(au), -np.inf, au), axis=1))
    dist = robust_distance(np.ascontiguousarray(z), fitted.precision, opts.clip)
    dist[none] = np.nan
    cs = cusum_two_sided(np.ascontiguousarray(u), block.offsets, opts.cusum_k, opts.cusum_clip)
    change = cs.max(axis=1) if cs.shape[1] else np.zeros(cs.shape[0])
    change[none] = np.nan
    recent = window_max(np.ascontiguousarray(au), block.offsets, RECENT_ROWS, 0)
    X = np.column_stack([np.clip(z, -opts.clip, opts.clip), recent, cs, resid, dist])
    return {"z": z, "u": u, "residual": resid, "distance": dist, "changepoint": change, "X": X}


def alarm_flags(score: np.ndarray, offsets: np.ndarray, threshold: float, opts: DetectOptions) -> np.ndarray:
    return hysteresis(np.ascontiguousarray(score, dtype=np.float64), offsets, threshold,
                      opts.off_fraction * threshold, opts.min_on)


def _best_threshold(score: np.ndarray, offsets: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                    candidates: np.ndarray, opts: DetectOptions) -> tuple[float, float]:
    """Candidate threshold with the best per-sample F1 over ``rows`` (ties: the higher one)."""
    best = (-1.0, math.inf)
    for thr in np.unique(candidates[np.isfinite(candidates)]):
        f = per_sample_f1(alarm_flags(score, offsets, float(thr), opts)[rows], labels[rows])[2]
        if f > best[0] or (f == best[0] and thr > best[1]):
            best = (f, float(thr))
    return best[1], max(best[0], 0.0)


def fit_detectors(block, labels: np.ndarray | None, train: np.ndarray, interval_s: float,
                  opts: DetectOptions | None = None) -> FittedDetectors:
    """Fit scales, covariance, thresholds and (with labels) the supervised model on ``train`` rows.

    Parameters
    ----------
    block
        :class:`uda.waterq.block.Block` of every site (training rows and later ones).
    labels
        ``(n,)`` bool event labels, or ``None``; only ``train`` rows are read.
    train
        ``(n,)`` bool: the training part.
    interval_s
        Median sampling step.
    opts
        Settings.

    Returns
    -------
    FittedDetectors
    """
    opts = opts or DetectOptions()
    window = opts.window(interval_s)
    min_periods = warm_up("generic", opts, interval_s)
    max_mask = max(1, round(opts.max_mask_s / max(interval_s, 1e-9)))
    p = block.values.shape[1]
    has_labels = labels is not None and bool(labels[train].any())
    normal = train & ~labels if has_labels else train.copy()
    raw = _residuals(block, None, opts, window, min_periods, max_mask)
    res_floor = _resolution(block.values[train], _train_offsets(block, train))
    scale: dict[int, np.ndarray] = {}
    for g, site in enumerate(block.sites.tolist()):
        a, b = block.offsets[g], block.offsets[g + 1]
        r = raw[a:b][normal[a:b]]
        s = np.full(p, np.nan)
        for j in range(p):
            x = r[:, j][~np.isnan(r[:, j])]
            if x.size >= 10:
                s[j] = 1.4826 * np.median(np.abs(x - np.median(x)))
        s = np.fmax(np.nan_to_num(s, nan=0.0), np.nan_to_num(res_floor, nan=0.0))
        s[s <= 0] = np.nan
        scale[int(site)] = s
    pooled = np.nanmedian(np.stack(list(scale.values())), axis=0) if scale else np.ones(p)
    pooled = np.where(np.isnan(pooled), 1.0, pooled)
    scale = {k: np.where(np.isnan(v), pooled, v) for k, v in scale.items()}
    fitted = FittedDetectors(block.params, interval_s, window, min_periods, max_mask, scale,
                             np.ones(p), np.eye(p), {}, {}, None, {})
    z = _residuals(block, scale, opts, window, min_periods, max_mask)
    zn = np.abs(z[normal])
    tail = np.array([np.nanquantile(zn[:, j], opts.tail) if np.isfinite(zn[:, j]).any() else 1.0
                     for j in range(p)])
    fitted.tail = np.fmax(np.nan_to_num(tail, nan=1.0), 1.0)
    zc = np.clip(z[normal], -fitted.tail, fitted.tail)
    zc = zc[~np.isnan(zc).any(axis=1)] if zc.size else zc
    if zc.shape[0] > p + 1:
        cov = np.cov(zc, rowvar=False).reshape(p, p)
    else:
        cov = np.eye(p)
    cov = cov + np.eye(p) * (1e-3 * max(float(np.trace(cov)) / max(p, 1), 1e-9))
    fitted.precision = np.ascontiguousarray(np.linalg.pinv(cov))
    feats = detector_features(block, fitted, opts)
    for name in _UNSUPERVISED:
        sc = feats[name]
        ok = train & np.isfinite(sc)
        if not ok.any():
            fitted.thresholds[name] = math.inf
            fitted.how[name] = "no training scores"
            continue
        if has_labels:
            levels = np.array(QUANTILE_GRID)
            cands = np.quantile(sc[ok], levels)
            thr, f = _best_threshold(sc, block.offsets, labels, train, cands, opts)
            q = float(levels[np.argmin(np.abs(cands - thr))])
            fitted.thresholds[name] = thr
            fitted.how[name] = f"training quantile {q:g} of the score, best training F1 over {len(levels)} levels"
            fitted.train_f1[name] = round(f, 4)
        else:
            fitted.thresholds[name] = float(np.quantile(sc[ok], opts.default_quantile))
            fitted.how[name] = f"training quantile {opts.default_quantile:g} of the score (no labels)"
    if has_labels:
        _fit_supervised(fitted, feats["X"], block, labels, train, opts)
    return fitted


def _train_offsets(block, train: np.ndarray) -> np.ndarray:
    counts = [int(train[a:b].sum()) for a, b in zip(block.offsets[:-1], block.offsets[1:], strict=True)]
    return np.r_[0, np.cumsum(counts)].astype(np.int64)


def _fit_supervised(fitted: FittedDetectors, X: np.ndarray, block, labels: np.ndarray,
                    train: np.ndarray, opts: DetectOptions) -> None:
    """Gradient-boosted trees on the residual features; threshold from contiguous-fold predictions."""
    with one_thread():
        _fit_supervised_1(fitted, X, block, labels, train, opts)


def _fit_supervised_1(fitted: FittedDetectors, X: np.ndarray, block, labels: np.ndarray,
                      train: np.ndarray, opts: DetectOptions) -> None:
    rows = np.flatnonzero(train)
    y = labels[rows]
    oof = np.full(labels.shape[0], np.nan)
    folds = np.array_split(rows, max(2, opts.folds))
    for k, hold in enumerate(folds):
        fit_rows = np.concatenate([f for i, f in enumerate(folds) if i != k])
        if labels[fit_rows].any() and not labels[fit_rows].all():
            m = new_model(opts).fit(X[fit_rows], labels[fit_rows])
            oof[hold] = m.predict_proba(X[hold])[:, 1]
    ok = train & np.isfinite(oof)
    if ok.any() and labels[ok].any():
        cands = np.unique(np.round(np.quantile(oof[ok], np.linspace(0.5, 0.9999, 200)), 4))
        cands = cands[(cands > 0) & (cands < 1)]
        thr, f = _best_threshold(oof, block.offsets, labels, ok, np.r_[cands, 0.5], opts)
    else:
        thr, f = 0.5, math.nan
    fitted.model = new_model(opts).fit(X[rows], y)
    fitted.trees = pack_trees(fitted.model)
    fitted.thresholds["supervised"] = thr
    fitted.how["supervised"] = (f"probability threshold with the best per-sample F1 of predictions "
                                f"made out of fold on {len(folds)} contiguous training folds")
    if not math.isnan(f):
        fitted.train_f1["supervised"] = round(f, 4)


def apply_detectors(block, fitted: FittedDetectors, opts: DetectOptions | None = None
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Scores and alarm flags (persistence + hysteresis) of every detector on every row.

    Returns
    -------
    (scores, flags)
        Detector -> ``(n,)`` float score and ``(n,)`` bool alarm state.
    """
    opts = opts or DetectOptions()
    trees = fitted.trees if fitted.trees is not None or fitted.model is None else pack_trees(fitted.model)
    feats = detector_features(block, fitted, opts, want_x=False, trees=trees)
    scores = {name: feats[name] for name in GENERIC_DETECTORS if name in feats}
    flags = {name: alarm_flags(sc, block.offsets, fitted.thresholds[name], opts)
             for name, sc in scores.items()}
    return scores, flags
