"""Checking the water task's options: names, the train fraction, windows rescaled to a table's step."""

from __future__ import annotations

from typing import Any

from uda.errors import UserError
from uda.waterq.settings import WaterOptions


def check_option_names(options: dict[str, Any]) -> None:
    """Refuse option names that are not fields of :class:`~uda.waterq.settings.WaterOptions`."""
    known = set(WaterOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        msg = f"unknown water option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        raise UserError(msg)


def check_train_fraction(train_fraction: float) -> None:
    """Refuse a train fraction outside (0, 1)."""
    if not (0.0 < float(train_fraction) < 1.0):
        msg = f"--train-fraction must lie strictly between 0 and 1, got {train_fraction:g}"
        raise UserError(msg)


def options_for_interval(options: dict[str, Any], interval_s: float) -> WaterOptions:
    """Options with the sample-count windows rescaled to ``interval_s`` unless set explicitly."""
    base = WaterOptions()
    ratio = base.interval_s / interval_s if interval_s > 0 else 1.0
    scaled = {"window": max(4, round(base.window * ratio)),
              "min_periods": max(2, round(base.min_periods * ratio)),
              "mb_window": max(4, round(base.mb_window * ratio)),
              "merge_gap": max(0, round(base.merge_gap * ratio))}
    scaled["min_periods"] = min(scaled["min_periods"], scaled["window"])
    merged = {"interval_s": interval_s, **scaled, **options}
    return WaterOptions(**merged).check()
