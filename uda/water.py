"""Water-quality guidelines, event-level detector scoring and upstream-downstream mass balance."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

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
            clean[key] = math.nan if val is None else float(val)
        guides[name] = replace(guides[name], **clean, source=f"{p.name} (user file)")
    return guides


def guideline_arrays(guides: dict[str, Guideline], params: tuple[str, ...] = PARAMS) -> dict[str, np.ndarray]:
    """``lower``, ``upper``, ``ideal``, ``standard`` arrays in the order of ``params``."""
    return {key: np.array([getattr(guides[p], key) for p in params], dtype=np.float64)
            for key in ("lower", "upper", "ideal", "standard")}


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
