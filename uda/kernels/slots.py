"""Per (sensor, time-of-day slot) sums of sensor observations in one pass over the rows."""

from __future__ import annotations

import numpy as np
from numba import njit

#: ``datetime64`` NaT seen as int64.
NAT = np.iinfo(np.int64).min
_MS_PER_MINUTE = 60_000
_MINUTES_PER_DAY = 1440


@njit(cache=True, nogil=True)
def slot_sums(sensor: np.ndarray, ts_ms: np.ndarray, speed: np.ndarray, flow: np.ndarray, lo: int,
              n_sensors: int, slot_minutes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations, summed pace (s/m) and summed flow per (sensor, slot) over the valid rows.

    A row counts when its speed is finite and positive and its time is not NaT; its
    slot is its minute of the day (from ms since the epoch, so naive local time) divided
    by ``slot_minutes``, its pace ``3.6 / speed`` (speed in km/h, in float64) and a NaN
    flow adds 0. Sums run in row order.

    Parameters
    ----------
    sensor
        ``(n,)`` integer sensor keys; ``sensor - lo`` must lie in ``0 .. n_sensors - 1``
        for every valid row.
    ts_ms
        ``(n,)`` int64 times in ms since the epoch (``NAT`` for missing).
    speed, flow
        ``(n,)`` floats.
    lo, n_sensors
        Key of the first sensor and number of sensor keys.
    slot_minutes
        Slot length; divides 1440.

    Returns
    -------
    (n_obs, pace_sum, flow_sum)
        Each ``(n_sensors * slots,)``, indexed ``(sensor - lo) * slots + slot``.
    """
    num_slots = _MINUTES_PER_DAY // slot_minutes
    size = n_sensors * num_slots
    n_obs = np.zeros(size, np.int64)
    pace = np.zeros(size, np.float64)
    flows = np.zeros(size, np.float64)
    for i in range(sensor.size):
        s = np.float64(speed[i])
        t = ts_ms[i]
        if not (s > 0.0 and s < np.inf) or t == NAT:
            continue
        minute = (t // _MS_PER_MINUTE) % _MINUTES_PER_DAY
        k = (np.int64(sensor[i]) - lo) * num_slots + minute // slot_minutes
        n_obs[k] += 1
        pace[k] += 3.6 / s
        f = np.float64(flow[i])
        if not np.isnan(f):
            flows[k] += f
    return n_obs, pace, flows
