"""Defect profiles: the rates of each defect type and whether districts keep their own standards.

``uda generate --defects`` takes ``none``, ``realistic``, ``severe`` or a TOML profile
file (:func:`resolve_profile`); what each rate means is :data:`RATE_MEANING` (and
``docs/utilisation.md``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uda.contract import DEFECT_TYPES, DRIFT_MIN, LATE_AFTER_S
from uda.errors import UserError

#: What a rate means, per defect type.
RATE_MEANING = {
    "missing": ("share of expected records never delivered: isolated records, outages of minutes to hours, "
                "whole days down"),
    "duplicate": "share of delivered records delivered twice",
    "late": f"share of records arriving more than {LATE_AFTER_S} s after measurement",
    "spike": "share of records with one value replaced by a physically impossible one",
    "stuck": "share of records repeating the previous reading (runs of a frozen sensor)",
    "clock_skew": "share of sensors/sites whose clock is off by whole minutes (under half an interval)",
    "drift": f"share of sensors/sites whose drift parameter drifts linearly (rows flagged where bias >= {DRIFT_MIN:.0%})",
    "bad_reference": "share of tap records naming a station that does not exist",
    "unknown_unit": ("share of district feeds (per table and schema version) whose data dictionary declares "
                     "a unit spelling no converter knows, such as 'kph'; none of their records can be standardised"),
}

PROFILES: dict[str, dict[str, float]] = {
    "none": dict.fromkeys(DEFECT_TYPES, 0.0),
    "realistic": {"missing": 0.03, "duplicate": 0.01, "late": 0.02, "spike": 0.002, "stuck": 0.01,
                  "clock_skew": 0.05, "drift": 0.05, "bad_reference": 0.005, "unknown_unit": 0.05},
    "severe": {"missing": 0.15, "duplicate": 0.05, "late": 0.10, "spike": 0.01, "stuck": 0.05,
               "clock_skew": 0.20, "drift": 0.20, "bad_reference": 0.03, "unknown_unit": 0.15},
}


@dataclass(frozen=True)
class DefectProfile:
    """Defect rates (see :data:`RATE_MEANING`) and whether districts keep their own standards."""

    name: str
    rates: dict[str, float]
    heterogeneous: bool = True
    schema_drift: bool = True

    @property
    def active(self) -> bool:
        """Whether feeds are written at all (``none`` writes the canonical tables only)."""
        return self.name != "none"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly description for the manifest."""
        return {"name": self.name, "rates": dict(self.rates), "heterogeneous": self.heterogeneous,
                "schema_drift": self.schema_drift}


def resolve_profile(spec: str) -> DefectProfile:
    """``none``, ``realistic``, ``severe`` or the path of a TOML profile file.

    A profile file has a ``[defects]`` table of rates (0 to 0.5, types from
    :data:`DEFECT_TYPES`; missing types are 0) and an optional ``[standards]`` table with
    booleans ``heterogeneous`` and ``schema_drift`` (both default true).

    Raises
    ------
    UserError
        For an unknown name or a malformed profile file.
    """
    if spec in PROFILES:
        return DefectProfile(spec, dict(PROFILES[spec]))
    path = Path(spec)
    if not path.suffix == ".toml":
        msg = f"--defects {spec!r} is not a profile; use none, realistic, severe or a .toml profile file"
        raise UserError(msg)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        msg = f"cannot read defect profile {path}: {exc.strerror}; pass an existing .toml file"
        raise UserError(msg) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = f"defect profile {path} is not valid TOML ({str(exc).splitlines()[0]}); fix the file"
        raise UserError(msg) from None
    unknown_sections = set(doc) - {"defects", "standards"}
    if unknown_sections or not isinstance(doc.get("defects", {}), dict):
        msg = f"defect profile {path}: use only the tables [defects] and [standards] (found {sorted(doc)})"
        raise UserError(msg)
    rates = dict.fromkeys(DEFECT_TYPES, 0.0)
    for key, value in doc.get("defects", {}).items():
        if key not in rates:
            msg = f"defect profile {path}: unknown defect type {key!r}; use {', '.join(DEFECT_TYPES)}"
            raise UserError(msg)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 0.5:
            msg = f"defect profile {path}: rate {key} = {value!r} must be a number from 0 to 0.5"
            raise UserError(msg)
        rates[key] = float(value)
    std = doc.get("standards", {})
    if not isinstance(std, dict) or set(std) - {"heterogeneous", "schema_drift"} or not all(
            isinstance(v, bool) for v in std.values()):
        msg = f"defect profile {path}: [standards] takes only heterogeneous and schema_drift, as true or false"
        raise UserError(msg)
    return DefectProfile(path.stem, rates, heterogeneous=std.get("heterogeneous", True),
                         schema_drift=std.get("schema_drift", True))
