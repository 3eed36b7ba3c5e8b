"""Water-quality guideline limits (with their sources) and the plume signature.

The parameters are :data:`uda.contract.WATER_PARAMETERS` (the column order every kernel
sees); :data:`EVENT_DIRECTIONS` says which way a pollution plume moves each parameter;
:func:`load_guidelines` reads the defaults and a user's JSON overrides;
:func:`guideline_arrays` lines the limits up with a table's columns.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from uda.contract import WATER_PARAMETERS
from uda.errors import UserError

#: How a pollution plume moves each parameter: +1 raises it, -1 lowers it, 0 unaffected.
#: (Untreated discharges carry ammonia, suspended solids and salts and consume oxygen.)
EVENT_DIRECTIONS: dict[str, int] = {"ammonia_mgl": 1, "turbidity_ntu": 1,
                                    "conductivity_uscm": 1, "do_mgl": -1}


@dataclass(frozen=True)
class Guideline:
    """Limits and index constants for one parameter.

    Attributes
    ----------
    param
        Canonical parameter name (one of :data:`WATER_PARAMETERS`).
    lower, upper
        A sample fails if below ``lower`` or above ``upper`` (NaN = no such limit).
    ideal, standard
        Ideal value and permissible standard of the weighted-arithmetic WQI
        (NaN ``standard`` leaves the parameter out of that index).
    source
        Where the values come from.
    """

    param: str
    lower: float = math.nan
    upper: float = math.nan
    ideal: float = 0.0
    standard: float = math.nan
    source: str = ""


#: Default guidelines (freshwater aquatic life). See docs/water.md for the full citations.
DEFAULT_GUIDELINES: dict[str, Guideline] = {g.param: g for g in (
    Guideline("temperature_c", upper=28.0, standard=math.nan,
              source="EU Freshwater Fish Directive 2006/44/EC Annex I, cyprinid waters: 28 °C maximum"),
    Guideline("ph", lower=6.5, upper=9.0, ideal=7.0, standard=8.5,
              source="CCME Canadian Water Quality Guidelines, aquatic life (freshwater): pH 6.5-9.0; "
                     "WA-WQI standard 8.5, ideal 7 (Brown et al. 1972 / Tripathy & Sahu 2005)"),
    Guideline("do_mgl", lower=5.5, ideal=14.6, standard=5.0,
              source="CCME CWQG, warm-water biota, other life stages: 5.5 mg/L minimum; "
                     "WA-WQI standard 5 mg/L, ideal 14.6 mg/L (saturation at 0 °C)"),
    Guideline("turbidity_ntu", upper=25.0, standard=25.0,
              source="EU 2006/44/EC suspended solids guide value 25 mg/L, used as NTU "
                     "(CCME's turbidity guideline is relative to background; override per site)"),
    Guideline("conductivity_uscm", upper=2500.0, standard=2500.0,
              source="EU Drinking Water Directive 98/83/EC indicator parameter: 2500 µS/cm at 20 °C"),
    Guideline("nitrate_mgl", upper=13.0, standard=13.0,
              source="CCME CWQG nitrate, long-term exposure (2012): 13 mg/L as NO3- (3.0 mg/L NO3-N)"),
    Guideline("ammonia_mgl", upper=1.0, standard=1.0,
              source="EU 2006/44/EC Annex I total ammonium, imperative value: 1 mg/L NH4"),
)}


def load_guidelines(path: str | os.PathLike | None = None) -> dict[str, Guideline]:
    """Default guidelines, optionally overridden by a JSON file.

    Parameters
    ----------
    path
        JSON object ``{"<param>": {"lower": .., "upper": .., "ideal": .., "standard": ..}}``;
        missing keys keep their default, ``null`` removes a limit.

    Returns
    -------
    dict
        Parameter name -> :class:`Guideline`, for every parameter in :data:`WATER_PARAMETERS`.
    """
    guides = dict(DEFAULT_GUIDELINES)
    if path is None:
        return guides
    p = Path(path)
    try:
        spec = json.loads(p.read_text())
    except OSError as exc:
        msg = f"cannot read --guidelines {p}: {exc.strerror}; pass an existing JSON file"
        raise UserError(msg) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        msg = f"--guidelines {p} is not valid JSON; write an object such as {{\"ph\": {{\"lower\": 6.5}}}}"
        raise UserError(msg) from None
    if not isinstance(spec, dict):
        msg = f"--guidelines {p} must hold a JSON object keyed by parameter name"
        raise UserError(msg)
    for name, fields in spec.items():
        if name not in guides:
            msg = f"--guidelines {p}: unknown parameter {name!r}; use one of {', '.join(WATER_PARAMETERS)}"
            raise UserError(msg)
        if not isinstance(fields, dict) or set(fields) - {"lower", "upper", "ideal", "standard"}:
            msg = f"--guidelines {p}: {name!r} must map to an object with lower/upper/ideal/standard"
            raise UserError(msg)
        clean = {}
        for key, val in fields.items():
            if val is not None and not isinstance(val, int | float):
                msg = f"--guidelines {p}: {name}.{key} must be a number or null, got {val!r}"
                raise UserError(msg)
            if val is not None and not math.isfinite(val):
                msg = f"--guidelines {p}: {name}.{key} must be a finite number or null, got {val!r}"
                raise UserError(msg)
            clean[key] = math.nan if val is None else float(val)
        g = replace(guides[name], **clean, source=f"{p.name} (user file)")
        if g.lower == g.lower and g.upper == g.upper and g.lower >= g.upper:
            msg = (f"--guidelines {p}: {name} has lower {g.lower:g} >= upper {g.upper:g}; "
                   "the lower limit must be below the upper one")
            raise UserError(msg)
        guides[name] = g
    return guides


def guideline_arrays(guides: dict[str, Guideline], params: tuple[str, ...] = WATER_PARAMETERS) -> dict[str, np.ndarray]:
    """``lower``, ``upper``, ``ideal``, ``standard`` arrays in the order of ``params``.

    Parameters without a guideline get NaN limits (no test) and NaN standard (left out of
    the weighted-arithmetic index).
    """
    none = Guideline("")
    return {key: np.array([getattr(guides.get(p, none), key) for p in params], dtype=np.float64)
            for key in ("lower", "upper", "ideal", "standard")}
