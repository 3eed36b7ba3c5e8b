"""Settings of the water analysis: :class:`WaterOptions` (indices, signature detectors, mass
balance) and :class:`DetectOptions` (the detectors over every parameter)."""

from __future__ import annotations

from dataclasses import dataclass, field

from uda.contract import WATER_INTERVAL_S
from uda.errors import UserError

PERIODS = ("all", "day", "week", "month")


@dataclass
class WaterOptions:
    """Settings of the water analysis (defaults are the documented ones in docs/water.md).

    Attributes
    ----------
    period
        WQI period per site: ``all``, ``day``, ``week`` (Monday start) or ``month``.
    interval_s
        Nominal sampling interval; windows below are in samples of this length.
    window
        Baseline window of the detectors (samples before the current one).
    min_periods
        Fewest baseline samples before a detector scores.
    z_threshold
        ``zscore`` alarm: a parameter's directional robust z above this.
    cusum_k, cusum_h, cusum_clip
        ``cusum`` alarm: one-sided CUSUM of the multivariate score (allowance ``k``,
        step cap ``clip``) above ``h``.
    mv_threshold, mv_clip
        ``multivariate`` alarm: the combined score above this (each parameter capped at
        ``mv_clip``).
    mask_hours
        The detectors' baseline skips samples scoring above ``mv_threshold`` for at most
        this long in a row (0 = plain rolling baseline).
    merge_gap
        Alarm runs this many samples apart or closer form one alarm episode.
    tolerance_s
        An alarm up to this long after an event's end still detects it.
    min_event_size
        Events (plume amplitude = magnitude x peak factor at the site) smaller than this
        neither count as missed nor make an alarm false.
    mb_window, mb_slack_s, mb_threshold
        Mass balance: centred baseline window (samples), envelope window over the lagged
        upstream excess, and the alarm threshold of the unexplained-gain score.
    min_scale
        Scale floor per parameter (sensor resolution), for constant stretches.
    """

    period: str = "month"
    interval_s: float = float(WATER_INTERVAL_S)
    window: int = 288
    min_periods: int = 24
    z_threshold: float = 8.0
    cusum_k: float = 4.0
    cusum_h: float = 10.0
    cusum_clip: float = 10.0
    mv_threshold: float = 6.0
    mv_clip: float = 10.0
    mask_hours: float = 12.0
    merge_gap: int = 4
    tolerance_s: float = 3600.0
    min_event_size: float = 0.2
    mb_window: int = 288
    mb_slack_s: float = 7200.0
    mb_threshold: float = 10.0
    min_scale: dict[str, float] = field(default_factory=lambda: {
        "temperature_c": 0.05, "ph": 0.02, "do_mgl": 0.05, "turbidity_ntu": 0.2,
        "conductivity_uscm": 2.0, "nitrate_mgl": 0.02, "ammonia_mgl": 0.005})

    def check(self) -> WaterOptions:
        """Return self after checking values a user may have set."""
        if self.period not in PERIODS:
            msg = f"unknown --period {self.period!r}; choose one of: {', '.join(PERIODS)}"
            raise UserError(msg)
        if self.window < 2 or self.min_periods < 1 or self.min_periods > self.window:
            msg = f"--window {self.window} / min periods {self.min_periods} are invalid; use window >= 2 and 1 <= min periods <= window"
            raise UserError(msg)
        return self


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

    def min_periods(self, interval_s: float) -> int:
        """Fewest accepted samples in the forecast window before a residual is scored."""
        return max(4, self.window(interval_s) // 4)
