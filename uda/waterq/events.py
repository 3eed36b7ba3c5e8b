"""Scoring detectors against events: at event level (:func:`score_events`), per sample
(:func:`per_sample_f1`), and the all-parameter detectors on a test part (:func:`score_generic`).

Event windows are :class:`Truth`; :func:`label_truth` turns labelled rows into events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from uda.kernels.detect import alarm_runs
from uda.waterq.block import MS, Block


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


def per_sample_f1(flags: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 over rows (``nan`` precision without flags, F1 0 then)."""
    tp = int(np.count_nonzero(flags & labels))
    nf = int(np.count_nonzero(flags))
    nl = int(np.count_nonzero(labels))
    p = tp / nf if nf else math.nan
    r = tp / nl if nl else math.nan
    f = 0.0 if (not nf or not nl or tp == 0) else 2 * p * r / (p + r)
    return p, r, f


@dataclass
class Truth:
    """Event windows to score against: ``key`` (site), ``start``, ``end`` (ms), ``size``."""

    key: np.ndarray
    start: np.ndarray
    end: np.ndarray
    size: np.ndarray

    def split(self, min_size: float) -> tuple[Truth, Truth]:
        """(events at least ``min_size``, smaller events)."""
        big = self.size >= min_size
        return (Truth(self.key[big], self.start[big], self.end[big], self.size[big]),
                Truth(self.key[~big], self.start[~big], self.end[~big], self.size[~big]))


def label_truth(block: Block, labels: np.ndarray) -> Truth:
    """Events as runs of labelled samples per site."""
    grp, first, last = alarm_runs(labels, block.offsets, 0)
    return Truth(block.sites[grp], block.ts[first], block.ts[last], np.ones(grp.size))


def score_generic(block: Block, flags: dict[str, np.ndarray], labels: np.ndarray | None,
                  test: np.ndarray, interval_s: float, dopts: Any,
                  event_type: np.ndarray | None = None, type_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per-sample and per-event scores of each detector on the ``test`` rows.

    Parameters
    ----------
    block
        The sites' series.
    flags
        Detector -> ``(n,)`` alarm state.
    labels
        ``(n,)`` event labels or ``None`` (then only alarm counts are reported).
    test
        ``(n,)`` bool, the scored rows.
    interval_s
        Sampling step (test duration = rows x step per site, for false alarms per day).
    dopts
        :class:`uda.waterq.settings.DetectOptions` (tolerance, merge gap).
    event_type, type_names
        Optional ``(n,)`` int code of the event type of each labelled row (-1 none) and
        the type names: recall and events found are then also reported per type.

    Returns
    -------
    dict
        ``detectors`` (scores per detector), ``baseline`` (flag everything), ``alarms``
        (alarm interval arrays of the test part), ``test_days``.
    """
    merge = max(0, round(dopts.merge_gap_s / max(interval_s, 1e-9)))
    test_days = 0.0
    for a, b in zip(block.offsets[:-1], block.offsets[1:], strict=True):
        rows = np.flatnonzero(test[a:b])
        if rows.size:
            test_days += (float(block.ts[a + rows[-1]] - block.ts[a + rows[0]]) / MS + interval_s) / 86400.0
    events = None
    if labels is not None:
        lab = labels & test
        t = label_truth(block, lab)
        # events that began in the training part are not counted as events of the test part
        grp, first, _ = alarm_runs(lab, block.offsets, 0)
        starts_in_test = np.array([not (f > block.offsets[g] and labels[f - 1] and not test[f - 1])
                                   for g, f in zip(grp, first, strict=True)], dtype=bool)
        events = Truth(t.key[starts_in_test], t.start[starts_in_test], t.end[starts_in_test],
                       np.ones(int(starts_in_test.sum())))
        ev_first = first[starts_in_test]
    out: dict[str, Any] = {"detectors": {}, "test_days": test_days}
    det_i, site, start, end = [], [], [], []
    names = list(flags)
    for d, name in enumerate(names):
        f = flags[name] & test
        grp, first, last = alarm_runs(f, block.offsets, merge)
        det_i.append(np.full(grp.size, d, np.int64))
        site.append(block.sites[grp])
        start.append(block.ts[first])
        end.append(block.ts[last])
        entry: dict[str, Any] = {"alarms": int(grp.size),
                                 "alarms_per_day": round(grp.size / test_days, 4) if test_days else None,
                                 "flagged_share": round(float(f[test].mean()), 5) if test.any() else None}
        if labels is not None:
            p, r, f1 = per_sample_f1(f[test], labels[test])
            entry["per_sample"] = {"precision": None if math.isnan(p) else round(p, 4),
                                   "recall": None if math.isnan(r) else round(r, 4), "f1": round(f1, 4)}
            sc = score_events(block.sites[grp], block.ts[first], block.ts[last], events.key, events.start,
                              events.end, tolerance=int(dopts.tolerance_s * MS)).as_dict()
            sc["false_alarms_per_day"] = round(sc["n_false_alarms"] / test_days, 4) if test_days else None
            entry["per_event"] = sc
            if event_type is not None and type_names:
                per_type = {}
                for k, tname in enumerate(type_names):
                    rows = test & (event_type == k)
                    sel = np.array([event_type[r] == k for r in ev_first], dtype=bool)
                    if not rows.any() and not sel.any():
                        continue
                    found = score_events(block.sites[grp], block.ts[first], block.ts[last],
                                         events.key[sel], events.start[sel], events.end[sel],
                                         tolerance=int(dopts.tolerance_s * MS))
                    per_type[tname] = {"samples": int(rows.sum()),
                                       "recall_per_sample": round(float(f[rows].mean()), 4) if rows.any() else None,
                                       "events": found.n_events, "events_found": found.n_detected,
                                       "median_delay_s": None if math.isnan(found.median_delay_s)
                                       else found.median_delay_s}
                entry["per_type"] = per_type
        out["detectors"][name] = entry
    if labels is not None:
        prev = float(labels[test].mean()) if test.any() else 0.0
        out["baseline"] = {"flag_everything": {"precision": round(prev, 5), "recall": 1.0 if prev else None,
                                               "f1": round(2 * prev / (1 + prev), 4) if prev else 0.0}}
        out["events"] = int(events.key.size)
    cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt)  # noqa: E731
    out["alarms"] = {"alarm_detector": cat(det_i, np.int64), "alarm_site": cat(site, np.int64),
                     "alarm_start": cat(start, np.int64), "alarm_end": cat(end, np.int64)}
    out["names"] = tuple(names)
    return out
