"""Per (sensor, slot) sums: the Numba kernel and the Dask map step against a pandas reference."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uda.kernels.slots import NAT, slot_sums
from uda.tasks.route import sensor_slots_partition

COLUMNS = ["sensor_id", "slot", "n_obs", "pace_sum", "flow_sum"]


def reference(df: pd.DataFrame, slot_minutes: int) -> pd.DataFrame:
    """The definition with pandas datetime accessors and a group-by."""
    speed = df["speed"].astype("float64")
    ok = speed.notna() & np.isfinite(speed) & (speed > 0) & df["ts"].notna()
    d = df[ok]
    ts = d["ts"]
    part = pd.DataFrame({
        "sensor_id": d["sensor_id"].astype("int32"),
        "slot": ((ts.dt.hour * 60 + ts.dt.minute) // slot_minutes).astype("int32"),
        "n_obs": np.ones(len(d), dtype=np.int64),
        "pace_sum": 3.6 / speed[ok],
        "flow_sum": d["flow"].astype("float64").fillna(0.0),
    })
    return part.groupby(["sensor_id", "slot"], as_index=False, sort=True).sum()[COLUMNS]


def frame(sensor, ts_ms, speed, flow, dtype="float32") -> pd.DataFrame:
    return pd.DataFrame({"sensor_id": np.asarray(sensor, dtype=np.int32),
                         "ts": np.asarray(ts_ms, dtype=np.int64).view("datetime64[ms]"),
                         "speed": np.asarray(speed, dtype=dtype), "flow": np.asarray(flow, dtype=dtype)})


def check(df: pd.DataFrame, slot_minutes: int) -> None:
    got = sensor_slots_partition(df, slot_minutes).reset_index(drop=True)
    want = reference(df, slot_minutes).reset_index(drop=True)
    assert list(got.columns) == COLUMNS
    assert got.dtypes.astype(str).tolist() == ["int32", "int32", "int64", "float64", "float64"]
    np.testing.assert_array_equal(got[["sensor_id", "slot", "n_obs"]].to_numpy(),
                                  want[["sensor_id", "slot", "n_obs"]].to_numpy())
    np.testing.assert_allclose(got["pace_sum"], want["pace_sum"], rtol=1e-12)
    np.testing.assert_allclose(got["flow_sum"], want["flow_sum"], rtol=1e-12)


@pytest.mark.parametrize("slot_minutes", [15, 60, 1440])
def test_random_partition_matches_pandas(slot_minutes):
    rng = np.random.default_rng(7)
    n = 5000
    sensor = rng.integers(100, 140, n)
    ts = rng.integers(1_700_000_000_000, 1_700_000_000_000 + 3 * 86_400_000, n)
    speed = rng.uniform(-5, 90, n)
    speed[rng.random(n) < 0.05] = np.nan
    speed[rng.random(n) < 0.01] = np.inf
    flow = rng.uniform(0, 1800, n)
    flow[rng.random(n) < 0.05] = np.nan
    check(frame(sensor, ts, speed, flow), slot_minutes)
    check(frame(sensor, ts, speed, flow, dtype="float64"), slot_minutes)


def test_times_before_1970_missing_times_and_sparse_ids():
    # minutes of the day from negative ms floor like the datetime accessors do
    ts = [-1, -60_001, -86_400_000 + 30 * 60_000, 0, 59 * 60_000 + 59_999, NAT, 5]
    sensor = [3, 3, 3, 3, 2_000_000_000, 2_000_000_000, 3]
    df = frame(sensor, ts, [10, 20, 30, 40, 50, 60, 0], [1, np.nan, 3, 4, 5, 6, 7])
    assert df["ts"].isna().sum() == 1
    check(df, 60)  # ids 3 and 2e9: keyed by distinct ids, not by the range
    check(df, 1)


def test_empty_and_all_invalid():
    check(frame([], [], [], []), 60)
    check(frame([1, 2], [0, 1], [0, np.nan], [1, 1]), 60)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-3 * 86_400_000, 3 * 86_400_000),
                          st.one_of(st.floats(-10, 200), st.just(np.nan)),
                          st.one_of(st.floats(0, 2000), st.just(np.nan))), max_size=60),
       st.sampled_from([1, 30, 60, 720]))
def test_kernel_against_plain_python(rows, slot_minutes):
    sensor = np.array([r[0] for r in rows], dtype=np.int64)
    ts = np.array([r[1] for r in rows], dtype=np.int64)
    speed = np.array([r[2] for r in rows], dtype=np.float64)
    flow = np.array([r[3] for r in rows], dtype=np.float64)
    n_obs, pace, flows = slot_sums(sensor, ts, speed, flow, 0, 6, slot_minutes)
    slots = 1440 // slot_minutes
    want_n = np.zeros(6 * slots, np.int64)
    want_p = np.zeros(6 * slots)
    want_f = np.zeros(6 * slots)
    for s, t, v, f in rows:
        if not (v > 0 and np.isfinite(v)):
            continue
        k = s * slots + ((t // 60_000) % 1440) // slot_minutes
        want_n[k] += 1
        want_p[k] += 3.6 / v
        want_f[k] += 0.0 if np.isnan(f) else f
    np.testing.assert_array_equal(n_obs, want_n)
    np.testing.assert_allclose(pace, want_p, rtol=1e-12)
    np.testing.assert_allclose(flows, want_f, rtol=1e-12)
