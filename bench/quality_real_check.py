"""Check ``uda run quality --table`` on the real tables against an independent pandas computation.

For every real table of ``../shared/data/real`` (or ``--real DIR``) this runs
:func:`uda.quality.table.profile.profile_table` and recomputes the same counts with pandas from the
definitions in docs/utilisation.md (nulls, sentinels, values outside the reported range, stuck
rows per column; exact duplicate rows; key duplicates; per group the time step, gaps, missing
steps, irregular steps, longest gap, duplicated and out-of-order times), prints the comparison
and exits 1 if any count differs.

Usage::

    python bench/quality_real_check.py [--real ../shared/data/real] [--json results/quality-real-check.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

#: table file, time column, group column, key (as for `uda run quality`).
TABLES = {
    "pedestrian": ("pedestrian_melbourne.parquet", "time", None, ["time"]),
    "neon": ("neon_water_quality.parquet", "datetime", "siteID", ["siteID", "datetime"]),
    "gecco": ("water_gecco2017.parquet", "Time", None, ["Time"]),
    "scats": ("scats_boroondara_2006.parquet", "time", None, ["time"]),
    **{f"nab_{n}": (f"nab_realtraffic/{n}.csv", "timestamp", None, ["timestamp"])
       for n in ("TravelTime_387", "TravelTime_451", "occupancy_6005", "occupancy_t4013", "speed_6005",
                 "speed_7578", "speed_t4013")},
}


def _read(path: Path, time_col: str) -> pd.DataFrame:
    if path.suffix == ".csv":
        df = pd.read_csv(path)
    else:
        df = pd.read_parquet(path)
    df[time_col] = pd.to_datetime(df[time_col], errors="coerce")
    return df


def _sentinels(s: pd.Series, cands: tuple[float, ...]) -> list[float]:
    """Candidates detected as sentinels: negative with every other value >= 0, positive above twice the rest."""
    v = s.dropna().astype(float)
    other = v[~v.isin(cands)]
    lo = other.min() if len(other) else np.inf
    hi = other.max() if len(other) else -np.inf
    return [c for c in cands if (v == c).any() and ((c < 0 and lo >= 0) or (c > 0 and c > 2 * max(hi, 0.0)))]


def _stuck(v: np.ndarray, cands: tuple[float, ...], stuck_min: int) -> int:
    """Rows repeating the previous value in runs of >= stuck_min (nulls, candidates and zeros break runs)."""
    brk = np.isnan(v) | np.isin(v, cands) | (v == 0)
    same = np.r_[False, (v[1:] == v[:-1]) & ~brk[1:] & ~brk[:-1]]
    run_id = np.cumsum(~same)
    lengths = np.bincount(run_id)
    return int((lengths[lengths >= stuck_min] - 1).sum())


def pandas_profile(df: pd.DataFrame, time_col: str, group_col: str | None, key: list[str],
                   ranges: dict[str, list[float] | None], cands: tuple[float, ...], stuck_min: int) -> dict:
    """The counts of a profile recomputed with pandas."""
    out: dict = {"rows": len(df), "duplicate_rows": int(df.duplicated().sum()),
                 "key.duplicates": int(df.duplicated(key).sum()), "columns": {}}
    gkey = df[group_col] if group_col else pd.Series(0, index=df.index)
    for c in df.columns:
        s = df[c]
        col = {"nulls": int(s.isna().sum())}
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and c != group_col:
            v = s.astype("float64")
            sent = _sentinels(v, cands)
            col["sentinels"] = int(v.isin(sent).sum())
            rng = ranges.get(c)
            other = v[v.notna() & ~v.isin(sent)]
            col["invalid"] = int(((other < rng[0]) | (other > rng[1])).sum()) if rng else 0
            col["stuck_rows"] = int(sum(_stuck(part.to_numpy(), cands, stuck_min)
                                        for _, part in v.groupby(gkey, sort=False, dropna=False)))
        out["columns"][c] = col
    ok = df[df[time_col].notna()]
    g_ok = ok[group_col] if group_col else pd.Series(0, index=ok.index)
    groups = {}
    for gname, part in ok.assign(_g=g_ok).groupby("_g", sort=False, dropna=False):
        t = part[time_col].astype("datetime64[us]").astype("int64").to_numpy()
        ooo = int((np.diff(t) < 0).sum())
        d = np.diff(np.sort(t, kind="stable"))
        pos = d[d > 0]
        if pos.size:
            vals, counts = np.unique(pos, return_counts=True)
            step = int(vals[np.argmax(counts)])  # the most frequent; ties -> the smallest
            gap = 2 * pos >= 3 * step
            missing = int((np.floor(pos[gap] / step + 0.5).astype(np.int64) - 1).sum())
            groups[str(gname)] = {"step_s": step / 1e6, "gaps": int(gap.sum()), "missing_steps": missing,
                                  "irregular_steps": int((pos % step != 0).sum()),
                                  "longest_gap_s": float(pos[gap].max() / 1e6) if gap.any() else 0.0,
                                  "duplicates": int((d == 0).sum()), "out_of_order": ooo}
        else:
            groups[str(gname)] = {"step_s": None, "gaps": 0, "missing_steps": 0, "irregular_steps": 0,
                                  "longest_gap_s": 0.0, "duplicates": int((d == 0).sum()), "out_of_order": ooo}
    out["time"] = {k: sum(v[k] for v in groups.values()) for k in ("gaps", "missing_steps", "irregular_steps",
                                                                    "duplicates", "out_of_order")}
    out["time"]["longest_gap_s"] = max(v["longest_gap_s"] for v in groups.values())
    out["time"]["nulls"] = int(df[time_col].isna().sum())
    out["groups"] = groups
    return out


def _ours(rep: dict) -> dict:
    cols = {}
    for c, v in rep["columns"].items():
        d = {"nulls": v["nulls"] + v["unparseable"]}
        if v["type"] in ("int", "float") and "stuck_rows" in v and c != rep.get("group_col"):
            d.update(sentinels=v["sentinels"], invalid=v["invalid"], stuck_rows=v["stuck_rows"])
        cols[c] = d
    t = rep["time"]
    groups = ({g: {k: v["time"][k] for k in ("step_s", "gaps", "missing_steps", "irregular_steps", "longest_gap_s",
                                              "duplicates", "out_of_order")} for g, v in rep["groups"].items()}
              if "groups" in rep else {"0": {k: t[k] for k in ("gaps", "missing_steps", "irregular_steps",
                                                               "longest_gap_s", "duplicates", "out_of_order")}})
    if "groups" not in rep:
        groups["0"]["step_s"] = t["step_s"]
    return {"rows": rep["rows"], "duplicate_rows": rep["duplicate_rows"], "key.duplicates": rep["key"]["duplicates"],
            "columns": cols, "time": {**{k: t[k] for k in ("gaps", "missing_steps", "irregular_steps", "duplicates",
                                                           "out_of_order", "longest_gap_s")},
                                      "nulls": t["nulls"] + t["unparseable"]},
            "groups": groups}


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check(real: Path, name: str) -> tuple[dict, list[str], dict]:
    """Profile one table with uda and pandas; the uda report, the differing counts and the pandas counts."""
    from uda.quality.table.profile import profile_table
    from uda.quality.table.schema import SENTINEL_CANDIDATES, STUCK_MIN

    file, time_col, group_col, key = TABLES[name]
    rep, _, _ = profile_table(str(real / file), time_col=time_col, group_col=group_col, key=key)
    df = _read(real / file, time_col)
    ranges = {c: v.get("range") for c, v in rep["columns"].items()}
    ref = pandas_profile(df, time_col, group_col, key, ranges, SENTINEL_CANDIDATES, STUCK_MIN)
    ours = _flatten(_ours(rep))
    theirs = _flatten(ref)
    diffs = [f"{k}: uda {ours.get(k)!r} pandas {theirs.get(k)!r}" for k in sorted(set(ours) | set(theirs))
             if ours.get(k) != theirs.get(k)]
    return rep, diffs, theirs


def main(argv: list[str] | None = None) -> int:
    """Run every table; print one line per table and the differences."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real"),
                    help="folder of the real tables")
    ap.add_argument("--tables", default=",".join(TABLES), help="comma-separated subset of: " + ", ".join(TABLES))
    ap.add_argument("--json", default=None, help="write the comparison here")
    args = ap.parse_args(argv)
    real = Path(args.real)
    results = {}
    bad = 0
    print(f"{'table':22s} {'rows':>8s} {'nulls':>7s} {'sentinels':>9s} {'dup rows':>8s} {'key dups':>8s} "
          f"{'gaps':>6s} {'dup t':>6s} {'ooo':>4s} {'counts':>6s}  result")
    for name in [t.strip() for t in args.tables.split(",") if t.strip()]:
        rep, diffs, ref = check(real, name)
        n_counts = len(ref)
        nulls = sum(c["nulls"] for c in rep["columns"].values())
        sent = sum(c["sentinels"] for c in rep["columns"].values())
        t = rep["time"]
        print(f"{name:22s} {rep['rows']:8d} {nulls:7d} {sent:9d} {rep['duplicate_rows']:8d} "
              f"{rep['key']['duplicates']:8d} {t['gaps']:6d} {t['duplicates']:6d} {t['out_of_order']:4d} "
              f"{n_counts:6d}  {'equal' if not diffs else f'{len(diffs)} DIFFER'}")
        for d in diffs:
            print(f"    {d}")
        bad += bool(diffs)
        results[name] = {"counts_compared": n_counts, "differences": diffs, "pandas": ref}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    print("all counts equal" if not bad else f"{bad} table(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
