"""Link travel times per time-of-day slot from sensor aggregates, and the peak slot.

The aggregates themselves (observations, summed pace and flow per sensor and slot) are
computed by the task on either engine (:mod:`uda.tasks.route`); :func:`slot_expr` is the
slot rule both engines and the smart-card trips share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl


#: Source codes of a link travel time.
SOURCE_FREE_FLOW = 0
SOURCE_SENSOR = 1


def slot_expr(slot_minutes: int) -> pl.Expr:
    """The time-of-day slot of column ``ts`` (UTC), ``slot_minutes`` long, as an Int32 column ``slot``."""
    import polars as pl

    # minute of the (UTC) day from the integer milliseconds, as the Dask kernel computes it;
    # dt.hour()/dt.minute() decompose every timestamp and cost twice the whole aggregation
    minute = (pl.col("ts").dt.epoch("ms") // 60_000) % 1440
    return (minute // slot_minutes).cast(pl.Int32).alias("slot")


def link_travel_times(link_id: np.ndarray, length_m: np.ndarray, free_speed_kmh: np.ndarray,
                      sensor_link: np.ndarray, slots: pl.DataFrame, *, num_slots: int) -> dict[str, np.ndarray]:
    """Travel time per link and time-of-day slot from sensor aggregates.

    The travel time of a link in a slot is its length times the mean pace (1 / speed) of
    all observations of the link's sensors in that slot (a space-mean speed, which is what
    travel time needs). A link-slot without observations falls back to free flow:
    ``length / free speed`` (``source`` 0; 1 where sensors gave the value).

    Parameters
    ----------
    link_id, length_m, free_speed_kmh
        Link attributes (one entry per link).
    sensor_link
        Link of each sensor, indexed by ``sensor_id`` (``-1`` for unknown sensors).
    slots
        ``sensor_id, slot, n_obs, pace_sum, flow_sum`` aggregates (a Polars frame).
    num_slots
        Number of slots per day.

    Returns
    -------
    dict
        ``travel_time_s``, ``flow_vph`` (mean observed flow, NaN without sensors) and
        ``n_obs``, each ``(links, slots)``, and ``source`` (int8, same shape).
    """
    nl = link_id.size
    sid = slots["sensor_id"].to_numpy().astype(np.int64)
    slot = slots["slot"].to_numpy().astype(np.int64)
    known = (sid >= 0) & (sid < sensor_link.size)
    lk = np.where(known, sensor_link[np.clip(sid, 0, max(sensor_link.size - 1, 0))], -1) if sid.size else sid
    pos = np.searchsorted(link_id, lk)
    ok = known & (lk >= 0) & (pos < nl) & (slot >= 0) & (slot < num_slots)
    ok[ok] &= link_id[pos[ok]] == lk[ok]
    flat = pos[ok] * num_slots + slot[ok]
    n_obs = np.bincount(flat, slots["n_obs"].to_numpy()[ok].astype(np.float64), nl * num_slots)
    pace = np.bincount(flat, slots["pace_sum"].to_numpy()[ok], nl * num_slots)
    flow = np.bincount(flat, slots["flow_sum"].to_numpy()[ok], nl * num_slots)
    n_obs = n_obs.reshape(nl, num_slots)
    has = n_obs > 0
    free = (length_m.astype(np.float64) / (free_speed_kmh.astype(np.float64) / 3.6))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = np.where(has, length_m.astype(np.float64)[:, None] * pace.reshape(nl, num_slots) / n_obs, free)
        mean_flow = np.where(has, flow.reshape(nl, num_slots) / n_obs, np.nan)
    return {"travel_time_s": tt, "flow_vph": mean_flow, "n_obs": n_obs.astype(np.int64),
            "source": np.where(has, SOURCE_SENSOR, SOURCE_FREE_FLOW).astype(np.int8)}


def peak_slot(times: dict[str, np.ndarray]) -> int:
    """The slot with the highest summed mean observed flow over the links that have sensors (0 if none).

    ``times`` is the output of :func:`link_travel_times`.
    """
    obs_flow = np.where(times["n_obs"] > 0, times["flow_vph"], 0.0).sum(axis=0)
    return int(np.argmax(obs_flow)) if obs_flow.any() else 0
