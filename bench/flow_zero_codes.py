"""Zeros as a missing-value code (METR-LA's convention) in a week of generated 5-min speeds.

Generates a week of realistic traffic (``--scale small --days 7 --seed 5``), writes its
speeds as a wide CSV with the road adjacency, writes every missing reading and further
detector outages (Poisson(3) per sensor, log-normal lengths around an hour) as 0, and runs
``uda run flow`` on it twice: with the importer's detection (the default) and with
``--missing none`` (zeros read as speeds). Prints the MAE of each model per horizon and
the notes (docs/flow.md, "The failing regime of issue #13").

    python bench/flow_zero_codes.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from click.testing import CliRunner

from uda.cli.main import cli
from uda.store import open_dataset
from uda.tasks.flow import sensor_pairs, traffic_panel_polars

MODELS = "last,snaive_day,ha,ha_slot,ridge,ridge_st"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="folder for the dataset and tables (default: a temporary one)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="uda-zero-codes-"))
    data = work / "week"
    if not data.exists():
        r = CliRunner().invoke(cli, ["generate", "--scale", "small", "--days", "7", "--seed", "5",
                                     "--tables", "traffic", "--out", str(data)])
        assert r.exit_code == 0, r.output
    ds = open_dataset(data)
    ids, Y, t0 = traffic_panel_polars(ds, column="speed")
    rng = np.random.default_rng(0)
    Z = np.where(np.isnan(Y), 0.0, Y)
    for i in range(Z.shape[0]):
        for _ in range(rng.poisson(3)):
            s = rng.integers(0, Z.shape[1])
            Z[i, s:s + int(rng.lognormal(np.log(12), 1))] = 0.0
    ts = np.datetime64(int(t0), "ms") + np.arange(Y.shape[1]) * np.timedelta64(300, "s")
    table = work / "speed0.csv"
    pl.DataFrame({"timestamp": ts}).with_columns(
        [pl.Series(str(s), Z[k]) for k, s in enumerate(ids)]).write_csv(table)
    a, b = sensor_pairs(ds)
    pos = {int(s): k for k, s in enumerate(ids)}
    A = np.zeros((len(ids), len(ids)), dtype=int)
    for x, y in zip(a, b, strict=True):
        A[pos[int(x)], pos[int(y)]] = 1
    np.savetxt(work / "adj.csv", A, fmt="%d", delimiter=",")
    print(f"{table}: {Z.shape[0]} sensors, zero share {(Z == 0).mean():.3f}")
    for label, extra in (("detected (default)", []), ("--missing none", ["--missing", "none"])):
        r = CliRunner().invoke(cli, ["run", "flow", "--wide", str(table), "--interval", "5min",
                                     "--adjacency", str(work / "adj.csv"), "--models", MODELS,
                                     "--horizons", "3,6,12", "--json", *extra])
        assert r.exit_code == 0, r.output
        res = json.loads(r.output)
        print(f"\n{label}: notes {res['notes']}")
        for m, per in res["models"].items():
            print(f"  {m:12s}", " ".join(f"{per[h]['mae']:7.3f}" for h in ("3", "6", "12")))


if __name__ == "__main__":
    main()
