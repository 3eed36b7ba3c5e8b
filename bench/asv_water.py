"""asv: water-quality index, exceedance and streaming-detector kernels on generated water series."""

from __future__ import annotations

import numpy as np

from uda.kernels.detect import (
    alarm_runs,
    cusum,
    multivariate_score,
    rolling_baseline,
)
from uda.kernels.wqi import ccme_wqi, exceedance_episodes, weighted_arithmetic_wqi

from .asv_data import first_of, water_block, water_parameters

# Moved by the redesign after 9825fce (same signatures): the detectors' one-pass kernel to
# kernels/residuals.py, the guidelines from uda/water.py to uda/waterq/guidelines.py.
detector_rows = first_of("uda.kernels.residuals:detector_rows", "uda.kernels.detect:detector_rows")
guideline_arrays = first_of("uda.waterq.guidelines:guideline_arrays", "uda.water:guideline_arrays")
load_guidelines = first_of("uda.waterq.guidelines:load_guidelines", "uda.water:load_guidelines")
PARAMETERS = water_parameters()

DAY_MS = 86_400_000


def _daily_groups(block: dict[str, np.ndarray]) -> np.ndarray:
    """Row offsets of (site, day) groups."""
    site = np.repeat(np.arange(block["offsets"].size - 1), np.diff(block["offsets"]))
    day = block["ts"] // DAY_MS
    n = site.size
    new = np.r_[True, (site[1:] != site[:-1]) | (day[1:] != day[:-1])]
    return np.r_[np.flatnonzero(new), n].astype(np.int64)


class WaterIndices:
    """CCME and weighted-arithmetic WQI per site and day, and exceedance episodes."""

    params = [["small", "medium"]]
    param_names = ["scale"]

    def setup(self, scale):
        self.b = water_block(scale)
        self.g = guideline_arrays(load_guidelines(), PARAMETERS)
        self.days = _daily_groups(self.b)
        v, o = self.b["values"][:10], np.array([0, 10], np.int64)
        ccme_wqi(v, o, self.g["lower"], self.g["upper"])  # compile / load cache
        weighted_arithmetic_wqi(v, o, self.g["ideal"], self.g["standard"])
        exceedance_episodes(self.b["ts"][:10], v, o, self.g["lower"], self.g["upper"], 1_350_000)

    def time_ccme_wqi(self, scale):
        ccme_wqi(self.b["values"], self.days, self.g["lower"], self.g["upper"])

    def time_weighted_arithmetic_wqi(self, scale):
        weighted_arithmetic_wqi(self.b["values"], self.days, self.g["ideal"], self.g["standard"])

    def time_exceedance_episodes(self, scale):
        exceedance_episodes(self.b["ts"], self.b["values"], self.b["offsets"], self.g["lower"],
                            self.g["upper"], 1_350_000)


class Detectors:
    """Rolling median/MAD baseline, matched-filter score, CUSUM and alarm runs per site."""

    params = [["small", "medium"], [96, 288]]
    param_names = ["scale", "window"]

    def setup(self, scale, window):
        self.b = water_block(scale)
        self.floor = np.full(len(PARAMETERS), 1e-3)
        self.dirs = np.array([0, 0, -1, 1, 1, 1, 1], dtype=np.float64)
        med, sc = rolling_baseline(self.b["values"], self.b["offsets"], window, window // 4, self.floor)
        self.z = np.ascontiguousarray((self.b["values"] - med) / sc)
        self.mv = multivariate_score(self.z, self.dirs, 4.0)
        self.cs = cusum(self.mv.reshape(-1, 1), self.b["offsets"], 0.5, 4.0)[:, 0]
        alarm_runs(self.cs > 5.0, self.b["offsets"], 4)

    def time_rolling_baseline(self, scale, window):
        rolling_baseline(self.b["values"], self.b["offsets"], window, window // 4, self.floor)

    def time_multivariate_score(self, scale, window):
        multivariate_score(self.z, self.dirs, 4.0)

    def time_cusum(self, scale, window):
        cusum(self.mv.reshape(-1, 1), self.b["offsets"], 0.5, 4.0)

    def time_alarm_runs(self, scale, window):
        alarm_runs(self.cs > 5.0, self.b["offsets"], 4)


class OnePassDetectors:
    """The detectors over every parameter in one causal pass (residuals, distance, CUSUM, features), no trees."""

    params = [["small", "medium"], [12, 180]]
    param_names = ["scale", "window"]

    def setup(self, scale, window):
        self.b = water_block(scale)
        p = len(PARAMETERS)
        n_sites = self.b["offsets"].size - 1
        self.args = (np.ascontiguousarray(self.b["values"]), self.b["offsets"], window, max(4, window // 4),
                     np.ones((n_sites, p)), 6.0, 24, np.full(p, 4.0), np.eye(p), 50.0, 0.5, 3.0, 4, False,
                     np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64),
                     np.zeros(0, np.int64), np.zeros(0, np.bool_), np.zeros(0, np.bool_), np.zeros(0), 0.0)
        detector_rows(*self.args)  # compile / load cache

    def time_detector_rows(self, scale, window):
        detector_rows(*self.args)
