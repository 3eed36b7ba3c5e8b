"""`uda realism`: statistics against independent pandas/NumPy computations, verdicts, CLI and bad input."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.errors import UserError
from uda.forecasting.panel import Panel
from uda.realism.reference import band, compare, load_reference, reference_names, verdict
from uda.realism.signature import coarsen, signature
from uda.realism.stats import STAT_KEYS, STATS, lag_corr, pairwise_corr

DATA = Path(__file__).parent / "data" / "flow"
START = np.datetime64("2024-01-01T00:00", "s")  # a Monday


def _index(T, interval_s=900):
    return pd.date_range(str(START), periods=T, freq=f"{interval_s}s")


def _profile(T, interval_s=900, weekend_shift=30.0):
    idx = _index(T, interval_s)
    hours = idx.hour + idx.minute / 60
    base = 100 + 50 * np.sin(2 * np.pi * (hours - 6) / 24)
    return np.asarray(base + weekend_shift * (idx.day_of_week >= 5))


def _ar1(T, phi, rng, sd=10.0):
    e = rng.normal(0, sd, T)
    x = np.empty(T)
    x[0] = e[0]
    for t in range(1, T):
        x[t] = phi * x[t - 1] + e[t]
    return x


def _pandas_deviation(y, interval_s=900):
    """Deviation from the in-sample mean by (slot of day, weekend), written with pandas."""
    idx = _index(len(y), interval_s)
    df = pd.DataFrame({"y": y, "slot": idx.hour * 60 + idx.minute, "we": idx.day_of_week >= 5})
    return df["y"] - df.groupby(["slot", "we"])["y"].transform("mean"), df


def _strict():
    """Fail on any warning (no "Mean of empty slice" may leak)."""
    cm = warnings.catch_warnings()
    cm.__enter__()
    warnings.simplefilter("error")
    return cm


# --------------------------------------------------------------------------- statistics


def test_ar1_persistence_and_variance_share_match_pandas():
    rng = np.random.default_rng(0)
    T = 28 * 96
    Y = np.stack([_profile(T) + _ar1(T, 0.9, rng) for _ in range(3)])
    cm = _strict()
    try:
        sig = signature(Panel(Y, ["a", "b", "c"], START, 900), per_series=True)
    finally:
        cm.__exit__(None, None, None)
    for k, sid in enumerate("abc"):
        d, df = _pandas_deviation(Y[k])
        mine = sig["series_stats"][sid]
        assert mine["acf_1"] == pytest.approx(d.autocorr(1), abs=1e-9)
        assert mine["acf_1h"] == pytest.approx(d.autocorr(4), abs=1e-9)
        assert mine["acf_1d"] == pytest.approx(d.autocorr(96), abs=1e-9)
        sst = ((df.y - df.y.mean()) ** 2).sum()
        tod = df.y - df.groupby("slot")["y"].transform("mean")
        assert mine["var_tod"] == pytest.approx(1 - (tod ** 2).sum() / sst, abs=1e-9)
        assert mine["var_tod_daytype"] == pytest.approx(1 - (d ** 2).sum() / sst, abs=1e-9)
    # the known property: AR(1) with phi 0.9 has lag-1 autocorrelation 0.9, 0.9**4 at 1 h
    assert sig["stats"]["acf_1"]["median"] == pytest.approx(0.9, abs=0.03)
    assert sig["stats"]["acf_1h"]["median"] == pytest.approx(0.9 ** 4, abs=0.06)
    assert abs(sig["stats"]["acf_1d"]["median"]) < 0.1


def test_pure_periodic_profile_explains_all_variance():
    T = 14 * 96
    y = _profile(T)
    sig = signature(Panel(np.stack([y, 2 * y]), ["a", "b"], START, 900), per_series=True)
    assert sig["stats"]["var_tod_daytype"]["median"] == pytest.approx(1.0, abs=1e-12)
    d, df = _pandas_deviation(y)
    tod = df.y - df.groupby("slot")["y"].transform("mean")
    expect = 1 - (tod ** 2).sum() / ((df.y - df.y.mean()) ** 2).sum()
    assert sig["stats"]["var_tod"]["median"] == pytest.approx(expect, abs=1e-12) and expect < 0.95
    # weekend level 30 above the weekday one: the contrast shows
    we = df.index[(_index(T).day_of_week >= 5)]
    ratio = y[we].mean() / np.delete(y, we).mean()
    assert sig["series_stats"]["a"]["weekend_ratio"] == pytest.approx(ratio, rel=1e-12)
    assert sig["series_stats"]["a"]["weekend_profile_corr"] == pytest.approx(1.0, abs=1e-12)
    # a perfect profile: the average forecasts without error, the ratio is undefined
    assert sig["stats"]["ratio_15"]["median"] is None


def _ratio_reference(y, h, interval_s=900):
    """MAE of last value over HA (slot x weekend) and HA (slot), written as plain loops."""
    idx = _index(len(y), interval_s)
    slot = np.asarray(idx.hour * 60 + idx.minute)
    we = np.asarray(idx.day_of_week >= 5)
    split = int(0.8 * len(y))
    ha, ha_tod = {}, {}
    for t in range(split):
        ha.setdefault((slot[t], we[t]), []).append(y[t])
        ha_tod.setdefault(slot[t], []).append(y[t])
    e_lv, e_ha, e_tod = [], [], []
    for t in range(split, len(y)):
        if (slot[t], we[t]) not in ha:
            continue
        e_lv.append(abs(y[t] - y[t - h]))
        e_ha.append(abs(y[t] - np.mean(ha[(slot[t], we[t])])))
        e_tod.append(abs(y[t] - np.mean(ha_tod[slot[t]])))
    return np.mean(e_lv) / np.mean(e_ha), np.mean(e_lv) / np.mean(e_tod)


def test_last_value_over_average_ratios_match_loops():
    rng = np.random.default_rng(3)
    T = 21 * 96
    y = _profile(T) + _ar1(T, 0.95, rng, sd=5) + rng.normal(0, 3, T)
    sig = signature(Panel(y[None], ["s"], START, 900), per_series=True)
    got = sig["series_stats"]["s"]
    for minutes, h in ((15, 1), (30, 2), (60, 4)):
        r, r_tod = _ratio_reference(y, h)
        assert got[f"ratio_{minutes}"] == pytest.approx(r, rel=1e-9)
        assert got[f"ratio_tod_{minutes}"] == pytest.approx(r_tod, rel=1e-9)
    # persistent deviations: the last value wins at 15 min, less so at 60 min
    assert got["ratio_15"] < 0.9 < got["ratio_60"] or got["ratio_15"] < got["ratio_60"]


def test_missing_runs_values_and_quantiles():
    rng = np.random.default_rng(5)
    T = 7 * 96
    y = _profile(T) + rng.normal(0, 5, T)
    y[10:13] = np.nan          # a run of 3 steps
    y[200:207] = np.nan        # a run of 7
    y[300] = 0.0
    sig = signature(Panel(y[None], ["s"], START, 900), per_series=True)
    got = sig["series_stats"]["s"]
    assert got["missing"] == pytest.approx(10 / T)
    assert got["gap_median_h"] == pytest.approx(5 * 0.25)  # median of 3 and 7 steps, 15 min each
    assert got["gap_max_h"] == pytest.approx(7 * 0.25)
    v = y[~np.isnan(y)]
    q = np.quantile(v, [0.05, 0.5, 0.95]) / v.mean()
    assert [got["q05"], got["q50"], got["q95"]] == pytest.approx(list(q))
    assert got["cv"] == pytest.approx(v.std() / v.mean())
    assert got["zeros"] == pytest.approx(1 / v.size)


def test_lag_and_pairwise_correlation_match_pandas_with_gaps():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4, 300)).cumsum(1)
    X[rng.random(X.shape) < 0.1] = np.nan
    for k in (1, 5, 40):
        np.testing.assert_allclose(lag_corr(X, k), [pd.Series(r).autocorr(k) for r in X], atol=1e-10)
    R = pairwise_corr(X)
    ref = pd.DataFrame(X.T).corr().to_numpy().copy()
    np.fill_diagonal(ref, np.nan)
    np.testing.assert_allclose(R, ref, atol=1e-10)
    assert np.isnan(lag_corr(X[:, :20], 5)).all()  # fewer than 30 pairs: n/a


def test_neighbour_correlation_given_adjacency_and_most_correlated():
    rng = np.random.default_rng(4)
    T = 14 * 96
    common = _ar1(T, 0.9, rng)
    Y = np.stack([_profile(T) + common + rng.normal(0, 2, T), _profile(T) + common + rng.normal(0, 2, T),
                  _profile(T) + _ar1(T, 0.9, rng)])
    indptr, indices = np.array([0, 1, 2, 2]), np.array([1, 0])  # 0 <-> 1, 2 alone
    sig = signature(Panel(Y, ["a", "b", "c"], START, 900, indptr, indices), per_series=True)
    assert sig["neighbours"] == "given adjacency"
    d0, _ = _pandas_deviation(Y[0])
    d1, _ = _pandas_deviation(Y[1])
    assert sig["series_stats"]["a"]["nbr_corr_dev"] == pytest.approx(d0.corr(d1), abs=1e-9)
    assert sig["series_stats"]["a"]["nbr_corr"] == pytest.approx(np.corrcoef(Y[0], Y[1])[0, 1], abs=1e-9)
    assert sig["series_stats"]["c"]["nbr_corr"] is None
    top = signature(Panel(Y, ["a", "b", "c"], START, 900), neighbours=1, per_series=True)
    assert "1 most correlated" in top["neighbours"]
    assert top["series_stats"]["c"]["nbr_corr"] == pytest.approx(
        max(np.corrcoef(Y[2], Y[0])[0, 1], np.corrcoef(Y[2], Y[1])[0, 1]), abs=1e-9)
    none = signature(Panel(Y, ["a", "b", "c"], START, 900), neighbours=0)
    assert none["stats"]["nbr_corr"]["median"] is None


def test_constant_short_and_hourly_tables():
    rng = np.random.default_rng(1)
    T = 96 // 2  # half a day
    Y = np.stack([np.full(T, 7.0), rng.normal(10, 1, T)])
    cm = _strict()
    try:
        sig = signature(Panel(Y, ["flat", "x"], START, 900))
    finally:
        cm.__exit__(None, None, None)
    assert sig["series_used"] == 1
    assert any("constant" in n and "flat" in n for n in sig["notes"])
    assert sig["stats"]["acf_1d"]["median"] is None and sig["stats"]["var_tod"]["median"] is None
    with pytest.raises(UserError, match="every series is constant"):
        signature(Panel(np.full((2, 50), 3.0), ["a", "b"], START, 900))
    # hourly: 15 and 30 min are not whole steps; 1 h is one step
    h = signature(Panel(rng.normal(10, 1, (1, 24 * 20)), ["s"], START, 3600))
    assert h["stats"]["ratio_15"]["median"] is None and h["stats"]["ratio_60"]["median"] is not None


def test_coarsen_averages_steps():
    Y = np.arange(12, dtype=float)[None]
    Y[0, 4] = np.nan
    p = coarsen(Panel(Y, ["s"], START, 300), 900)
    np.testing.assert_allclose(p.values[0], [1, 4, 7, 10])  # (3 + 5) / 2 around the gap
    with pytest.raises(UserError, match="not a multiple"):
        coarsen(Panel(Y, ["s"], START, 600), 900)


# --------------------------------------------------------------------------- verdicts, references


def test_bands_and_verdicts():
    st = {s.key: s for s in STATS}
    ref = {"median": 0.5, "q25": 0.4, "q75": 0.6, "n": 9}
    assert band(st["acf_1"], ref) == pytest.approx((0.3, 0.7))
    assert band(st["ratio_15"], ref) == pytest.approx((0.4 / 1.15, 0.6 * 1.15))
    assert band(st["missing"], {"median": 0.0, "q25": 0.0, "q75": 0.0, "n": 3}) == pytest.approx((0.0, 0.03))
    assert verdict(0.71, (0.3, 0.7)) == "high" and verdict(0.29, (0.3, 0.7)) == "low"
    assert verdict(0.5, (0.3, 0.7)) == "ok" and verdict(None, (0.3, 0.7)) == "n/a"
    rows = compare({"stats": {"acf_1": {"median": 0.9}}}, {"stats": {"acf_1": ref}})
    assert {r["key"]: r["verdict"] for r in rows}["acf_1"] == "high"
    assert {r["key"]: r["verdict"] for r in rows}["acf_1h"] == "n/a"


def test_committed_signatures_are_complete():
    names = reference_names()
    assert {"scats", "pedestrian", "nab_speed", "nab_occupancy", "nab_traveltime"} <= set(names)
    for n in names:
        sig = load_reference(n)
        assert set(sig["stats"]) == set(STAT_KEYS), n
        assert sig["source"] and len(sig["curves"]["acf"]) == len(sig["curves"]["acf_lag_hours"])
    scats = load_reference("scats")
    assert scats["series_used"] == 140 and scats["interval_s"] == 900
    # SCATS counts: a profile with weekdays apart beats the last value even at 15 min
    assert scats["stats"]["ratio_15"]["median"] > 1 > scats["stats"]["ratio_tod_15"]["median"]


# --------------------------------------------------------------------------- CLI


def _run(*args):
    return CliRunner().invoke(cli, ["realism", *args])


def _bad(*args, match):
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert "Error:" in res.output and match in res.output, res.output
    assert "Traceback" not in res.output


def _wide(tmp_path, days=14, interval_s=900, seed=0):
    rng = np.random.default_rng(seed)
    T = days * 86400 // interval_s
    cols = {f"s{k}": _profile(T, interval_s) + _ar1(T, 0.9, rng) for k in range(4)}
    df = pl.DataFrame({"time": _index(T, interval_s).to_numpy(), **cols})
    df.write_csv(tmp_path / "w.csv")
    return tmp_path / "w.csv"


def test_cli_wide_json_against_reference(tmp_path):
    f = _wide(tmp_path)
    res = _run("--wide", str(f), "--interval", "15min", "--ref", "scats", "--json",
               "--out", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out) == {"subject", "reference", "comparison", "verdicts"}
    assert set(out["subject"]["stats"]) == set(STAT_KEYS)
    assert {"median", "q25", "q75", "n"} == set(out["subject"]["stats"]["acf_1"])
    assert [r["key"] for r in out["comparison"]] == list(STAT_KEYS)
    assert sum(out["verdicts"].values()) == len(STATS)
    assert out["subject"]["stats"]["acf_1"]["median"] == pytest.approx(0.9, abs=0.05)
    # the saved report serves as a reference for another table
    res2 = _run("--wide", str(f), "--interval", "15min", "--ref", str(tmp_path / "r.json"), "--json")
    assert json.loads(res2.output)["verdicts"]["ok"] == len(STATS) - json.loads(res2.output)["verdicts"]["n/a"]


def test_cli_human_table_and_plot(tmp_path):
    f = _wide(tmp_path, days=8)
    res = _run("--wide", str(f), "--interval", "15min", "--ref", "nab_speed", "--plot", str(tmp_path / "p.png"))
    assert res.exit_code == 0, res.output
    assert "ACF lag 1 h" in res.output and "verdict" in res.output
    assert "statistics within the band" in res.output
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    res = _run("--wide", str(f), "--interval", "15min")  # no reference: one column
    assert res.exit_code == 0 and "verdict" not in res.output


def test_cli_long_libcity_and_data(tmp_path, tiny_dataset):
    rng = np.random.default_rng(1)
    T = 10 * 288
    t = _index(T, 300).to_numpy() + rng.integers(0, 240, T).astype("timedelta64[s]")
    y = _profile(T, 300) + _ar1(T, 0.95, rng)
    pl.DataFrame({"timestamp": t, "value": y}).write_csv(tmp_path / "speed_1.csv")
    res = _run("--long", str(tmp_path / "speed_1.csv"), "--interval", "5min", "--irregular", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)["subject"]
    assert out["series_used"] == 1 and out["neighbours"].startswith("none")
    res = _run("--libcity", str(DATA / "libcity"), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["subject"]["neighbours"] == "given adjacency"
    res = _run("--data", str(tiny_dataset), "--target", "speed", "--ref", "nab_speed", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["subject"]["interval_s"] == 300 and out["subject"]["neighbours"] == "given adjacency"
    res = _run("--data", str(tiny_dataset), "--target", "stations", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["subject"]["interval_s"] == 900


def test_cli_bad_input(tmp_path):
    f = _wide(tmp_path, days=3)
    _bad(match="exactly one input")
    _bad("--wide", str(f), "--libcity", str(DATA / "libcity"), "--interval", "15min", match="exactly one input")
    _bad("--wide", str(f), match="needs --interval")
    _bad("--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", match="no time axis")
    _bad("--wide", str(f), "--interval", "15min", "--ref", "atlantis", match="unknown reference")
    _bad("--wide", str(f), "--interval", "15min", "--missing", "x", match="cannot read --missing")
    _bad("--wide", str(f), "--interval", "15min", "--plot", str(tmp_path / "p.pdf"), match="PNG")
    _bad("--wide", str(f), "--interval", "15min", "--resample", "20min", match="not a multiple")
    _bad("--wide", str(f), "--interval", "15min", "--neighbours", "-1", match="--neighbours")
    (tmp_path / "flat.csv").write_text("time,a,b\n" + "".join(
        f"2024-01-01 {h:02d}:00,5,5\n" for h in range(24)))
    _bad("--wide", str(tmp_path / "flat.csv"), "--interval", "1h", match="every series is constant")
    (tmp_path / "l.csv").write_text("when,v\n2024-01-01 00:00,1\n")
    _bad("--long", str(tmp_path / "l.csv"), match="no time column")
    _bad("--long", str(tmp_path / "l.csv"), "--time-col", "when", "--value-col", "w", match="missing column 'w'")
    (tmp_path / "bad.json").write_text("{\"x\": 1}")
    _bad("--wide", str(f), "--interval", "15min", "--ref", str(tmp_path / "bad.json"), match="not a signature")
    # a wide table without a time axis is fine when --start says where it begins
    res = _run("--wide", str(DATA / "wide_ids.csv"), "--interval", "1h", "--start", "2024-01-01T00:00")
    assert res.exit_code == 0, res.output
