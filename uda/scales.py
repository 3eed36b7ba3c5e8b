"""Scale presets and how they map to the sizes of the city and its data."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, replace

from uda.contract import TRAFFIC_INTERVAL_S, WATER_INTERVAL_S
from uda.errors import UserError

DEFAULT_START = dt.date(2026, 3, 2)  # a Monday


@dataclass(frozen=True)
class Scale:
    """Sizes of a generated city and its data.

    Attributes
    ----------
    name
        Preset name (or ``"custom"`` once overridden).
    sensors
        Traffic sensors (one per instrumented link).
    days
        Days of data, starting at ``start`` (a Monday by default).
    stations, lines
        Public-transport stations and lines.
    cards
        Smart cards in circulation.
    water_sites
        Water-quality monitoring sites.
    districts
        Administrative districts (they later own the data feeds).
    start
        First day (ISO date).
    """

    name: str
    sensors: int
    days: int
    stations: int
    lines: int
    cards: int
    water_sites: int
    districts: int
    start: str = DEFAULT_START.isoformat()

    @property
    def grid_side(self) -> int:
        """Nodes per side of the street grid (about 2.5 directed links per sensor)."""
        return max(8, math.ceil(math.sqrt(0.65 * self.sensors)))

    @property
    def traffic_rows(self) -> int:
        """Rows of the traffic table."""
        return self.sensors * self.days * (86400 // TRAFFIC_INTERVAL_S)

    @property
    def water_rows(self) -> int:
        """Rows of the water table."""
        return self.water_sites * self.days * (86400 // WATER_INTERVAL_S)

    @property
    def start_date(self) -> dt.date:
        """First day as a date."""
        return dt.date.fromisoformat(self.start)

    def as_dict(self) -> dict:
        """Parameters as a JSON-friendly dict."""
        return asdict(self)


PRESETS: dict[str, Scale] = {
    "tiny": Scale("tiny", sensors=24, days=7, stations=10, lines=2, cards=1_500, water_sites=8, districts=4),
    "small": Scale("small", sensors=200, days=14, stations=40, lines=4, cards=20_000, water_sites=24, districts=6),
    "medium": Scale("medium", sensors=2_000, days=30, stations=120, lines=8, cards=150_000, water_sites=60, districts=12),
    "large": Scale("large", sensors=20_000, days=180, stations=300, lines=12, cards=600_000, water_sites=200, districts=24),
    "city": Scale("city", sensors=50_000, days=365, stations=600, lines=20, cards=2_000_000, water_sites=500, districts=40),
}

_LIMITS = {"sensors": (1, 10_000_000), "days": (1, 3660), "stations": (2, 20_000), "lines": (1, 200),
           "cards": (1, 100_000_000), "water_sites": (2, 100_000), "districts": (1, 1000)}


def resolve_scale(name: str, **overrides: int | str | None) -> Scale:
    """The preset ``name`` with explicit overrides applied and checked.

    Raises
    ------
    UserError
        For an unknown preset or an impossible size.
    """
    if name not in PRESETS:
        msg = f"unknown scale {name!r}; choose one of: {', '.join(PRESETS)}"
        raise UserError(msg)
    given = {k: v for k, v in overrides.items() if v is not None}
    for key, value in given.items():
        if key == "start":
            try:
                dt.date.fromisoformat(str(value))
            except ValueError:
                msg = f"--start {value!r} is not a date; use YYYY-MM-DD"
                raise UserError(msg) from None
            continue
        lo, hi = _LIMITS[key]
        if not lo <= int(value) <= hi:
            msg = f"--{key.replace('_', '-')} {value} is impossible; use a value from {lo} to {hi}"
            raise UserError(msg)
    scale = replace(PRESETS[name], **given)
    if given:
        scale = replace(scale, name=f"{name}+custom")
    if scale.stations < scale.lines + 1:
        msg = f"{scale.stations} stations cannot serve {scale.lines} lines; use at least {scale.lines + 1} stations"
        raise UserError(msg)
    n_nodes = scale.grid_side**2
    if scale.stations > n_nodes // 2:
        msg = f"{scale.stations} stations do not fit a city of {n_nodes} street nodes; use at most {n_nodes // 2} or more sensors"
        raise UserError(msg)
    if scale.districts > n_nodes // 4:
        msg = f"{scale.districts} districts do not fit a city of {n_nodes} street nodes; use at most {n_nodes // 4}"
        raise UserError(msg)
    return scale
