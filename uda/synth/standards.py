"""District standards: each district's own column names, units, id schemes and timestamp formats.

A :class:`Standard` says how one district publishes one sensor table (with a column
renamed halfway through the period: schema drift); :func:`feed_tables` writes canonical
rows under it and :func:`dictionary_table` describes every standard in the
``feed_dictionary`` table that readers parse feeds by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from uda.contract import DAY_MS, LOCAL_UTC_OFFSET_S, SPECS, TIME_FORMATS, UNITS
from uda.kernels.rng import rng_for
from uda.synth.profiles import DefectProfile

#: Unit spellings a department might use that the standardiser does not know.
UNKNOWN_UNITS = {"flow": "veh/hr", "speed": "kph", "occupancy": "percent", "temperature_c": "Celsius",
                 "ph": "units", "do_mgl": "ppm", "turbidity_ntu": "FNU", "conductivity_uscm": "umho/cm",
                 "nitrate_mgl": "mg N/L", "ammonia_mgl": "ppm"}
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
    day = (rows["true_ts"] - start_ms) // DAY_MS
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
