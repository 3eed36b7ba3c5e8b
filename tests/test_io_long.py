"""Wide-table options (sentinels, irregular timestamps) and the long-table importer."""

import numpy as np
import pandas as pd
import polars as pl
import pytest

from uda.errors import UserError
from uda.io.long import read_long
from uda.io.wide import read_wide


def _irregular_frame(seed=0, n=400):
    """Timestamps about 5 min apart with jitter, a duplicate, gaps, in shuffled order."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-03-04T00:02:00", "s")
    secs = np.cumsum(rng.integers(60, 600, n)).astype("timedelta64[s]")
    t = start + secs
    t = np.concatenate([t, t[10:11]])  # one repeated timestamp with another value
    v = rng.normal(50, 10, t.size)
    perm = rng.permutation(t.size)
    return t[perm], v[perm]


def _pandas_binned(t, v, freq="5min"):
    s = pd.Series(v, index=pd.DatetimeIndex(t)).sort_index()
    return s.resample(freq).mean()  # floors to the grid from midnight, NaN for empty bins


# --------------------------------------------------------------------------- wide


def test_wide_missing_sentinel(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("a,b\n1,-1\n2,5\n-1,6\n4,-1\n")
    w = read_wide(p, interval="1h", missing=(-1,))
    np.testing.assert_array_equal(np.isnan(w.values), [[0, 0, 1, 0], [1, 0, 0, 1]])
    assert any("3 values equal to -1 read as missing" in n for n in w.notes)
    # by default -1 is detected as a code (no other negative value); missing=() keeps it
    assert np.isnan(read_wide(p, interval="1h").values).sum() == 3
    assert np.nanmin(read_wide(p, interval="1h", missing=()).values) == -1
    w2 = read_wide(p, interval="1h", missing=(-1, 5))
    assert np.isnan(w2.values).sum() == 4


def test_wide_irregular_bins_like_pandas(tmp_path):
    t, v = _irregular_frame()
    df = pl.DataFrame({"timestamp": t.astype("datetime64[ms]"), "s1": v, "s2": 2 * v})
    df.write_csv(tmp_path / "w.csv")
    w = read_wide(tmp_path / "w.csv", interval="5min", irregular=True)
    ref = _pandas_binned(t, v)
    assert w.start == np.datetime64(ref.index[0].to_datetime64(), "s")
    assert w.values.shape == (2, len(ref))
    np.testing.assert_allclose(w.values[0], ref.to_numpy(), equal_nan=True)
    np.testing.assert_allclose(w.values[1], 2 * ref.to_numpy(), equal_nan=True)
    assert any("binned to" in n for n in w.notes)
    # without irregular the same table is still an error
    with pytest.raises(UserError, match="not increasing|not on the"):
        read_wide(tmp_path / "w.csv", interval="5min")


def test_wide_irregular_skips_missing_values_in_bin_mean(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("time,a\n2024-01-01 00:01,10\n2024-01-01 00:03,-1\n2024-01-01 00:04,20\n"
                 "2024-01-01 00:21,7\n")
    w = read_wide(p, interval="5min", irregular=True, missing=(-1,))
    assert w.start == np.datetime64("2024-01-01T00:00")
    np.testing.assert_allclose(w.values[0], [15, np.nan, np.nan, np.nan, 7], equal_nan=True)


# --------------------------------------------------------------------------- long


def test_long_single_series_nab_like(tmp_path):
    t, v = _irregular_frame(seed=1)
    order = np.argsort(t, kind="stable")
    pl.DataFrame({"timestamp": t[order].astype("datetime64[s]").astype(str), "value": v[order]}) \
        .write_csv(tmp_path / "speed_1.csv")
    p = read_long(tmp_path / "speed_1.csv", interval="5min", irregular=True)
    assert p.ids == ["speed_1"] and p.interval_s == 300
    ref = _pandas_binned(t, v)
    np.testing.assert_allclose(p.values[0], ref.to_numpy(), equal_nan=True)
    with pytest.raises(UserError, match="several rows|not on the"):
        read_long(tmp_path / "speed_1.csv", interval="5min")


def test_long_ids_regular_grid_and_parquet(tmp_path):
    base = np.datetime64("2024-01-01T00:00", "s")
    rows = []
    for site, off, n in (("B", 0, 20), ("A", 3, 10)):
        for k in range(n):
            if site == "B" and k == 7:
                continue  # an absent row
            rows.append((site, base + np.timedelta64((off + k) * 900, "s"), float(k) + (100 if site == "A" else 0)))
    df = pl.DataFrame({"siteID": [r[0] for r in rows], "datetime": np.array([r[1] for r in rows], dtype="datetime64[ms]"),
                       "nitrate": [r[2] for r in rows], "other": [1.0] * len(rows)})
    df.write_parquet(tmp_path / "l.parquet")
    p = read_long(tmp_path / "l.parquet", id_column="siteID", value_column="nitrate")
    assert p.ids == ["B", "A"] and p.interval_s == 900  # inferred, first-appearance order
    assert p.values.shape == (2, 20) and p.start == base
    assert np.isnan(p.values[0, 7]) and p.values[0, 8] == 8
    np.testing.assert_array_equal(p.values[1, 3:13], np.arange(10) + 100)
    assert np.isnan(p.values[1, :3]).all() and np.isnan(p.values[1, 13:]).all()
    assert any("absent" in n for n in p.notes)


def test_long_bad_input(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("site,when,v,w\nA,2024-01-01 00:00,1,2\nA,2024-01-01 00:15,2,3\n")
    with pytest.raises(UserError, match="missing column 'x' for --value-col"):
        read_long(f, time_column="when", value_column="x")
    with pytest.raises(UserError, match="missing column 'nope' for --id-col"):
        read_long(f, time_column="when", id_column="nope", value_column="v")
    with pytest.raises(UserError, match="no time column"):
        read_long(f, value_column="v")
    with pytest.raises(UserError, match="name the value column"):
        read_long(f, time_column="when", id_column="site")
    with pytest.raises(UserError, match="cannot read timestamps"):
        read_long(f, time_column="site", value_column="v")
    with pytest.raises(UserError, match="not numeric"):
        read_long(f, time_column="when", value_column="site")
    g = tmp_path / "one.csv"
    g.write_text("time,value\n2024-01-01 00:00,1\n")
    with pytest.raises(UserError, match="pass --interval"):
        read_long(g)
    d = tmp_path / "dup.csv"
    d.write_text("time,value\n2024-01-01 00:00,1\n2024-01-01 00:00,3\n2024-01-01 00:05,2\n")
    with pytest.raises(UserError, match="several rows at 2024-01-01T00:00"):
        read_long(d, interval="5min")
    p = read_long(d, interval="5min", irregular=True)
    np.testing.assert_array_equal(p.values[0], [2, 2])
