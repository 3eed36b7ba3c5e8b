"""Durations written by people: ``5min``, ``15 min``, ``1h``, ``30s``, ``500ms``, ``2 days``.

The one duration grammar of uda: ``uda size --interval/--deadline`` and the ``step`` of a
table schema (``uda run quality --table``) read durations with :func:`duration_us`, each
wording its own error message. Standard library only (``uda --help`` may load it).
"""

from __future__ import annotations

import re
from fractions import Fraction

#: Microseconds per unit; a bare number is seconds. Units are read in any case (``1H``).
UNITS_US: dict[str, int] = {
    "us": 1, "ms": 1000,
    "s": 1_000_000, "sec": 1_000_000, "second": 1_000_000, "seconds": 1_000_000,
    "m": 60_000_000, "min": 60_000_000, "mins": 60_000_000, "minute": 60_000_000, "minutes": 60_000_000,
    "h": 3_600_000_000, "hr": 3_600_000_000, "hour": 3_600_000_000, "hours": 3_600_000_000,
    "d": 86_400_000_000, "day": 86_400_000_000, "days": 86_400_000_000,
}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")


def duration_us(text: str | int | float) -> int | None:
    """Microseconds in a duration, or ``None`` when ``text`` is not one.

    Parameters
    ----------
    text
        A non-negative number with an optional unit (:data:`UNITS_US`: ``us``, ``ms``,
        ``s``, ``min`` or ``m``, ``h``, ``d`` and their long names), spaces allowed around
        it and between; a bare number, or an int or float, is seconds.

    Returns
    -------
    int or None
        The duration rounded to whole microseconds, exactly (a decimal number of any length
        does not overflow); zero included: callers say whether zero is allowed.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(round(float(text) * 1_000_000))
    m = _DURATION.fullmatch(str(text).lower())
    if m is None or (m.group(2) and m.group(2) not in UNITS_US):
        return None
    return round(Fraction(m.group(1)) * UNITS_US[m.group(2) or "s"])
