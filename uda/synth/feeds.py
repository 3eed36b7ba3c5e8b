"""Department feeds: write a chunk as its true rows, each district's feeds and the defect truth.

With defects, ``uda generate`` keeps the canonical (true) sensor tables in ``truth/`` and
publishes each district's traffic, passenger (taps) and water data as *feeds* under that
district's standard (:mod:`uda.synth.standards`: its own column names, units, timestamp
format and time zone, sensor ID scheme, and a column renamed halfway through the period).
Defects are injected at the profile's rates (:mod:`uda.synth.profiles`,
:mod:`uda.synth.injection`) and every one is written to the ``defects`` truth table.
The layout of the feed files and their manifest metadata is the dataset contract's
(:mod:`uda.contract`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from uda.city import City
from uda.contract import (
    DAY_MS,
    FEED_TABLES,
    GENERATED_TABLES,
    SPECS,
    district_lookup,
    feed_meta,
    feed_table_name,
    start_ms_of,
)
from uda.store import FilePart, write_part
from uda.synth.injection import DefectTruth, inject
from uda.synth.profiles import DefectProfile
from uda.synth.standards import Standard, feed_tables, make_standard


@dataclass(frozen=True)
class FeedSetup:
    """What every chunk's feeds are written with.

    Attributes
    ----------
    profile
        Defect rates.
    standards
        ``(sensor table, district) -> Standard``.
    lookup
        Sensor table -> ``id -> district`` of the city table it refers to (indexed by id).
    seed, start_ms, days
        Dataset seed, first instant (ms, local) and period length.
    """

    profile: DefectProfile
    standards: dict[tuple[str, int], Standard]
    lookup: dict[str, np.ndarray]
    seed: int
    start_ms: int
    days: int


def feed_setup(city: City, profile: DefectProfile, seed: int, tables: tuple[str, ...]) -> FeedSetup:
    """District standards of the generated ``tables`` (``--tables`` names) and the id -> district lookups."""
    sc = city.scale
    standards = {(GENERATED_TABLES[t], d): make_standard(GENERATED_TABLES[t], d, seed=seed, days=sc.days,
                                                         profile=profile)
                 for t in tables if GENERATED_TABLES[t] in FEED_TABLES for d in range(sc.districts)}
    lookup = {t: district_lookup(city.tables[SPECS[t].ref_table], t) for t in FEED_TABLES}
    return FeedSetup(profile, standards, lookup, seed, start_ms_of(sc.start), sc.days)


def write_chunk(root: Path, tab: pa.Table, table: str, chunk: str, setup: FeedSetup) -> list[tuple[str, FilePart]]:
    """Write one chunk's true rows, its feeds (per district and schema version) and its defects.

    Parameters
    ----------
    root
        Dataset folder being written.
    tab
        Canonical rows of the chunk (whole sensors or sites; a day range of taps).
    table, chunk
        Sensor table name and the chunk's file stem (for example ``part-0000200``).
    setup
        Standards, lookups and the defect profile.

    Returns
    -------
    list of (table name, FilePart)
        ``true_<table>``, ``defects`` and one ``feed_*`` entry per district and version.
    """
    spec = SPECS[table]
    lookup = setup.lookup[table]
    start_ms = setup.start_ms

    def district_of(ids: np.ndarray) -> np.ndarray:
        return lookup[np.asarray(ids, np.int64)]

    rows, truth = inject(tab, table, setup.profile, seed=setup.seed, start_ms=start_ms, days=setup.days,
                         district_of=district_of)
    out: list[tuple[str, FilePart]] = [(f"true_{table}", write_part(root, f"truth/{table}/{chunk}.parquet", tab))]
    row_district = district_of(rows["true_station"] if table == "taps" else rows[spec.key])
    unit_truth = DefectTruth(row_district)
    day = (rows["true_ts"] - start_ms) // DAY_MS
    is_copy = np.zeros(day.size, bool)
    if table != "taps" and day.size:
        is_copy[1:] = (rows[spec.key][1:] == rows[spec.key][:-1]) & (rows["true_ts"][1:] == rows["true_ts"][:-1])
    for d in np.unique(row_district):
        sel = row_district == d
        std = setup.standards[(table, int(d))]
        for version in std.bad_units:
            in_version = (day >= std.drift_day) if version else (day < std.drift_day)
            unit_truth.add("unknown_unit", sel & in_version & ~is_copy, rows[spec.key], rows["true_ts"])
        part = {k: v[sel] for k, v in rows.items()}
        for version, ftab in feed_tables(part, std, start_ms=start_ms).items():
            rel = f"raw/feeds/{table}/d{int(d):03d}/v{version}/{chunk}.parquet"
            meta = feed_meta(table, int(d), version, chunk)
            out.append((feed_table_name(table, int(d), version), write_part(root, rel, ftab, meta=meta)))
    if unit_truth.parts:
        truth = pa.concat_tables([truth, unit_truth.table(table)])
    out.append(("defects", write_part(root, f"truth/defects/{table}-{chunk}.parquet", truth)))
    return out

