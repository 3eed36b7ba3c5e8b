"""The dataset contract: what a generated dataset holds, for its writer and every reader.

The generator (:mod:`uda.generate`, :mod:`uda.synth`) writes to this contract and the
readers (standardisation, quality, utilisation, the tasks) read by it; neither learns it
from the other. It holds

* the sensor tables' specs (:class:`TableSpec`, :data:`SPECS`): the key of a series, the
  column that refers to a city table and that table (:attr:`TableSpec.ref`,
  :attr:`TableSpec.ref_table`), the sampling interval, the value columns with their
  physical ranges;
* sampling intervals (:data:`TRAFFIC_INTERVAL_S`, :data:`WATER_INTERVAL_S`), the water
  parameters (:data:`WATER_PARAMETERS`), the city's time zone, units and their
  conversions (:data:`UNITS`), the timestamp formats of department feeds;
* the defect types each table can carry and the thresholds their truth is recorded by;
* the keys of the per-file metadata in ``manifest.json`` (:data:`RANGE_KEYS`,
  :data:`FEED_META_KEYS`), feed table names, and :func:`district_lookup`.

This module imports only the standard library at load time: ``uda --help`` reads it
through :mod:`uda.scales`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# --------------------------------------------------------------------------- time

#: Sampling interval of the traffic series (5 min) and of the water series (15 min), in seconds.
TRAFFIC_INTERVAL_S = 300
WATER_INTERVAL_S = 900
#: Milliseconds in a day (timestamps are epoch milliseconds).
DAY_MS = 86_400_000
#: The city's local standard time is UTC+01:00; canonical timestamps are naive local standard time.
LOCAL_UTC_OFFSET_S = 3600


def start_ms_of(start: str) -> int:
    """Midnight of ISO date ``start`` in ms since the epoch (local standard time, naive)."""
    return (dt.date.fromisoformat(start) - dt.date(1970, 1, 1)).days * DAY_MS


# --------------------------------------------------------------------------- water parameters

#: Water parameters every water reader knows, in the column order every kernel sees.
WATER_PARAMETERS = ("temperature_c", "ph", "do_mgl", "turbidity_ntu", "conductivity_uscm", "nitrate_mgl",
                    "ammonia_mgl")
#: Further columns of the generated water table: residual chlorine, redox potential, river discharge.
WATER_EXTRA_PARAMETERS = ("chlorine_mgl", "orp_mv", "discharge_m3s")
#: Every value column of the generated water table, in file order.
WATER_ALL_PARAMETERS = WATER_PARAMETERS + WATER_EXTRA_PARAMETERS

# --------------------------------------------------------------------------- sensor tables


@dataclass(frozen=True)
class TableSpec:
    """Canonical shape of a sensor table as far as feeds and quality are concerned.

    Attributes
    ----------
    name
        Table name (``traffic``, ``water``, ``taps``).
    key
        Column naming the unit of a series (sensor, site, card).
    ref
        Column that must resolve against a city table ...
    ref_table
        ... and that city table (its ``ref`` column is the id, ``district_id`` the owner).
    interval_s
        Sampling interval in seconds; 0 for event tables (taps).
    values
        Measured value columns.
    ranges
        Physically possible ``(low, high)`` of each value column.
    drift
        The column a drifting sensor drifts in.
    stuck_run
        Rows in a stuck run (including the genuine first reading).
    feeds
        Departments publish the table as district feeds (with ``--defects``, its canonical
        rows go to ``truth/`` and the feeds to ``raw/``); ``False`` keeps it canonical in ``raw/``.
    """

    name: str
    key: str
    ref: str
    ref_table: str
    interval_s: int
    values: tuple[str, ...]
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    drift: str = ""
    stuck_run: int = 0
    feeds: bool = True


SPECS: dict[str, TableSpec] = {
    "traffic": TableSpec("traffic", "sensor_id", "sensor_id", "sensors", TRAFFIC_INTERVAL_S,
                         ("flow", "speed", "occupancy"),
                         {"flow": (0.0, 12000.0), "speed": (0.0, 160.0), "occupancy": (0.0, 1.0)},
                         drift="speed", stuck_run=6),
    "water": TableSpec("water", "site_id", "site_id", "water_sites", WATER_INTERVAL_S, WATER_PARAMETERS,
                       {"temperature_c": (-10.0, 45.0), "ph": (0.0, 14.0), "do_mgl": (0.0, 25.0),
                        "turbidity_ntu": (0.0, 4000.0), "conductivity_uscm": (0.0, 20000.0),
                        "nitrate_mgl": (0.0, 200.0), "ammonia_mgl": (0.0, 100.0)},
                       drift="do_mgl", stuck_run=4),
    "taps": TableSpec("taps", "card_id", "station_id", "stations", 0, ()),
}
#: ``uda generate --tables`` name -> the sensor table it writes.
GENERATED_TABLES = {"traffic": "traffic", "passenger": "taps", "water": "water"}
#: Sensor tables that departments publish as district feeds (standardise reads them).
FEED_TABLES = tuple(name for name in GENERATED_TABLES.values() if SPECS[name].feeds)

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
#: Timestamp formats of feeds: name -> strftime/strptime pattern ('' for numeric or native columns).
TIME_FORMATS = {
    "native": "",                                   # timestamp[ms], local standard time
    "iso_offset": "%Y-%m-%dT%H:%M:%S+01:00",        # local standard time with its offset
    "iso_utc": "%Y-%m-%dT%H:%M:%SZ",                # UTC
    "dmy_local": "%d/%m/%Y %H:%M",                  # local standard time, minutes
    "epoch_s": "",                                  # int64 seconds since 1970, UTC
    "iso_offset_ms": "%Y-%m-%dT%H:%M:%S%.3f+01:00",  # taps: with milliseconds
    "epoch_ms": "",                                 # taps: int64 ms since 1970, UTC
}

# --------------------------------------------------------------------------- defects

#: A record is late when it arrives more than this after its (true) measurement time.
LATE_AFTER_S = 3600
#: A drifting sensor's rows count as drifted where the bias reaches this fraction.
DRIFT_MIN = 0.10
#: Defect types, in the order they are applied (the ``type`` of ``truth/defects``).
DEFECT_TYPES = ("drift", "stuck", "spike", "missing", "duplicate", "clock_skew", "late", "bad_reference",
                "unknown_unit")
#: Defect types each table can carry.
TABLE_DEFECTS = {
    "traffic": ("drift", "stuck", "spike", "missing", "duplicate", "clock_skew", "late", "unknown_unit"),
    "water": ("drift", "stuck", "spike", "missing", "duplicate", "clock_skew", "late", "unknown_unit"),
    "taps": ("duplicate", "late", "bad_reference"),
}

# --------------------------------------------------------------------------- manifest file metadata

#: Per-file metadata of a generated table's files in ``manifest.json``: the least and
#: greatest unit (sensor, site) or day a file holds. Readers plan their partitions by them.
RANGE_KEYS: dict[str, tuple[str, str]] = {
    "traffic": ("sensor_min", "sensor_max"),
    "water": ("site_min", "site_max"),
    "taps": ("day_min", "day_max"),
    "trips": ("day_min", "day_max"),
}
#: Per-file metadata of a department feed file: its sensor table, district, schema version and chunk.
FEED_META_KEYS = ("table", "district", "version", "chunk")


def partitioned_by(name: str) -> str:
    """What each file of generated table ``name`` holds whole (the manifest's ``partitioned_by``).

    ``sensor`` (traffic tables), ``site`` (water tables), ``day`` (taps and trips) or
    ``chunk`` (``defects``, one file per generated chunk); feed and ``true_*`` tables are
    partitioned as their sensor table.
    """
    if name == "defects":
        return "chunk"
    if name in RANGE_KEYS:
        return RANGE_KEYS[name][0].removesuffix("_min")
    return "day" if "taps" in name else ("site" if "water" in name else "sensor")


def chunk_stem(table: str, first: int) -> str:
    """File stem of the chunk of generated ``table`` that starts at unit or day ``first``
    (``part-0000200`` for sensors and sites, ``part-00003`` for days)."""
    return f"part-{first:05d}" if partitioned_by(table) == "day" else f"part-{first:07d}"


def range_meta(table: str, first: int, last: int) -> dict[str, int]:
    """The :data:`RANGE_KEYS` metadata of a file of ``table`` holding ``first`` .. ``last`` (inclusive)."""
    lo, hi = RANGE_KEYS[table]
    return {lo: first, hi: last}


def feed_meta(table: str, district: int, version: int, chunk: str) -> dict[str, Any]:
    """The :data:`FEED_META_KEYS` metadata of one district's feed file."""
    return dict(zip(FEED_META_KEYS, (table, district, version, chunk), strict=True))


def feed_table_name(table: str, district: int, version: int) -> str:
    """Manifest name of one district's feed of ``table`` in schema ``version``."""
    return f"feed_{table}_d{district:03d}_v{version}"


# --------------------------------------------------------------------------- districts


def district_lookup(city_table: Any, table: str) -> np.ndarray:
    """``id -> district`` of the city table that sensor table ``table`` refers to, indexed by id.

    Parameters
    ----------
    city_table
        The city table ``SPECS[table].ref_table`` (``sensors``, ``water_sites`` or
        ``stations``) as a Polars DataFrame or an Arrow table: its ``SPECS[table].ref``
        column holds the ids and ``district_id`` their districts.
    table
        Sensor table name (``traffic``, ``water``, ``taps``).

    Returns
    -------
    numpy.ndarray
        int64, of length ``max id + 1``; ``-1`` for ids the city table does not hold.
    """
    import numpy as np  # here, not at load time: the contract is read by ``uda --help``

    ids = np.asarray(city_table[SPECS[table].ref].to_numpy()).astype(np.int64)
    out = np.full(int(ids.max(initial=-1)) + 1, -1, np.int64)
    out[ids] = np.asarray(city_table["district_id"].to_numpy())
    return out
