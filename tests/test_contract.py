"""The dataset contract (uda/contract.py) is what ``uda generate`` writes."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from uda.contract import (
    FEED_META_KEYS,
    RANGE_KEYS,
    SPECS,
    TRAFFIC_INTERVAL_S,
    WATER_ALL_PARAMETERS,
    WATER_INTERVAL_S,
    WATER_PARAMETERS,
    district_lookup,
    feed_table_name,
    partitioned_by,
    start_ms_of,
)
from uda.generate import generate
from uda.scales import resolve_scale
from uda.store import open_dataset


@pytest.fixture(scope="module")
def feeds_dataset(tmp_path_factory):
    """Two days of a tiny city published as department feeds."""
    out = tmp_path_factory.mktemp("contract") / "feeds"
    generate(out, scale=resolve_scale("tiny", days=2, cards=200), seed=3, workers=1, defects="realistic")
    return open_dataset(out)


def test_generated_tables_follow_the_specs(tiny_dataset):
    ds = open_dataset(tiny_dataset)
    for table, spec in SPECS.items():
        cols = ds.tables[table]["schema"]
        assert {spec.key, spec.ref, "ts", *spec.values} <= set(cols), table
        # the reference resolves against the city table the spec names, which has a district
        city = ds.read(spec.ref_table)
        assert {spec.ref, "district_id"} <= set(city.columns)
        refs = ds.read(table)[spec.ref].unique().to_numpy()
        assert np.isin(refs, city[spec.ref].to_numpy()).all()
    assert ds.tables["water"]["schema"].keys() >= set(WATER_ALL_PARAMETERS)
    assert SPECS["water"].values == WATER_PARAMETERS
    # sampling intervals: consecutive readings of a sensor (site) are one interval apart
    assert (SPECS["traffic"].interval_s, SPECS["water"].interval_s) == (TRAFFIC_INTERVAL_S, WATER_INTERVAL_S)
    regular = [table for table, spec in SPECS.items() if spec.interval_s]
    assert {"traffic", "water"} <= set(regular)
    for table in regular:
        step = SPECS[table].interval_s
        ts = ds.scan(table).filter(pl.col(SPECS[table].key) == 0).select(pl.col("ts").cast(pl.Int64)).collect()["ts"]
        assert set(ts.diff().drop_nulls().unique().to_list()) == {step * 1000}
        assert ts.min() == start_ms_of(ds.params["start"])  # midnight of the first day, local time
        assert ds.params[f"{table}_interval_s"] == step  # the manifest records it


def test_file_metadata_carries_the_contract_keys(tiny_dataset, feeds_dataset):
    ds = open_dataset(tiny_dataset)
    for table, (lo, hi) in RANGE_KEYS.items():
        entry = ds.tables[table]
        assert entry["partitioned_by"] == partitioned_by(table)
        for f in entry["files"]:
            assert f[lo] <= f[hi]
    feeds = [name for name in feeds_dataset.tables if name.startswith("feed_") and name != "feed_dictionary"]
    assert feeds
    for name in feeds:
        for f in feeds_dataset.tables[name]["files"]:
            meta = {k: f[k] for k in FEED_META_KEYS}
            assert feed_table_name(meta["table"], meta["district"], meta["version"]) == name
            assert f["path"].endswith(f"/{meta['chunk']}.parquet")
    assert feeds_dataset.tables["defects"]["partitioned_by"] == "chunk"


@pytest.mark.parametrize("frame", ["polars", "arrow"])
def test_district_lookup_maps_ids_to_their_district(frame):
    ids, districts = [4, 0, 2], [1, 3, 0]
    data = {"station_id": ids, "district_id": districts}
    city = pl.DataFrame(data) if frame == "polars" else pa.table(data)
    lut = district_lookup(city, "taps")
    assert lut.tolist() == [3, -1, 0, -1, 1]
    assert lut.dtype == np.int64
    empty = {"sensor_id": pa.array([], pa.int32()), "district_id": pa.array([], pa.int16())}
    assert district_lookup(pl.DataFrame(empty) if frame == "polars" else pa.table(empty), "traffic").size == 0


def test_district_lookup_matches_the_generated_city(feeds_dataset):
    truth = feeds_dataset.read("defects")
    for table in ("traffic", "water"):  # (a tap's defect is keyed by card, its district the station's)
        lut = district_lookup(feeds_dataset.read(SPECS[table].ref_table), table)
        rows = truth.filter(pl.col("table") == table)
        assert rows.height > 0
        assert (lut[rows["key"].to_numpy()] == rows["district"].to_numpy()).all(), table
