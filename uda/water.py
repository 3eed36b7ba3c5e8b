"""Water-quality guidelines, event-level detector scoring and upstream-downstream mass balance."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from uda.errors import UserError

#: Canonical water-quality parameters, in the column order every kernel sees.
PARAMS: tuple[str, ...] = ("temperature_c", "ph", "do_mgl", "turbidity_ntu",
                           "conductivity_uscm", "nitrate_mgl", "ammonia_mgl")

#: How a pollution plume moves each parameter: +1 raises it, -1 lowers it, 0 unaffected.
#: (Untreated discharges carry ammonia, suspended solids and salts and consume oxygen.)
EVENT_DIRECTIONS: dict[str, int] = {"ammonia_mgl": 1, "turbidity_ntu": 1,
                                    "conductivity_uscm": 1, "do_mgl": -1}


@dataclass(frozen=True)
class Guideline:
    """Limits and index constants for one parameter.

    Attributes
    ----------
    param
        Canonical parameter name (one of :data:`PARAMS`).
    lower, upper
        A sample fails if below ``lower`` or above ``upper`` (NaN = no such limit).
    ideal, standard
        Ideal value and permissible standard of the weighted-arithmetic WQI
        (NaN ``standard`` leaves the parameter out of that index).
    source
        Where the values come from.
    """

    param: str
    lower: float = math.nan
    upper: float = math.nan
    ideal: float = 0.0
    standard: float = math.nan
    source: str = ""


#: Default guidelines (freshwater aquatic life). See docs/water.md for the full citations.
DEFAULT_GUIDELINES: dict[str, Guideline] = {g.param: g for g in (
    Guideline("temperature_c", upper=28.0, standard=math.nan,
              source="EU Freshwater Fish Directive 2006/44/EC Annex I, cyprinid waters: 28 °C maximum"),
    Guideline("ph", lower=6.5, upper=9.0, ideal=7.0, standard=8.5,
              source="CCME Canadian Water Quality Guidelines, aquatic life (freshwater): pH 6.5-9.0; "
                     "WA-WQI standard 8.5, ideal 7 (Brown et al. 1972 / Tripathy & Sahu 2005)"),
    Guideline("do_mgl", lower=5.5, ideal=14.6, standard=5.0,
              source="CCME CWQG, warm-water biota, other life stages: 5.5 mg/L minimum; "
                     "WA-WQI standard 5 mg/L, ideal 14.6 mg/L (saturation at 0 °C)"),
    Guideline("turbidity_ntu", upper=25.0, standard=25.0,
              source="EU 2006/44/EC suspended solids guide value 25 mg/L, used as NTU "
                     "(CCME's turbidity guideline is relative to background; override per site)"),
    Guideline("conductivity_uscm", upper=2500.0, standard=2500.0,
              source="EU Drinking Water Directive 98/83/EC indicator parameter: 2500 µS/cm at 20 °C"),
    Guideline("nitrate_mgl", upper=13.0, standard=13.0,
              source="CCME CWQG nitrate, long-term exposure (2012): 13 mg/L as NO3- (3.0 mg/L NO3-N)"),
    Guideline("ammonia_mgl", upper=1.0, standard=1.0,
              source="EU 2006/44/EC Annex I total ammonium, imperative value: 1 mg/L NH4"),
)}


def load_guidelines(path: str | os.PathLike | None = None) -> dict[str, Guideline]:
    """Default guidelines, optionally overridden by a JSON file.

    Parameters
    ----------
    path
        JSON object ``{"<param>": {"lower": .., "upper": .., "ideal": .., "standard": ..}}``;
        missing keys keep their default, ``null`` removes a limit.

    Returns
    -------
    dict
        Parameter name -> :class:`Guideline`, for every parameter in :data:`PARAMS`.
    """
    guides = dict(DEFAULT_GUIDELINES)
    if path is None:
        return guides
    p = Path(path)
    try:
        spec = json.loads(p.read_text())
    except OSError as exc:
        msg = f"cannot read --guidelines {p}: {exc.strerror}; pass an existing JSON file"
        raise UserError(msg) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        msg = f"--guidelines {p} is not valid JSON; write an object such as {{\"ph\": {{\"lower\": 6.5}}}}"
        raise UserError(msg) from None
    if not isinstance(spec, dict):
        msg = f"--guidelines {p} must hold a JSON object keyed by parameter name"
        raise UserError(msg)
    for name, fields in spec.items():
        if name not in guides:
            msg = f"--guidelines {p}: unknown parameter {name!r}; use one of {', '.join(PARAMS)}"
            raise UserError(msg)
        if not isinstance(fields, dict) or set(fields) - {"lower", "upper", "ideal", "standard"}:
            msg = f"--guidelines {p}: {name!r} must map to an object with lower/upper/ideal/standard"
            raise UserError(msg)
        clean = {}
        for key, val in fields.items():
            if val is not None and not isinstance(val, int | float):
                msg = f"--guidelines {p}: {name}.{key} must be a number or null, got {val!r}"
                raise UserError(msg)
            if val is not None and not math.isfinite(val):
                msg = f"--guidelines {p}: {name}.{key} must be a finite number or null, got {val!r}"
                raise UserError(msg)
            clean[key] = math.nan if val is None else float(val)
        g = replace(guides[name], **clean, source=f"{p.name} (user file)")
        if g.lower == g.lower and g.upper == g.upper and g.lower >= g.upper:
            msg = (f"--guidelines {p}: {name} has lower {g.lower:g} >= upper {g.upper:g}; "
                   "the lower limit must be below the upper one")
            raise UserError(msg)
        guides[name] = g
    return guides


def guideline_arrays(guides: dict[str, Guideline], params: tuple[str, ...] = PARAMS) -> dict[str, np.ndarray]:
    """``lower``, ``upper``, ``ideal``, ``standard`` arrays in the order of ``params``.

    Parameters without a guideline get NaN limits (no test) and NaN standard (left out of
    the weighted-arithmetic index).
    """
    none = Guideline("")
    return {key: np.array([getattr(guides.get(p, none), key) for p in params], dtype=np.float64)
            for key in ("lower", "upper", "ideal", "standard")}


#: The CCME WQI definition (CCME 2001) asks for at least four variables sampled at least four times.
CCME_MIN_VARIABLES = 4


def index_basis(guides: dict[str, Guideline], params: tuple[str, ...]) -> dict[str, dict]:
    """Which parameters each index rests on, and whether CCME has enough of them.

    Returns
    -------
    dict
        ``ccme``: ``rests_on`` (parameters with a lower or upper limit), ``computed`` and
        ``note``; ``weighted_arithmetic``: ``rests_on`` (parameters with a standard).
    """
    g = guideline_arrays(guides, params)
    limited = [p for j, p in enumerate(params) if not (np.isnan(g["lower"][j]) and np.isnan(g["upper"][j]))]
    wa = [p for j, p in enumerate(params) if not np.isnan(g["standard"][j])]
    ok = len(limited) >= CCME_MIN_VARIABLES
    note = (f"CCME WQI rests on {len(limited)} parameter(s) with guidelines: {', '.join(limited) or 'none'}"
            + ("" if ok else f"; the CCME definition needs at least {CCME_MIN_VARIABLES}, so it is not computed"))
    return {"ccme": {"rests_on": limited, "computed": ok, "min_variables": CCME_MIN_VARIABLES,
                     "note": note},
            "weighted_arithmetic": {"rests_on": wa, "computed": bool(wa),
                                    "note": f"weighted-arithmetic WQI rests on {', '.join(wa) or 'nothing'}"}}


#: CCME WQI categories: (lowest score, name), best first.
CCME_CATEGORIES: tuple[tuple[float, str], ...] = (
    (95.0, "Excellent"), (80.0, "Good"), (65.0, "Fair"), (45.0, "Marginal"), (0.0, "Poor"))


def ccme_category(wqi: float) -> str:
    """CCME category of an index value (Excellent 95-100 ... Poor 0-44); ``""`` for NaN."""
    if wqi is None or math.isnan(wqi):
        return ""
    for low, name in CCME_CATEGORIES:
        if wqi >= low:
            return name
    return "Poor"


@dataclass
class EventScore:
    """Event-level quality of one detector.

    Attributes
    ----------
    precision
        Share of alarm episodes that match an event (NaN if no alarm was raised).
    recall
        Share of events with an alarm inside them or within the tolerance after.
    f1
        Harmonic mean of precision and recall (0 when either is 0 or undefined).
    median_delay_s
        Median of (first alarm - event start) over detected events (NaN if none).
    n_events, n_detected, n_alarms, n_false_alarms
        Counts behind the rates (alarms matching only ignored events are not counted).
    """

    precision: float
    recall: float
    f1: float
    median_delay_s: float
    n_events: int
    n_detected: int
    n_alarms: int
    n_false_alarms: int

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-friendly dict (NaN -> None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in self.__dict__.items()}


def score_events(alarm_key: np.ndarray, alarm_start: np.ndarray, alarm_end: np.ndarray,
                 event_key: np.ndarray, event_start: np.ndarray, event_end: np.ndarray, *,
                 tolerance: int, ignore_key: np.ndarray | None = None,
                 ignore_start: np.ndarray | None = None,
                 ignore_end: np.ndarray | None = None) -> EventScore:
    """Score alarm episodes against events, at event level.

    An event ``[start, end]`` is detected if an alarm episode of the same key (site)
    overlaps ``[start, end + tolerance]``; its delay is the first alarmed time in that
    window minus ``start``. An alarm episode matching no event is a false alarm; one that
    matches only an ignored event (e.g. below the minimum size) is not counted at all.

    Parameters
    ----------
    alarm_key, alarm_start, alarm_end
        Alarm episodes: key (site id) and first/last alarmed time (int64, ms).
    event_key, event_start, event_end
        Events to find, same units.
    tolerance
        Grace period after an event's end (ms).
    ignore_key, ignore_start, ignore_end
        Events that neither count as missed nor make an alarm false.

    Returns
    -------
    EventScore
    """
    def _windows(key, start, end):
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if key is None or len(key) == 0:
            return out
        key = np.asarray(key)
        for k in np.unique(key):
            sel = key == k
            s = np.asarray(start, dtype=np.int64)[sel]
            e = np.asarray(end, dtype=np.int64)[sel] + tolerance
            out[int(k)] = (s, e)
        return out

    alarms: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    alarm_key = np.asarray(alarm_key)
    for k in np.unique(alarm_key):
        sel = alarm_key == k
        s = np.asarray(alarm_start, dtype=np.int64)[sel]
        order = np.argsort(s, kind="stable")
        alarms[int(k)] = (s[order], np.asarray(alarm_end, dtype=np.int64)[sel][order])
    events = _windows(event_key, event_start, event_end)
    ignored = _windows(ignore_key, ignore_start, ignore_end)

    n_events = sum(len(v[0]) for v in events.values())
    delays: list[float] = []
    for k, (es, ee) in events.items():
        if k not in alarms:
            continue
        a_s, a_e = alarms[k]
        for s, e in zip(es, ee, strict=True):
            hit = (a_s <= e) & (a_e >= s)
            if hit.any():
                delays.append((max(int(a_s[hit].min()), int(s)) - int(s)) / 1000.0)
    n_alarms = 0
    n_false = 0
    for k, (a_s, a_e) in alarms.items():
        es, ee = events.get(k, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        is_, ie = ignored.get(k, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        for s, e in zip(a_s, a_e, strict=True):
            if ((es <= e) & (ee >= s)).any():
                n_alarms += 1
            elif ((is_ <= e) & (ie >= s)).any():
                continue
            else:
                n_alarms += 1
                n_false += 1
    n_det = len(delays)
    precision = (n_alarms - n_false) / n_alarms if n_alarms else math.nan
    recall = n_det / n_events if n_events else math.nan
    if math.isnan(precision) or math.isnan(recall) or precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    median_delay = float(np.median(delays)) if delays else math.nan
    return EventScore(precision, recall, f1, median_delay, n_events, n_det, n_alarms, n_false)


def lagged_upstream(ts: np.ndarray, up_ts: np.ndarray, up_values: np.ndarray,
                    lag_ms: float) -> np.ndarray:
    """Upstream values as seen downstream: ``up(t - lag)`` by linear interpolation.

    Parameters
    ----------
    ts
        Downstream sample times (int64 ms).
    up_ts, up_values
        Upstream sample times and ``(n, n_params)`` values (NaN = missing).
    lag_ms
        Travel time from the upstream to the downstream site.

    Returns
    -------
    ndarray
        ``(len(ts), n_params)``; NaN outside the upstream record.
    """
    want = ts.astype(np.float64) - lag_ms
    out = np.full((ts.shape[0], up_values.shape[1]), np.nan)
    for j in range(up_values.shape[1]):
        ok = ~np.isnan(up_values[:, j])
        if ok.sum() < 2:
            continue
        t = up_ts[ok].astype(np.float64)
        out[:, j] = np.interp(want, t, up_values[ok, j], left=np.nan, right=np.nan)
    return out


def lagged_max(ts: np.ndarray, upstream: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """Largest lagged upstream excess at each downstream time.

    Parameters
    ----------
    ts
        Downstream sample times (int64 ms).
    upstream
        ``(up_ts, up_excess, travel_time_ms)`` per upstream site.

    Returns
    -------
    ndarray
        ``(len(ts), n_params)``: the maximum over upstream sites of ``up(t - travel_time)``
        (NaN where no upstream site has a value).
    """
    if not upstream:
        msg = "mass balance needs at least one upstream site"
        raise ValueError(msg)
    stack = np.stack([lagged_upstream(ts, ut, ux, lag) for ut, ux, lag in upstream])
    any_ok = (~np.isnan(stack)).any(axis=0)
    return np.where(any_ok, np.max(np.where(np.isnan(stack), -np.inf, stack), axis=0), np.nan)


def unexplained_gain(ts: np.ndarray, excess: np.ndarray,
                     upstream: list[tuple[np.ndarray, np.ndarray, float]], *,
                     slack_before: int, slack_after: int = 1) -> np.ndarray:
    """How much of a site's excess its upstream sites cannot explain.

    ``excess`` is each parameter's departure from its baseline, signed so that a
    pollution plume makes it positive. Upstream excesses are shifted by their travel
    times (``up(t - travel_time)``, linear interpolation), the largest over the upstream
    sites is taken (no flow data, so assume a plume may arrive undiluted from any branch),
    and then the largest within ``slack_before`` samples before to ``slack_after`` after
    (plumes stretch as they travel). What remains above that envelope is unexplained: a
    discharge between the sites.

    Parameters
    ----------
    ts
        Downstream sample times (int64 ms), one regular series.
    excess
        ``(n, n_params)`` downstream directional excess.
    upstream
        ``(up_ts, up_excess, travel_time_ms)`` per upstream site.
    slack_before, slack_after
        Envelope window in samples.

    Returns
    -------
    ndarray
        ``(n, n_params)`` unexplained excess (NaN where no upstream value is available).
    """
    from uda.kernels.detect import window_max

    offsets = np.array([0, ts.shape[0]], dtype=np.int64)
    envelope = window_max(np.ascontiguousarray(lagged_max(ts, upstream)), offsets, slack_before,
                          slack_after)
    return excess - envelope


def plot_site(ts: np.ndarray, values: np.ndarray, params: tuple[str, ...], path: str | os.PathLike,
              *, title: str = "", alarms: tuple[np.ndarray, np.ndarray] | None = None,
              alarm_label: str = "alarm", events: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """PNG of one site's parameters (one panel each) with true events and detector alarms.

    Parameters
    ----------
    ts, values
        Sample times (int64 ms) and ``(n, n_params)`` values.
    params
        Column names (panel titles).
    path
        PNG to write.
    title
        Figure title.
    alarms, events
        ``(start, end)`` int64 ms arrays shaded red (alarms) and drawn as grey spans (events).

    Returns
    -------
    Path
        The written file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = ts.astype("datetime64[ms]")

    def _mask(spans, pad):
        m = np.zeros(ts.size, dtype=bool)
        if spans is not None:
            for s, e in zip(*spans, strict=True):
                m |= (ts >= s) & (ts <= e + pad)
        return m

    ev_mask = _mask(events, 0)
    al_mask = _mask(alarms, 0)
    fig, axes = plt.subplots(len(params), 1, figsize=(11, 1.6 * len(params) + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    for j, (ax, name) in enumerate(zip(axes, params, strict=True)):
        trans = ax.get_xaxis_transform()
        if ev_mask.any():
            ax.fill_between(t, 0, 1, where=ev_mask, transform=trans, color="0.8", step="mid",
                            label="true event" if j == 0 else None)
        if al_mask.any():
            ax.fill_between(t, 0, 1, where=al_mask, transform=trans, color="tab:red", alpha=0.3,
                            step="mid", label=f"{alarm_label} alarm" if j == 0 else None)
        ax.plot(t, values[:, j], lw=0.7, color="tab:blue")
        ax.set_ylabel(name, fontsize=8, rotation=0, ha="right")
        ax.tick_params(labelsize=7)
    if ev_mask.any() or al_mask.any():
        axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


# ---- detectors over every parameter, fitted on a training part -------------------------------

#: Detectors over every parameter (known or not), in report order.
GENERIC_DETECTORS: tuple[str, ...] = ("residual", "distance", "changepoint", "supervised")

#: Quantile levels of the training scores tried as thresholds when labels exist.
QUANTILE_GRID: tuple[float, ...] = (0.9, 0.95, 0.97, 0.98, 0.99, 0.993, 0.995, 0.997, 0.998,
                                    0.999, 0.9995, 0.9998, 0.9999)


@dataclass
class DetectOptions:
    """Settings of the detectors over every parameter (see docs/water.md).

    Attributes
    ----------
    forecast_s
        Duration of the short causal forecast window (median of the last accepted samples).
    min_window, max_window
        Bounds of that window in samples (whatever the sampling step).
    gate
        Standardised residual above which a sample is held out of the forecast window.
    max_mask_s
        Longest time a parameter's forecast window stays closed.
    tail
        Quantile of the training residuals that scales each parameter (``|z| / q_tail``).
    clip
        Cap on a standardised residual in the distance and the features.
    cusum_k, cusum_clip
        Allowance and step cap of the CUSUM on the tail-scaled residuals.
    min_on, off_fraction
        Persistence (samples in a row above threshold before an alarm) and hysteresis
        (the alarm ends when the score falls below ``off_fraction`` x threshold).
    default_quantile
        Threshold quantile of the training score when the training part has no labels.
    merge_gap_s
        Alarm intervals this close form one.
    tolerance_s
        An alarm up to this long after an event still finds it.
    folds
        Contiguous folds of the training part for the supervised detector's
        out-of-fold threshold.
    seed
        Seed of the supervised model.
    trees, learning_rate, max_leaf_nodes, max_depth
        The supervised model's gradient-boosted trees: how many, their shrinkage, and
        their size (``max_depth`` ``None``: limited by ``max_leaf_nodes`` only).
        Detection cost grows with ``trees`` x depth.
    """

    forecast_s: float = 3 * 3600.0
    min_window: int = 8
    max_window: int = 256
    gate: float = 6.0
    max_mask_s: float = 6 * 3600.0
    tail: float = 0.999
    clip: float = 50.0
    cusum_k: float = 0.5
    cusum_clip: float = 3.0
    min_on: int = 2
    off_fraction: float = 0.5
    default_quantile: float = 0.999
    merge_gap_s: float = 0.0
    tolerance_s: float = 3600.0
    folds: int = 4
    seed: int = 0
    trees: int = 30
    learning_rate: float = 0.2
    max_leaf_nodes: int = 15
    max_depth: int | None = 4

    def window(self, interval_s: float) -> int:
        """Forecast window in samples at sampling step ``interval_s``."""
        return int(min(self.max_window, max(self.min_window, round(self.forecast_s / max(interval_s, 1e-9)))))


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
        evaluator of :func:`uda.kernels.detect.detector_rows`; ``None`` without a model.
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


def per_sample_f1(flags: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 over rows (``nan`` precision without flags, F1 0 then)."""
    tp = int(np.count_nonzero(flags & labels))
    nf = int(np.count_nonzero(flags))
    nl = int(np.count_nonzero(labels))
    p = tp / nf if nf else math.nan
    r = tp / nl if nl else math.nan
    f = 0.0 if (not nf or not nl or tp == 0) else 2 * p * r / (p + r)
    return p, r, f


def _residuals(block, fitted_scale: dict[int, np.ndarray] | None, opts: DetectOptions,
               window: int, min_periods: int, max_mask: int) -> np.ndarray:
    from uda.kernels.detect import causal_residuals

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


def pack_trees(model: Any) -> dict[str, Any]:
    """The trees of a fitted binary ``HistGradientBoostingClassifier`` as flat node arrays.

    Returns
    -------
    dict
        ``roots`` (first node of each tree), per node ``feature``, ``threshold``,
        ``left``, ``right`` (global node indices), ``missing_left``, ``leaf``, ``value``,
        and ``base`` (the raw score before the first tree): the arguments of
        :func:`uda.kernels.detect.detector_rows`, which evaluates them as scikit-learn's
        ``predict_proba`` does on raw features (tested equal).
    """
    if getattr(model, "n_trees_per_iteration_", 1) != 1:
        msg = "only binary classifiers can be packed"
        raise ValueError(msg)
    nodes = [pred[0].nodes for pred in model._predictors]
    if any(n["is_categorical"].any() for n in nodes):
        msg = "categorical splits are not supported by the compiled tree evaluator"
        raise ValueError(msg)
    sizes = np.array([n.shape[0] for n in nodes], dtype=np.int64)
    roots = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    shift = np.repeat(roots, sizes)
    allnodes = np.concatenate(nodes)
    return {"roots": roots,
            "feature": allnodes["feature_idx"].astype(np.int64),
            "threshold": allnodes["num_threshold"].astype(np.float64),
            "left": allnodes["left"].astype(np.int64) + shift,
            "right": allnodes["right"].astype(np.int64) + shift,
            "missing_left": allnodes["missing_go_to_left"].astype(np.bool_),
            "leaf": allnodes["is_leaf"].astype(np.bool_),
            "value": allnodes["value"].astype(np.float64),
            "base": float(np.asarray(model._baseline_prediction).ravel()[0])}


_NO_TREES: dict[str, Any] = {"roots": np.zeros(0, np.int64), "feature": np.zeros(0, np.int64),
                             "threshold": np.zeros(0), "left": np.zeros(0, np.int64),
                             "right": np.zeros(0, np.int64), "missing_left": np.zeros(0, np.bool_),
                             "leaf": np.zeros(0, np.bool_), "value": np.zeros(0), "base": 0.0}


def detector_features(block, fitted: FittedDetectors, opts: DetectOptions, *, want_x: bool = True,
                      trees: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The unsupervised scores of every row of ``block`` (and the supervised one given ``trees``).

    One compiled causal pass per site (:func:`uda.kernels.detect.detector_rows`).

    Returns
    -------
    dict of ndarray
        The scores ``residual`` (largest ``|u|``, ``u`` = residual in scale units /
        training tail), ``distance`` (robust Mahalanobis length of the residuals),
        ``changepoint`` (largest two-sided CUSUM of ``u``), each ``(n,)``; with
        ``want_x`` the supervised features ``X`` ``(n, 3p + 2)``; with ``trees`` the
        ``supervised`` probability.
    """
    from uda.kernels.detect import detector_rows

    p = block.values.shape[1]
    pooled = np.nanmedian(np.stack(list(fitted.scale.values())), axis=0) if fitted.scale else np.ones(p)
    scale = np.stack([fitted.scale.get(int(s), pooled) for s in block.sites]) \
        if block.sites.size else np.ones((0, p))
    t = trees if trees is not None else _NO_TREES
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
    from uda.kernels.detect import cusum_two_sided, robust_distance, window_max

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


def _flags(score: np.ndarray, offsets: np.ndarray, threshold: float, opts: DetectOptions) -> np.ndarray:
    from uda.kernels.detect import hysteresis

    return hysteresis(np.ascontiguousarray(score, dtype=np.float64), offsets, threshold,
                      opts.off_fraction * threshold, opts.min_on)


def _best_threshold(score: np.ndarray, offsets: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                    candidates: np.ndarray, opts: DetectOptions) -> tuple[float, float]:
    """Candidate threshold with the best per-sample F1 over ``rows`` (ties: the higher one)."""
    best = (-1.0, math.inf)
    for thr in np.unique(candidates[np.isfinite(candidates)]):
        f = per_sample_f1(_flags(score, offsets, float(thr), opts)[rows], labels[rows])[2]
        if f > best[0] or (f == best[0] and thr > best[1]):
            best = (f, float(thr))
    return best[1], max(best[0], 0.0)


def _one_thread():
    """Run scikit-learn's OpenMP loops on one thread: on small data (and a busy machine) the
    thread start-up per tree node costs more than it saves (measured: 5 ms per split on 2 busy cores)."""
    import sklearn.ensemble  # noqa: F401  (load its OpenMP runtime first: only loaded ones are limited)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _new_model(opts: DetectOptions):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=opts.trees, learning_rate=opts.learning_rate,
                                          max_leaf_nodes=opts.max_leaf_nodes, max_depth=opts.max_depth,
                                          min_samples_leaf=40, l2_regularization=1.0,
                                          early_stopping=False, random_state=opts.seed)


def fit_detectors(block, labels: np.ndarray | None, train: np.ndarray, interval_s: float,
                  opts: DetectOptions | None = None) -> FittedDetectors:
    """Fit scales, covariance, thresholds and (with labels) the supervised model on ``train`` rows.

    Parameters
    ----------
    block
        :class:`uda.tasks.water.Block` of every site (training rows and later ones).
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
    min_periods = max(4, window // 4)
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
    for name in ("residual", "distance", "changepoint"):
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
    with _one_thread():
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
            m = _new_model(opts).fit(X[fit_rows], labels[fit_rows])
            oof[hold] = m.predict_proba(X[hold])[:, 1]
    ok = train & np.isfinite(oof)
    if ok.any() and labels[ok].any():
        cands = np.unique(np.round(np.quantile(oof[ok], np.linspace(0.5, 0.9999, 200)), 4))
        cands = cands[(cands > 0) & (cands < 1)]
        thr, f = _best_threshold(oof, block.offsets, labels, ok, np.r_[cands, 0.5], opts)
    else:
        thr, f = 0.5, math.nan
    fitted.model = _new_model(opts).fit(X[rows], y)
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
    scores = {name: feats[name] for name in ("residual", "distance", "changepoint")}
    if trees is not None:
        scores["supervised"] = feats["supervised"]
    flags = {name: _flags(sc, block.offsets, fitted.thresholds[name], opts)
             for name, sc in scores.items()}
    return scores, flags
