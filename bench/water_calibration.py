"""Calibration of the synthetic water model: the same statistics on real tables and on a generated city.

Real: ``water_gecco2017.parquet`` (1-min drinking-water network, 70 labelled events) and
``neon_water_quality.parquet`` (15-min streams, 3 sites) from ``../shared/data/real``
(or ``--real DIR``). Generated: the in-memory water table of a ``small`` city (``--days``,
default 60). Prints a Markdown table (statistic, real, generated, band, ok); ``--json``
for machines. Exit code 1 if a statistic falls outside its band.

Run: ``python bench/water_calibration.py``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

from uda.city import build_city
from uda.contract import WATER_ALL_PARAMETERS, WATER_INTERVAL_S
from uda.scales import resolve_scale
from uda.synth import water
from uda.synth.plan import Plan
from uda.synth.water_stats import daily_range, event_shifts, flow_rank_corr, lag1, runs, spike_rate

HERE = Path(__file__).resolve().parent
GECCO_PARAMS = ("Tp", "Cl", "pH", "Redox", "Leit", "Trueb", "Cl_2", "Fm", "Fm_2")
NEON = {"temperature": "temperature_c", "dissolved_oxygen": "do_mgl", "specific_conductance": "conductivity_uscm",
        "turbidity": "turbidity_ntu", "nitrate": "nitrate_mgl"}


def gecco(path: Path) -> dict[str, float]:
    g = pl.read_parquet(path)
    ev = g["EVENT"].to_numpy()
    start, length = runs(ev)
    x = {c: g[c].cast(pl.Float64).to_numpy() for c in GECCO_PARAMS}
    moved = np.zeros(start.size)
    for c in GECCO_PARAMS:
        moved += np.nan_to_num(event_shifts(x[c], start, length, before=60)) > 3.0
    out = {"event_share": float(ev.mean()), "events_per_day": start.size / (g.height / 1440),
           "duration_median_min": float(np.median(length)), "duration_min_min": float(length.min()),
           "duration_max_min": float(length.max()), "duration_le30_share": float(np.mean(length <= 30)),
           "params_moved_3sd": float(moved.mean())}
    for c, name in (("pH", "ph"), ("Redox", "orp_mv"), ("Cl_2", "chlorine_mgl"), ("Fm", "discharge_m3s")):
        n = x[c].size // 15 * 15
        with np.errstate(invalid="ignore"), __import__("warnings").catch_warnings():
            __import__("warnings").simplefilter("ignore", RuntimeWarning)
            x15 = np.nanmean(x[c][:n].reshape(-1, 15), axis=1)
        out[f"lag1_15min_{name}"] = lag1(x15)
    miss = np.isnan(x["Tp"])
    out["missing_share"] = float(miss.mean())
    return out


def neon(path: Path) -> dict[str, float]:
    n = pl.read_parquet(path).sort("siteID", "datetime")
    per: dict[str, list[float]] = {}
    for (_site,), df in n.group_by("siteID", maintain_order=True):
        t = df["datetime"].dt.epoch("s").to_numpy() // 900
        slot = t - t[0]
        grid = {}
        for c in (*NEON, "elevation"):
            v = np.full(int(slot[-1]) + 1, np.nan)
            v[slot] = df[c].to_numpy()
            grid[c] = v
        off = int(t[0] % 96)
        pad = {c: np.r_[np.full(off, np.nan), v] for c, v in grid.items()}
        miss = np.isnan(grid["temperature"])
        _, lens = runs(miss)
        vals = {"missing_share": float(miss.mean()), "missing_run_median_slots": float(np.median(lens))}
        for c, name in NEON.items():
            vals[f"lag1_15min_{name}"] = lag1(grid[c])
            vals[f"spike_rate_{name}"] = spike_rate(grid[c])
        vals["daily_range_temperature_c"] = daily_range(pad["temperature"], 96)
        vals["daily_range_do_mgl"] = daily_range(pad["dissolved_oxygen"], 96)
        vals["flow_corr_turbidity_ntu"] = flow_rank_corr(grid["turbidity"], grid["elevation"])
        vals["flow_corr_conductivity_uscm"] = flow_rank_corr(grid["specific_conductance"], grid["elevation"])
        for k, v in vals.items():
            per.setdefault(k, []).append(v)
    return {k: float(np.nanmedian(v)) for k, v in per.items()} | \
        {f"{k}_range": [float(np.nanmin(v)), float(np.nanmax(v))] for k, v in per.items()}


def generated(days: int, seed: int) -> dict[str, float]:
    """The same statistics on a generated ``small`` city (per site, then the median)."""
    sc = resolve_scale("small", days=days)
    city = build_city(sc, seed)
    plan = Plan(city, seed)
    n_sites = city.tables["water_sites"].num_rows
    vals = plan.water_plan.values(0, n_sites).astype(np.float64)
    per_site = days * water.SLOTS
    truth = plan.water_plan.truth()
    ar = truth["event_arrivals"]
    short = ar["event_type"] == "short_event"
    dur_min = (ar["end_s"][short] - ar["start_s"][short]) / 60.0
    slot = float(WATER_INTERVAL_S)
    # share of time inside a quality event, on a 1-minute grid (the GECCO rows' resolution)
    in_event = np.zeros((n_sites, days * 1440), bool)
    for s, a, b in zip(ar["site_id"], ar["start_s"], ar["end_s"], strict=True):
        in_event[s, int(np.floor(a / 60)):int(np.ceil(b / 60))] = True
    moved = []
    per: dict[str, list[float]] = {}
    for s in range(n_sites):
        x = {p: vals[j, s * per_site:(s + 1) * per_site] for j, p in enumerate(WATER_ALL_PARAMETERS)}
        mine = short & (ar["site_id"] == s)
        r0 = np.floor(ar["start_s"][mine] / slot).astype(np.int64)
        r1 = np.ceil(ar["end_s"][mine] / slot).astype(np.int64)
        m = np.zeros(r0.size)
        for p in WATER_ALL_PARAMETERS:
            m += np.nan_to_num(event_shifts(x[p], r0, r1 - r0, before=4)) > 3.0
        moved.append(m)
        v = {f"lag1_15min_{p}": lag1(x[p]) for p in WATER_ALL_PARAMETERS}
        v |= {f"spike_rate_{p}": spike_rate(x[p]) for p in NEON.values()}
        v["daily_range_temperature_c"] = daily_range(x["temperature_c"], 96)
        v["daily_range_do_mgl"] = daily_range(x["do_mgl"], 96)
        v["flow_corr_turbidity_ntu"] = flow_rank_corr(x["turbidity_ntu"], x["discharge_m3s"])
        v["flow_corr_conductivity_uscm"] = flow_rank_corr(x["conductivity_uscm"], x["discharge_m3s"])
        for k, val in v.items():
            per.setdefault(k, []).append(val)
    out = {k: float(np.nanmedian(v)) for k, v in per.items()}
    out |= {"event_share": float(in_event.mean()),
            "events_per_day": float(short.sum() / (n_sites * days)),
            "duration_median_min": float(np.median(dur_min)), "duration_min_min": float(dur_min.min()),
            "duration_max_min": float(dur_min.max()), "duration_le30_share": float(np.mean(dur_min <= 30)),
            "params_moved_3sd": float(np.concatenate(moved).mean()), "missing_share": 0.0}
    return out


#: statistic -> (real source, band as (low, high) of the generated value, what it calibrates)
BANDS: dict[str, tuple[str, tuple[float, float], str]] = {
    "event_share": ("gecco", (0.007, 0.0285), "rates of short events and plumes (real ×/÷ 2)"),
    "events_per_day": ("gecco", (0.62, 1.03), "short events per site and day (real ± 25 %)"),
    "duration_median_min": ("gecco", (19.0, 25.0), "short-event duration mixture (real ± 3 min)"),
    "duration_min_min": ("gecco", (10.0, 15.0), "short-event duration mixture"),
    "duration_max_min": ("gecco", (60.0, 160.0), "short-event duration tail"),
    "duration_le30_share": ("gecco", (0.84, 0.98), "short-event duration mixture (real ± 0.07)"),
    "params_moved_3sd": ("gecco", (2.27, 4.27), "parameters a short event moves and their shift (real ± 1)"),
    "lag1_15min_ph": ("gecco", (0.82, 0.92), "pH noise ρ (real ± 0.05)"),
    "lag1_15min_orp_mv": ("gecco", (0.85, 0.95), "redox noise ρ (real ± 0.05)"),
    "lag1_15min_chlorine_mgl": ("gecco", (0.87, 0.97), "chlorine noise ρ and dosing steps (Cl_2, real ± 0.05)"),
    "lag1_15min_discharge_m3s": ("gecco", (0.95, 1.0), "discharge noise ρ (Fm, real ± 0.03)"),
    "lag1_15min_temperature_c": ("neon", (0.989, 1.0), "temperature noise ρ (real range − 0.01)"),
    "lag1_15min_do_mgl": ("neon", (0.989, 1.0), "DO noise ρ (real range − 0.01)"),
    "lag1_15min_conductivity_uscm": ("neon", (0.982, 1.0), "conductivity noise ρ (real range − 0.01)"),
    "lag1_15min_turbidity_ntu": ("neon", (0.976, 1.0), "turbidity noise ρ (real range − 0.01)"),
    "lag1_15min_nitrate_mgl": ("neon", (0.988, 1.0), "nitrate noise ρ (real range − 0.01)"),
    "daily_range_temperature_c": ("neon", (2.0, 4.8), "temperature diurnal amplitude (real range ×/÷ 1.25)"),
    "daily_range_do_mgl": ("neon", (0.6, 2.3), "DO photosynthesis amplitude (real range ×/÷ 1.25)"),
    "flow_corr_turbidity_ntu": ("neon", (-0.55, 0.51), "turbidity first-flush exponent (real range ± 0.3)"),
    "flow_corr_conductivity_uscm": ("neon", (-1.0, -0.05), "conductivity dilution exponent (real range ± 0.1)"),
    "spike_rate_conductivity_uscm": ("neon", (0.00097, 0.012), "conductivity spike faults (real range ×/÷ 2)"),
    "spike_rate_turbidity_ntu": ("neon", (0.0026, 0.059), "turbidity spike faults (real range ×/÷ 2)"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=HERE.parent.parent / "shared" / "data" / "real")
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    real = {"gecco": gecco(a.real / "water_gecco2017.parquet"), "neon": neon(a.real / "neon_water_quality.parquet")}
    gen = generated(a.days, a.seed)
    rows = []
    for stat, (src, (lo, hi), what) in BANDS.items():
        g = gen.get(stat, float("nan"))
        rows.append({"statistic": stat, "real_source": src, "real": real[src].get(stat),
                     "real_range": real[src].get(f"{stat}_range"), "generated": g, "band": [lo, hi],
                     "ok": bool(lo <= g <= hi), "calibrates": what})
    other = {"gecco_missing_share": real["gecco"]["missing_share"], "neon_missing_share": real["neon"]["missing_share"],
             "neon_missing_run_median_slots": real["neon"]["missing_run_median_slots"]}
    if a.json:
        print(json.dumps({"rows": rows, "real_only": other, "generated": gen}, indent=1))
    else:
        print("| statistic | real (source) | generated | band | calibrates |")
        print("|---|---|---|---|---|")
        for r in rows:
            rr = f"{r['real']:.3g}" + (f" ({r['real_range'][0]:.3g}–{r['real_range'][1]:.3g})" if r["real_range"] else "")
            flag = "" if r["ok"] else " **out**"
            print(f"| {r['statistic']} | {rr} ({r['real_source']}) | {r['generated']:.3g}{flag} | "
                  f"{r['band'][0]:g}–{r['band'][1]:g} | {r['calibrates']} |")
        print("\nreal only:", json.dumps({k: round(v, 4) for k, v in other.items()}))
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
