"""The water detectors, registered once, and the signature detectors that run on every dataset.

:data:`REGISTRY` holds every detector under its alias, configured: which family it
belongs to, where its threshold comes from, whether it needs labels, and how much
history it needs before it scores. The ``signature`` family (``zscore``, ``cusum``,
``multivariate``) looks for the plume signature of :data:`uda.waterq.guidelines.EVENT_DIRECTIONS`
against a robust baseline (:func:`detector_scores`, :func:`detector_alarms`); the
``generic`` family runs over every parameter and is fitted on a training part
(:mod:`uda.waterq.generic`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uda.kernels.detect import (
    alarm_runs,
    cusum,
    masked_baseline,
    multivariate_score,
    rolling_baseline,
)
from uda.waterq.block import MS, Block
from uda.waterq.events import Truth, score_events
from uda.waterq.guidelines import EVENT_DIRECTIONS
from uda.waterq.settings import WaterOptions


@dataclass(frozen=True)
class Detector:
    """One detector, configured and registered once under its alias.

    Attributes
    ----------
    alias
        Its name in results, tables and plots.
    family
        ``"signature"``: looks for the plume signature of the known parameters with fixed
        thresholds (:class:`uda.waterq.settings.WaterOptions`); ``"generic"``: runs over
        every parameter, fitted on a training part
        (:class:`uda.waterq.settings.DetectOptions`).
    score
        What its score is.
    threshold
        The :class:`~uda.waterq.settings.WaterOptions` field holding a signature
        detector's alarm threshold; ``None`` for a generic one (its threshold is fitted).
    needs_labels
        Only fitted when the training part holds labelled events.
    history
        The history it needs before it scores, in samples: a function of its family's
        settings (``WaterOptions`` or ``DetectOptions``) and the sampling step in seconds.
    """

    alias: str
    family: str
    score: str
    threshold: str | None = None
    needs_labels: bool = False
    history: Callable[[Any, float], int] = field(default=lambda opts, interval_s: 0, repr=False)


def _baseline_warm_up(opts: Any, interval_s: float) -> int:
    """Samples in a signature detector's baseline before it scores (``min_periods``)."""
    return int(opts.min_periods)


def _forecast_warm_up(opts: Any, interval_s: float) -> int:
    """Samples in a generic detector's forecast window before it scores."""
    return int(opts.min_periods(interval_s))


#: Every detector, by alias, in report order within each family.
REGISTRY: dict[str, Detector] = {d.alias: d for d in (
    Detector("zscore", "signature", "largest directional robust z over the signature parameters",
             threshold="z_threshold", history=_baseline_warm_up),
    Detector("cusum", "signature", "one-sided CUSUM of the multivariate score",
             threshold="cusum_h", history=_baseline_warm_up),
    Detector("multivariate", "signature", "matched-filter score across the signature parameters",
             threshold="mv_threshold", history=_baseline_warm_up),
    Detector("residual", "generic", "largest tail-scaled causal residual over every parameter",
             history=_forecast_warm_up),
    Detector("distance", "generic", "robust Mahalanobis length of the residuals",
             history=_forecast_warm_up),
    Detector("changepoint", "generic", "largest two-sided CUSUM of the tail-scaled residuals",
             history=_forecast_warm_up),
    Detector("supervised", "generic", "gradient-boosted trees' event probability on the residual features",
             needs_labels=True, history=_forecast_warm_up),
)}


def family(name: str) -> tuple[str, ...]:
    """Aliases of the registered detectors of one family, in registry order."""
    return tuple(d.alias for d in REGISTRY.values() if d.family == name)


def warm_up(name: str, opts: Any, interval_s: float) -> int:
    """Longest history (samples) the detectors of family ``name`` need before they score."""
    return max(d.history(opts, interval_s) for d in REGISTRY.values() if d.family == name)


#: The signature detectors; ``alarm_detector`` in results indexes this tuple.
SIGNATURE_DETECTORS: tuple[str, ...] = family("signature")

#: The detectors over every parameter.
GENERIC_DETECTORS: tuple[str, ...] = family("generic")


def directions(params: tuple[str, ...]) -> np.ndarray:
    """How a plume moves each of ``params`` (+1, -1, 0 for not a signature parameter), as floats."""
    return np.array([EVENT_DIRECTIONS.get(p, 0) for p in params], dtype=np.float64)


def signature_columns(params: tuple[str, ...], opts: WaterOptions) -> tuple[np.ndarray, np.ndarray]:
    """Column mask of the signature parameters, and their scale floors."""
    dirs = directions(params)
    keep = dirs != 0
    floor = np.array([opts.min_scale.get(p, 1e-6) for p, k in zip(params, keep, strict=True) if k])
    return keep, floor


def detector_scores(block: Block, opts: WaterOptions) -> dict[str, np.ndarray]:
    """Per-sample score of each detector (higher = more evidence of a plume).

    Returns
    -------
    dict of ndarray
        ``zscore`` (largest directional robust z), ``multivariate`` (matched-filter
        score across parameters) and ``cusum`` (one-sided CUSUM of the multivariate
        score, which accumulates weak but persistent evidence), each ``(n_rows,)``.
    """
    keep, floor = signature_columns(block.params, opts)
    dirs = directions(block.params)[keep]
    sig = np.ascontiguousarray(block.values[:, keep])
    if opts.mask_hours > 0:
        max_mask = round(opts.mask_hours * 3600.0 / opts.interval_s)
        med, scale = masked_baseline(sig, block.offsets, opts.window, opts.min_periods,
                                     floor, dirs, opts.mv_clip, opts.mv_threshold, max_mask)
    else:
        med, scale = rolling_baseline(sig, block.offsets, opts.window, opts.min_periods, floor)
    z = (sig - med) / scale
    dz = z * dirs
    with np.errstate(all="ignore"):
        zmax = np.max(np.where(np.isnan(dz), -np.inf, dz), axis=1) if dz.shape[1] \
            else np.full(dz.shape[0], -np.inf)
    zmax[~np.isfinite(zmax)] = np.nan
    mv = multivariate_score(np.ascontiguousarray(z), dirs, opts.mv_clip)
    cs = cusum(mv.reshape(-1, 1), block.offsets, opts.cusum_k, opts.cusum_clip)[:, 0]
    return {"zscore": zmax, "cusum": cs, "multivariate": mv}


def detector_alarms(block: Block, opts: WaterOptions) -> dict[str, np.ndarray]:
    """Alarm episodes of every detector: ``alarm_detector``, ``alarm_site``, ``alarm_start``, ``alarm_end``."""
    scores = detector_scores(block, opts)
    thresholds = {name: getattr(opts, REGISTRY[name].threshold) for name in SIGNATURE_DETECTORS}
    det, site, start, end = [], [], [], []
    for d, name in enumerate(SIGNATURE_DETECTORS):
        flags = np.nan_to_num(scores[name], nan=-np.inf) > thresholds[name]
        grp, first, last = alarm_runs(flags, block.offsets, opts.merge_gap)
        det.append(np.full(grp.size, d, dtype=np.int64))
        site.append(block.sites[grp])
        start.append(block.ts[first])
        end.append(block.ts[last])
    return {"alarm_detector": np.concatenate(det), "alarm_site": np.concatenate(site),
            "alarm_start": np.concatenate(start), "alarm_end": np.concatenate(end)}


def score_detectors(res: dict[str, np.ndarray], truth: Truth, opts: WaterOptions) -> dict[str, dict]:
    """Event-level precision, recall, F1 and median delay of each detector."""
    big, small = truth.split(opts.min_event_size)
    tol = int(opts.tolerance_s * MS)
    out = {}
    for d, name in enumerate(SIGNATURE_DETECTORS):
        sel = res["alarm_detector"] == d
        sc = score_events(res["alarm_site"][sel], res["alarm_start"][sel], res["alarm_end"][sel],
                          big.key, big.start, big.end, tolerance=tol, ignore_key=small.key,
                          ignore_start=small.start, ignore_end=small.end)
        out[name] = sc.as_dict()
    return out
