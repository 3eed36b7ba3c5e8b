"""Department feeds: each district's own data standard, injected defects, and their truth records.

With defects, ``uda generate`` keeps the canonical (true) sensor tables in ``truth/`` and
publishes each district's traffic, passenger (taps) and water data as *feeds* under that
district's standard: its own column names, units, timestamp format and time zone, sensor
ID scheme, and a column renamed halfway through the period (schema drift). Defects are
injected at the profile's rates and every one is written to the ``defects`` truth table
as ``(type, table, district, key, ts, detail)`` with ``ts`` the true (canonical) time.

Draws are counter-based (:mod:`uda.kernels.rng`): a row's draws depend only on
(seed, table, unit, position in the unit's series, lane), never on how rows are chunked.
The model and the rates are documented in ``docs/utilisation.md``.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from uda.city import rng_for
from uda.errors import UserError
from uda.kernels.rng import stream_key

#: The city's local standard time is UTC+01:00; canonical timestamps are naive local standard time.
LOCAL_UTC_OFFSET_S = 3600
#: A record is late when it arrives more than this after its (true) measurement time.
LATE_AFTER_S = 3600
#: A drifting sensor's rows count as drifted where the bias reaches this fraction.
DRIFT_MIN = 0.10
#: Missing records (issue 13): shares of the ``missing`` rate lost as isolated records, in
#: outages of minutes to hours and in whole calendar days (see docs/datasets.md).
MISSING_SPLIT = (0.15, 0.25, 0.60)
#: Outages: log-normal duration (median, σ of the log), clipped to [min, max].
OUTAGE_MEDIAN_MIN = 25.0
OUTAGE_SIGMA = 0.6
OUTAGE_MIN_MIN = 15.0
OUTAGE_MAX_H = 12.0
#: Whole days down: the probability that such an outage goes on for another day.
DAYS_DOWN_CONTINUE = 0.5
#: Defect types, in the order they are applied.
DEFECT_TYPES = ("drift", "stuck", "spike", "missing", "duplicate", "clock_skew", "late", "bad_reference",
                "unknown_unit")
#: Defect types each table can carry.
TABLE_DEFECTS = {
    "traffic": ("drift", "stuck", "spike", "missing", "duplicate", "clock_skew", "late", "unknown_unit"),
    "water": ("drift", "stuck", "spike", "missing", "duplicate", "clock_skew", "late", "unknown_unit"),
    "taps": ("duplicate", "late", "bad_reference"),
}
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
#: Unit spellings a department might use that the standardiser does not know.
UNKNOWN_UNITS = {"flow": "veh/hr", "speed": "kph", "occupancy": "percent", "temperature_c": "Celsius",
                 "ph": "units", "do_mgl": "ppm", "turbidity_ntu": "FNU", "conductivity_uscm": "umho/cm",
                 "nitrate_mgl": "mg N/L", "ammonia_mgl": "ppm"}

PROFILES: dict[str, dict[str, float]] = {
    "none": dict.fromkeys(DEFECT_TYPES, 0.0),
    "realistic": {"missing": 0.03, "duplicate": 0.01, "late": 0.02, "spike": 0.002, "stuck": 0.01,
                  "clock_skew": 0.05, "drift": 0.05, "bad_reference": 0.005, "unknown_unit": 0.05},
    "severe": {"missing": 0.15, "duplicate": 0.05, "late": 0.10, "spike": 0.01, "stuck": 0.05,
               "clock_skew": 0.20, "drift": 0.20, "bad_reference": 0.03, "unknown_unit": 0.15},
}


@dataclass(frozen=True)
class TableSpec:
    """Canonical shape of a sensor table as far as feeds and quality are concerned."""

    name: str
    key: str                      # unit of a series (sensor, site, card)
    ref: str                      # column that must resolve against a city table
    ref_table: str                # ... and that table
    interval_s: int               # 0 for event tables (taps)
    values: tuple[str, ...]       # measured value columns
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    drift: str = ""               # the column a drifting sensor drifts in
    stuck_run: int = 0            # rows in a stuck run (including the genuine first reading)


SPECS: dict[str, TableSpec] = {
    "traffic": TableSpec("traffic", "sensor_id", "sensor_id", "sensors", 300, ("flow", "speed", "occupancy"),
                         {"flow": (0.0, 12000.0), "speed": (0.0, 160.0), "occupancy": (0.0, 1.0)},
                         drift="speed", stuck_run=6),
    "water": TableSpec("water", "site_id", "site_id", "water_sites", 900,
                       ("temperature_c", "ph", "do_mgl", "turbidity_ntu", "conductivity_uscm", "nitrate_mgl",
                        "ammonia_mgl"),
                       {"temperature_c": (-10.0, 45.0), "ph": (0.0, 14.0), "do_mgl": (0.0, 25.0),
                        "turbidity_ntu": (0.0, 4000.0), "conductivity_uscm": (0.0, 20000.0),
                        "nitrate_mgl": (0.0, 200.0), "ammonia_mgl": (0.0, 100.0)},
                       drift="do_mgl", stuck_run=4),
    "taps": TableSpec("taps", "card_id", "station_id", "stations", 0, ()),
}

#: Unit -> factor to the canonical unit (or the name of a conversion), per canonical column.
UNITS: dict[str, dict[str, float | str]] = {
    "flow": {"veh/h": 1.0, "veh/5min": 12.0},
    "speed": {"km/h": 1.0, "mph": 1.609344},
    "occupancy": {"1": 1.0, "%": 0.01},
    "temperature_c": {"degC": 1.0, "degF": "fahrenheit"},
    "ph": {"pH": 1.0},
    "do_mgl": {"mg/L": 1.0, "µg/L": 0.001},
    "turbidity_ntu": {"NTU": 1.0},
    "conductivity_uscm": {"µS/cm": 1.0, "mS/cm": 1000.0},
    "nitrate_mgl": {"mg/L": 1.0, "µg/L": 0.001},
    "ammonia_mgl": {"mg/L": 1.0, "µg/L": 0.001},
}
#: Timestamp formats: name -> strftime/strptime pattern ('' for numeric or native columns).
TIME_FORMATS = {
    "native": "",                                   # timestamp[ms], local standard time
    "iso_offset": "%Y-%m-%dT%H:%M:%S+01:00",        # local standard time with its offset
    "iso_utc": "%Y-%m-%dT%H:%M:%SZ",                # UTC
    "dmy_local": "%d/%m/%Y %H:%M",                  # local standard time, minutes
    "epoch_s": "",                                  # int64 seconds since 1970, UTC
    "iso_offset_ms": "%Y-%m-%dT%H:%M:%S%.3f+01:00",  # taps: with milliseconds
    "epoch_ms": "",                                 # taps: int64 ms since 1970, UTC
}
_NAMES = {
    "sensor_id": ("sensor_id", "detector", "sensor_ref", "loop_id"),
    "site_id": ("site_id", "station", "site_code"),
    "card_id": ("card_id", "card", "media_id"),
    "station_id": ("station_id", "stop", "location"),
    "ts": ("ts", "timestamp", "time", "datetime"),
    "received": ("received", "ingest_time", "arrival_ms"),
    "direction": ("direction", "event"),
    "flow": ("flow", "volume", "q"), "speed": ("speed", "spd", "v"), "occupancy": ("occupancy", "occ"),
    "temperature_c": ("temperature", "temp"), "ph": ("ph", "pH_value"), "do_mgl": ("do", "dissolved_oxygen"),
    "turbidity_ntu": ("turbidity",), "conductivity_uscm": ("conductivity", "ec"),
    "nitrate_mgl": ("nitrate", "no3"), "ammonia_mgl": ("ammonia", "nh4"),
}
_ID_FORMATS = {
    "sensor_id": ("{}", "TRF-{:06d}", "D{d}/S{}"),
    "site_id": ("{}", "WQ-{:04d}", "D{d}/W{}"),
    "card_id": ("{}", "C{:010d}"),
    "station_id": ("{}", "ST-{:03d}", "D{d}/ST{}"),
}


# --------------------------------------------------------------------------- profiles


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


# --------------------------------------------------------------------------- standards


@dataclass
class Standard:
    """One district's standard for one table: columns, units, formats, and the drift rename."""

    table: str
    district: int
    columns: dict[str, str]       # canonical role -> feed column name (version 0)
    units: dict[str, str]         # canonical value column -> unit
    id_formats: dict[str, str]    # id role -> format such as "TRF-{:06d}"
    time_format: str
    rename: dict[str, str]        # role -> new name from ``drift_day`` on (version 1)
    drift_day: int                # first day of version 1 (days = no drift)
    bad_units: dict[int, tuple[str, str]] = field(default_factory=dict)  # version -> (role, declared unit)

    def declared_unit(self, version: int, role: str) -> str:
        """The unit the dictionary declares for ``role`` in ``version`` (maybe an unknown spelling)."""
        bad = self.bad_units.get(version)
        return bad[1] if bad is not None and bad[0] == role else self.units[role]

    def columns_for(self, version: int) -> dict[str, str]:
        """Role -> column name in schema ``version``."""
        return {**self.columns, **self.rename} if version else dict(self.columns)

    def dictionary_rows(self) -> list[dict[str, Any]]:
        """Rows of the ``feed_dictionary`` table describing this standard."""
        rows = []
        for version in (0, 1) if self.rename else (0,):
            for role, col in self.columns_for(version).items():
                if role in self.units:
                    unit = self.declared_unit(version, role)
                elif role in self.id_formats:
                    unit = self.id_formats[role]
                elif role in ("ts", "received"):
                    unit = self.time_format if role == "ts" else "epoch_ms"
                else:
                    unit = "0=in,1=out" if role == "direction" else ""
                rows.append({"table": self.table, "district": self.district, "version": version,
                             "valid_from_day": self.drift_day if version else 0,
                             "role": role, "column": col, "unit": unit})
        return rows


def make_standard(table: str, district: int, *, seed: int, days: int, profile: DefectProfile) -> Standard:
    """The standard of ``district`` for ``table`` (seeded by ``seed``; canonical when not heterogeneous)."""
    spec = SPECS[table]
    roles = [spec.key, "ts", "received"] + (["station_id", "direction"] if table == "taps" else []) + list(spec.values)
    rng = rng_for(seed, f"standard-{table}-{district}")
    het = profile.heterogeneous

    def pick(options):
        return options[int(rng.integers(len(options)))] if het else options[0]

    columns = {r: pick(_NAMES[r]) for r in roles}
    units = {v: pick(list(UNITS[v])) for v in spec.values}
    id_roles = [spec.key] + (["station_id"] if table == "taps" else [])
    id_formats = {r: pick(_ID_FORMATS[r]).replace("{d}", str(district)) for r in id_roles}
    times = ("native", "iso_offset_ms", "epoch_ms") if table == "taps" else (
        "native", "iso_offset", "iso_utc", "dmy_local", "epoch_s")
    time_format = pick(times)
    rename: dict[str, str] = {}
    drift_day = days
    if profile.schema_drift and days >= 2:
        role = spec.values[int(rng.integers(len(spec.values)))] if spec.values else "station_id"
        rename = {role: f"{columns[role]}_v2"}
        drift_day = days // 2
    bad_units = {}
    for version in (0, 1) if rename else (0,):
        u = rng.random(2)  # drawn for every version so other draws do not depend on the rate
        if spec.values and u[0] < profile.rates.get("unknown_unit", 0.0):
            role = spec.values[int(u[1] * len(spec.values))]
            bad_units[version] = (role, UNKNOWN_UNITS[role])
    return Standard(table, district, columns, units, id_formats, time_format, rename, drift_day, bad_units)


def to_unit(values: np.ndarray, column: str, unit: str) -> np.ndarray:
    """Canonical ``values`` of ``column`` expressed in ``unit``."""
    f = UNITS[column][unit]
    if f == "fahrenheit":
        return values * 1.8 + 32.0
    return values / f


# --------------------------------------------------------------------------- counter-based draws (NumPy)

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_UNIT_LANES = np.uint64(1 << 52)
_DAY_COUNTERS = np.uint64(1 << 51)  # counters of per-(unit, day) draws
_DAYS_BEFORE = 40  # days before the start on which a whole-days outage may begin (0.5**40: none longer)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * _C1
    x = x ^ (x >> np.uint64(27))
    x = x * _C2
    return x ^ (x >> np.uint64(31))


def _unit_keys(seed: int, table: str, units: np.ndarray) -> np.ndarray:
    root = stream_key(seed, f"defects-{table}")
    return _mix(root ^ _mix(units.astype(np.uint64) + _GOLDEN))


def _uniform(keys: np.ndarray, counter: np.ndarray, lane: int) -> np.ndarray:
    """Uniform (0, 1) draws for each (key, counter, lane), as ``uniform`` in uda.kernels.rng."""
    with np.errstate(over="ignore"):
        c = counter.astype(np.uint64) * np.uint64(16) + np.uint64(lane)
        bits = _mix(keys + (c + np.uint64(1)) * _GOLDEN)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / 9007199254740992.0


def _unit_uniform(keys: np.ndarray, lane: int) -> np.ndarray:
    return _uniform(keys, np.full(keys.shape, _UNIT_LANES, np.uint64), lane)


# --------------------------------------------------------------------------- injection

_TYPE_CODE = {t: i for i, t in enumerate(DEFECT_TYPES)}


class _Truth:
    """Defect records collected while injecting: type, key, true ts, detail, row district."""

    def __init__(self, district: np.ndarray):
        self.district = district
        self.parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, kind: str, mask: np.ndarray, key: np.ndarray, ts: np.ndarray,
            detail: np.ndarray | float = np.nan) -> None:
        if mask.any():
            d = np.broadcast_to(np.asarray(detail, np.float64), mask.shape)[mask]
            self.parts.append((kind, key[mask].astype(np.int64), ts[mask].astype(np.int64), d.astype(np.float64),
                               self.district[mask]))

    def table(self, table: str) -> pa.Table:
        if self.parts:
            kind = np.concatenate([np.full(p[1].size, _TYPE_CODE[p[0]], np.int8) for p in self.parts])
            key = np.concatenate([p[1] for p in self.parts])
            ts = np.concatenate([p[2] for p in self.parts])
            detail = np.concatenate([p[3] for p in self.parts])
            district = np.concatenate([p[4] for p in self.parts])
        else:
            kind, key, ts, detail, district = (np.zeros(0, np.int8), np.zeros(0, np.int64), np.zeros(0, np.int64),
                                               np.zeros(0, np.float64), np.zeros(0, np.int16))
        order = np.lexsort((ts, key, kind))
        names = np.array(DEFECT_TYPES, dtype=object)
        return pa.table({
            "type": pa.array(names[kind[order]].tolist() if kind.size else [], pa.string()),
            "table": pa.array([table] * kind.size, pa.string()),
            "district": pa.array(district[order].astype(np.int16)),
            "key": pa.array(key[order]),
            "ts": pa.array(ts[order], pa.timestamp("ms")),
            "detail": pa.array(detail[order]),
        })


def _missing_records(rate: float, rkeys: np.ndarray, ukeys: np.ndarray, pos: np.ndarray, counts: np.ndarray,
                     day: np.ndarray, interval_s: int, days: int) -> np.ndarray:
    """Rows never delivered: ``rate`` of the records, split by :data:`MISSING_SPLIT`.

    Rows are whole units in time order (``counts`` rows per unit, ``pos`` the record's
    position in its series, ``day`` its day from the start). Isolated records go missing
    independently; an outage starts at a record with a probability set so that outages
    cover their share, lasts a log-normal time (median :data:`OUTAGE_MEDIAN_MIN`,
    σ :data:`OUTAGE_SIGMA`, :data:`OUTAGE_MIN_MIN` min to :data:`OUTAGE_MAX_H` h) and stops
    at the end of the unit's series; a unit goes down for whole calendar days from a day
    with a probability per unit-day, for 1 + Geometric(:data:`DAYS_DOWN_CONTINUE`) days.
    Every draw is keyed by (unit, position) or (unit, day), so the result does not depend
    on chunking.
    """
    n = pos.size
    if rate <= 0.0 or n == 0:
        return np.zeros(n, bool)
    iso, hours, whole = (rate * f for f in MISSING_SPLIT)
    missing = _uniform(rkeys, pos, 4) < iso
    # outages of minutes to hours
    mean_min = min(OUTAGE_MEDIAN_MIN * np.exp(OUTAGE_SIGMA ** 2 / 2), OUTAGE_MAX_H * 60.0)
    mean_rec = max(1.0, mean_min * 60.0 / interval_s)
    starts = np.flatnonzero(_uniform(rkeys, pos, 10) < hours / mean_rec)
    if starts.size:
        u1, u2 = _uniform(rkeys[starts], pos[starts], 11), _uniform(rkeys[starts], pos[starts], 12)
        z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        minutes = np.clip(OUTAGE_MEDIAN_MIN * np.exp(OUTAGE_SIGMA * z), OUTAGE_MIN_MIN, OUTAGE_MAX_H * 60.0)
        length = np.maximum(1, np.round(minutes * 60.0 / interval_s)).astype(np.int64)
        unit_end = np.repeat(np.cumsum(counts), counts)[starts]
        edges = np.zeros(n + 1, np.int64)
        np.add.at(edges, starts, 1)
        np.add.at(edges, np.minimum(starts + length, unit_end), -1)
        missing |= np.cumsum(edges[:-1]) > 0
    # whole days down; episodes may begin up to _DAYS_BEFORE days before the start, so that
    # the share of days down is the same on every day of the period
    if days > 0:
        n_units = ukeys.size
        span = days + _DAYS_BEFORE
        dk = np.repeat(ukeys, span)
        dc = np.tile(np.arange(span, dtype=np.uint64), n_units) + _DAY_COUNTERS
        begin = _uniform(dk, dc, 0) < whole * (1.0 - DAYS_DOWN_CONTINUE)
        if begin.any():
            at = np.flatnonzero(begin)
            cont = np.log(_uniform(dk[at], dc[at], 1)) / np.log(DAYS_DOWN_CONTINUE)
            first_day = at % span - _DAYS_BEFORE
            last = first_day + 1 + np.floor(cont).astype(np.int64)
            seen = last > 0
            unit = at[seen] // span
            edges = np.zeros((n_units, days + 1), np.int64)
            np.add.at(edges, (unit, np.maximum(first_day[seen], 0)), 1)
            np.add.at(edges, (unit, np.minimum(last[seen], days)), -1)
            down = np.cumsum(edges[:, :-1], axis=1) > 0
            row_unit = np.repeat(np.arange(n_units), counts)
            missing |= down[row_unit, np.clip(day, 0, days - 1)]
    return missing


def _run_lengths(missing: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Per row, the length of the run of missing rows it belongs to (runs stop at unit starts)."""
    out = np.zeros(missing.size)
    if not missing.any():
        return out
    prev = np.zeros(missing.size, bool)
    prev[1:] = missing[:-1]
    prev[first] = False
    start = missing & ~prev
    run = np.cumsum(start) - 1
    out[missing] = np.bincount(run[missing])[run[missing]]
    return out


def _series_defects(tab: pa.Table, spec: TableSpec, profile: DefectProfile, *, seed: int, start_ms: int,
                    days: int, district_of) -> tuple[dict[str, np.ndarray], _Truth]:
    """Apply value and record defects to a canonical interval table (rows grouped by unit, in time order)."""
    r = profile.rates
    key = tab[spec.key].to_numpy().astype(np.int64)
    ts = tab["ts"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    vals = {v: tab[v].to_numpy().astype(np.float64) for v in spec.values}
    n = key.size
    step = spec.interval_s * 1000
    pos = (ts - start_ms) // step
    units, first, counts = np.unique(key, return_index=True, return_counts=True)
    ukeys = _unit_keys(seed, spec.name, units)
    rkeys = np.repeat(ukeys, counts)
    truth = _Truth(district_of(key))

    # drift: a linear multiplicative bias from a start day to +-B at the end of the period
    drifting = _unit_uniform(ukeys, 0) < r["drift"]
    if drifting.any() and days >= 2:
        d_start = (1 + np.floor(_unit_uniform(ukeys, 1) * max(1, days // 2))).astype(np.int64)
        mag = (0.3 + 0.3 * _unit_uniform(ukeys, 2)) * np.where(_unit_uniform(ukeys, 3) < 0.5, -0.6, 1.0)
        t0 = np.repeat(d_start * 86_400_000 // step, counts)
        span = max(1, days * 86_400_000 // step) - t0
        bias = np.where(np.repeat(drifting, counts) & (pos >= t0),
                        np.repeat(mag, counts) * (pos - t0) / np.maximum(span, 1), 0.0)
        vals[spec.drift] = vals[spec.drift] * (1.0 + bias)
        hit = np.abs(bias) >= DRIFT_MIN
        drift_rows = hit
        drift_bias = bias
    else:
        drift_rows = np.zeros(n, bool)
        drift_bias = np.zeros(n)

    # stuck: runs of ``stuck_run`` rows repeating the reading at the run's start
    stuck = np.zeros(n, bool)
    if r["stuck"] > 0:
        L = spec.stuck_run
        starts = np.flatnonzero(_uniform(rkeys, pos, 0) < r["stuck"] / (L - 1))
        anchor = np.arange(n)
        unit_end = np.repeat(first + counts, counts)
        for s in starts:
            a = anchor[s]
            e = min(s + L, unit_end[s])
            anchor[s + 1:e] = a
            stuck[s + 1:e] = True
        for v in spec.values:
            vals[v] = vals[v][anchor]

    # spikes: one value per hit row becomes physically impossible
    spike = _uniform(rkeys, pos, 1) < r["spike"]
    spike_col = np.minimum((_uniform(rkeys, pos, 2) * len(spec.values)).astype(np.int64), len(spec.values) - 1)
    u = _uniform(rkeys, pos, 3)
    for j, v in enumerate(spec.values):
        lo, hi = spec.ranges[v]
        sel = spike & (spike_col == j)
        width = hi - lo
        vals[v] = np.where(sel, np.where(u < 0.5, hi + width * (1.0 + 4.0 * u), lo - width * (0.5 + 2.0 * u)),
                           vals[v])

    # missing records: isolated ones, outages of minutes to hours, whole days down
    missing = _missing_records(r["missing"], rkeys, ukeys, pos, counts, (ts - start_ms) // 86_400_000,
                               spec.interval_s, days)
    keep = ~missing
    truth.add("missing", missing, key, ts, _run_lengths(missing, first))
    truth.add("drift", keep & drift_rows, key, ts, drift_bias)
    truth.add("stuck", keep & stuck, key, ts)
    truth.add("spike", keep & spike, key, ts)

    # clock skew: whole minutes, non-zero, under half an interval
    max_min = max(1, (spec.interval_s // 60 - 1) // 2)
    skewed = _unit_uniform(ukeys, 4) < r["clock_skew"]
    minutes = 1 + np.floor(_unit_uniform(ukeys, 5) * max_min)
    offset_ms = np.where(skewed, np.where(_unit_uniform(ukeys, 6) < 0.5, -1, 1) * minutes * 60_000, 0).astype(np.int64)
    row_offset = np.repeat(offset_ms, counts)
    sk = keep & (row_offset != 0)
    truth.add("clock_skew", sk, key, ts, row_offset / 1000.0)

    # arrival: normal latency 10 s .. 3 min; late ones 1 h .. 2 days more
    latency = 10_000 + _uniform(rkeys, pos, 5) * 170_000
    late = _uniform(rkeys, pos, 6) < r["late"]
    latency = latency + np.where(late, LATE_AFTER_S * 1000 * (1.0 + 47.0 * _uniform(rkeys, pos, 7)), 0.0)
    truth.add("late", keep & late, key, ts, latency / 1000.0)

    # duplicates: re-sent up to 10 minutes later
    dup = keep & (_uniform(rkeys, pos, 8) < r["duplicate"])
    truth.add("duplicate", dup, key, ts)
    idx = np.flatnonzero(keep)
    copies = np.flatnonzero(dup)
    rows = np.sort(np.concatenate([idx, copies]), kind="stable")
    is_copy = np.zeros(rows.size, bool)
    is_copy[1:] = rows[1:] == rows[:-1]
    received = ts - LOCAL_UTC_OFFSET_S * 1000 + latency.astype(np.int64)
    received = received[rows] + np.where(is_copy, (_uniform(rkeys, pos, 9)[rows] * 600_000).astype(np.int64), 0)
    out = {spec.key: key[rows], "ts": ts[rows] + row_offset[rows], "true_ts": ts[rows], "received": received}
    out.update({v: vals[v][rows] for v in spec.values})
    return out, truth


def _taps_defects(tab: pa.Table, profile: DefectProfile, *, seed: int,
                  district_of) -> tuple[dict[str, np.ndarray], _Truth]:
    r = profile.rates
    card = tab["card_id"].to_numpy().astype(np.int64)
    station = tab["station_id"].to_numpy().astype(np.int64)
    ts = tab["ts"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    direction = tab["direction"].to_numpy().astype(np.int64)
    keys = _unit_keys(seed, "taps", card)
    ctr = ts * 2 + direction
    truth = _Truth(district_of(station))
    bad = _uniform(keys, ctr, 0) < r["bad_reference"]
    station = np.where(bad, station + 10_000, station)
    truth.add("bad_reference", bad, card, ts)
    latency = 2_000 + _uniform(keys, ctr, 1) * 118_000
    late = _uniform(keys, ctr, 2) < r["late"]
    latency = latency + np.where(late, LATE_AFTER_S * 1000 * (1.0 + 47.0 * _uniform(keys, ctr, 3)), 0.0)
    truth.add("late", late, card, ts, latency / 1000.0)
    dup = _uniform(keys, ctr, 4) < r["duplicate"]
    truth.add("duplicate", dup, card, ts)
    rows = np.sort(np.concatenate([np.arange(card.size), np.flatnonzero(dup)]), kind="stable")
    is_copy = np.zeros(rows.size, bool)
    is_copy[1:] = rows[1:] == rows[:-1]
    received = ts - LOCAL_UTC_OFFSET_S * 1000 + latency.astype(np.int64)
    received = received[rows] + np.where(is_copy, (_uniform(keys, ctr, 5)[rows] * 600_000).astype(np.int64), 0)
    return {"card_id": card[rows], "station_id": station[rows], "true_station": tab["station_id"].to_numpy()[rows],
            "ts": ts[rows], "true_ts": ts[rows], "direction": direction[rows], "received": received}, truth


# --------------------------------------------------------------------------- formatting


def format_ids(ids: np.ndarray, fmt: str) -> pa.Array:
    """Integer ids written in an id scheme such as ``"TRF-{:06d}"`` or ``"D3/S{}"``."""
    if fmt == "{}":
        return pa.array(ids.astype(np.int64))
    import polars as pl

    prefix, _, rest = fmt.partition("{")
    width = int(rest[2:-2]) if rest.startswith(":0") else 0
    s = pl.Series(ids.astype(np.int64)).cast(pl.String)
    if width:
        s = s.str.zfill(width)
    return (prefix + s).to_arrow() if prefix else s.to_arrow()


def format_times(local_ms: np.ndarray, fmt: str) -> pa.Array:
    """Canonical local-standard-time ms written in timestamp format ``fmt``."""
    import polars as pl

    if fmt == "native":
        return pa.array(local_ms, pa.timestamp("ms"))
    utc = local_ms - LOCAL_UTC_OFFSET_S * 1000
    if fmt == "epoch_s":
        return pa.array(utc // 1000)
    if fmt == "epoch_ms":
        return pa.array(utc)
    base = utc if fmt == "iso_utc" else local_ms
    return pl.Series(base).cast(pl.Datetime("ms")).dt.strftime(TIME_FORMATS[fmt]).to_arrow()


def feed_tables(rows: dict[str, np.ndarray], std: Standard, *, start_ms: int) -> dict[int, pa.Table]:
    """One district's rows as feed tables under its standard, by schema version."""
    spec = SPECS[std.table]
    day = (rows["true_ts"] - start_ms) // 86_400_000
    out = {}
    for version in (0, 1) if std.rename else (0,):
        sel = (day >= std.drift_day) if version else (day < std.drift_day)
        if not sel.any():
            continue
        cols = std.columns_for(version)
        data: dict[str, pa.Array] = {}
        data[cols[spec.key]] = format_ids(rows[spec.key][sel], std.id_formats[spec.key])
        if std.table == "taps":
            data[cols["station_id"]] = format_ids(rows["station_id"][sel], std.id_formats["station_id"])
        data[cols["ts"]] = format_times(rows["ts"][sel], std.time_format)
        if std.table == "taps":
            data[cols["direction"]] = pa.array(rows["direction"][sel].astype(np.int8))
        for v in spec.values:
            data[cols[v]] = pa.array(to_unit(rows[v][sel], v, std.units[v]).astype(np.float32))
        data[cols["received"]] = pa.array(rows["received"][sel])
        out[version] = pa.table(data)
    return out


def inject(tab: pa.Table, table: str, profile: DefectProfile, *, seed: int, start_ms: int, days: int,
           district_of) -> tuple[dict[str, np.ndarray], pa.Table]:
    """Defective rows (canonical units and ids, observed timestamps) and the truth table of a chunk.

    Parameters
    ----------
    tab
        Canonical rows of whole units (sensors or sites in time order; a day of taps).
    table
        ``"traffic"``, ``"water"`` or ``"taps"``.
    profile
        Defect rates.
    seed, start_ms, days
        Dataset seed, first instant (ms, local) and length of the period.
    district_of
        Vectorised ``id -> district`` of the sensor or site (for taps: of the station).

    Returns
    -------
    rows, truth
        ``rows`` has the key, ``ts`` (as observed), ``true_ts``, ``received`` (UTC ms) and
        value columns; ``truth`` the defects table of the chunk.
    """
    if table == "taps":
        rows, truth = _taps_defects(tab, profile, seed=seed, district_of=district_of)
    else:
        rows, truth = _series_defects(tab, SPECS[table], profile, seed=seed, start_ms=start_ms, days=days,
                                      district_of=district_of)
    return rows, truth.table(table)


def start_ms_of(start: str) -> int:
    """Midnight of ISO date ``start`` in ms since the epoch (local standard time, naive)."""
    return (dt.date.fromisoformat(start) - dt.date(1970, 1, 1)).days * 86_400_000


def feed_table_name(table: str, district: int, version: int) -> str:
    """Manifest name of one district's feed of ``table`` in schema ``version``."""
    return f"feed_{table}_d{district:03d}_v{version}"


def write_chunk(root: Path, tab: pa.Table, table: str, chunk: str, *, profile: DefectProfile,
                standards: dict[tuple[str, int], Standard], district_lookup: np.ndarray, seed: int,
                start_ms: int, days: int) -> list[tuple[str, Any]]:
    """Write one chunk's true rows, its feeds (per district and schema version) and its defects.

    Parameters
    ----------
    root
        Dataset folder being written.
    tab
        Canonical rows of the chunk (whole sensors or sites; a day range of taps).
    table, chunk
        Table name and the chunk's file stem (for example ``part-0000200``).
    profile, standards
        Defect rates and the district standards (``(table, district) -> Standard``).
    district_lookup
        ``id -> district`` of the sensors, sites or stations (indexed by id).
    seed, start_ms, days
        Dataset seed, first instant (ms, local) and period length.

    Returns
    -------
    list of (table name, FilePart)
        ``true_<table>``, ``defects`` and one ``feed_*`` entry per district and version.
    """
    from uda.store import write_part

    spec = SPECS[table]

    def district_of(ids: np.ndarray) -> np.ndarray:
        return district_lookup[np.asarray(ids, np.int64)]

    rows, truth = inject(tab, table, profile, seed=seed, start_ms=start_ms, days=days, district_of=district_of)
    out: list[tuple[str, Any]] = [(f"true_{table}", write_part(root, f"truth/{table}/{chunk}.parquet", tab))]
    row_district = district_of(rows["true_station"] if table == "taps" else rows[spec.key])
    unit_truth = _Truth(row_district)
    day = (rows["true_ts"] - start_ms) // 86_400_000
    is_copy = np.zeros(day.size, bool)
    if table != "taps" and day.size:
        is_copy[1:] = (rows[spec.key][1:] == rows[spec.key][:-1]) & (rows["true_ts"][1:] == rows["true_ts"][:-1])
    for d in np.unique(row_district):
        sel = row_district == d
        std = standards[(table, int(d))]
        for version in std.bad_units:
            in_version = (day >= std.drift_day) if version else (day < std.drift_day)
            unit_truth.add("unknown_unit", sel & in_version & ~is_copy, rows[spec.key], rows["true_ts"])
        part = {k: v[sel] for k, v in rows.items()}
        for version, ftab in feed_tables(part, std, start_ms=start_ms).items():
            rel = f"raw/feeds/{table}/d{int(d):03d}/v{version}/{chunk}.parquet"
            meta = {"table": table, "district": int(d), "version": version, "chunk": chunk}
            out.append((feed_table_name(table, int(d), version), write_part(root, rel, ftab, meta=meta)))
    if unit_truth.parts:
        truth = pa.concat_tables([truth, unit_truth.table(table)])
    out.append(("defects", write_part(root, f"truth/defects/{table}-{chunk}.parquet", truth)))
    return out


def dictionary_table(standards: dict[tuple[str, int], Standard]) -> pa.Table:
    """The ``feed_dictionary`` table: every district's columns, units and formats by version."""
    rows = [r for key in sorted(standards) for r in standards[key].dictionary_rows()]
    return pa.table({
        "table": pa.array([r["table"] for r in rows], pa.string()),
        "district": pa.array([r["district"] for r in rows], pa.int16()),
        "version": pa.array([r["version"] for r in rows], pa.int16()),
        "valid_from_day": pa.array([r["valid_from_day"] for r in rows], pa.int32()),
        "role": pa.array([r["role"] for r in rows], pa.string()),
        "column": pa.array([r["column"] for r in rows], pa.string()),
        "unit": pa.array([r["unit"] for r in rows], pa.string()),
    })
