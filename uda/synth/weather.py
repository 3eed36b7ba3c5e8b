"""City-wide daily weather: rain and temperature anomaly, shared by every generator."""

from __future__ import annotations

import numpy as np

RAIN_PROBABILITY = 0.3
RAIN_MEAN_MM = 8.0


def weather(rng: np.random.Generator, n_days: int) -> dict[str, np.ndarray]:
    """Daily rain (mm), rain flag, temperature anomaly (°C, AR(1)) and traffic factors.

    Rain cuts road capacity by 1.2 % and free-flow speed by 0.8 % per mm, both capped
    at 20 mm.
    """
    rain = rng.uniform(size=n_days) < RAIN_PROBABILITY
    rain_mm = np.where(rain, np.round(rng.exponential(RAIN_MEAN_MM, n_days), 1) + 0.2, 0.0)
    anomaly = np.empty(n_days)
    e = rng.normal(0, 2.0)
    for d in range(n_days):
        e = 0.7 * e + np.sqrt(1 - 0.49) * rng.normal(0, 2.0)
        anomaly[d] = e
    capped = np.minimum(rain_mm, 20.0)
    return {
        "rain_mm": rain_mm.astype(np.float32), "rain": rain,
        "temp_anomaly_c": np.round(anomaly, 2).astype(np.float32),
        "capacity_factor": 1.0 - 0.012 * capped, "speed_factor": 1.0 - 0.008 * capped,
    }
