"""Every forecaster on the real series tables of ``../shared/data/real`` (docs/flow.md).

Runs the rolling-origin protocol of ``uda run flow`` (70/10/20) on SCATS (15 min), the
Melbourne pedestrian counts (hourly, -1 = missing) and each NAB series (irregular, binned
to 5 or 10 minutes), and prints one Markdown table per table with the ratio of the best
learnt model to the best naive baseline per horizon.

    python bench/flow_real.py [--real ../shared/data/real] [--json results/flow_real.json]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from uda.forecasting.evaluation import evaluate
from uda.io.wide import read_wide

BASELINES = ("last", "snaive_day", "snaive_week", "ha", "ha_slot")
NAB = [("speed_6005", "5min", "3,6,12"), ("speed_t4013", "5min", "3,6,12"),
       ("speed_7578", "5min", "3,6,12"), ("occupancy_6005", "5min", "3,6,12"),
       ("occupancy_t4013", "5min", "3,6,12"), ("TravelTime_387", "10min", "2,3,6"),
       ("TravelTime_451", "10min", "2,3,6")]


def tables(real: Path) -> dict[str, tuple[Path, str, dict, str, str]]:
    """Name -> (file, interval, reader options, horizons, title)."""
    out = {
        "scats": (real / "scats_boroondara_2006.parquet", "15min", {}, "1,2,4",
                  "SCATS (140 detectors, 15 min, Oct 2006)"),
        "pedestrian": (real / "pedestrian_melbourne.parquet", "1h", {"missing": (-1,)}, "1,2,3",
                       "Melbourne pedestrians (55 sensors, hourly, 2021-22, `--missing -1`)"),
    }
    for name, iv, hz in NAB:
        out[name] = (real / "nab_realtraffic" / f"{name}.csv", iv, {"irregular": True}, hz,
                     f"NAB `{name}` (1 series, `--irregular`, binned to {iv})")
    return out


def markdown(title: str, res: dict) -> str:
    """One table: every model's MAE per horizon, best baseline and best learnt in bold."""
    hs = list(res["models"]["last"])
    mins = res["interval_s"] / 60
    learnt = [m for m in res["models"] if m not in BASELINES]
    best_b = {h: min(res["models"][b][h]["mae"] for b in BASELINES if b in res["models"]) for h in hs}
    best_l = {h: min(res["models"][m][h]["mae"] for m in learnt) for h in hs}
    lines = [f"**{title}**: {res['series']} series x {res['steps']} steps, "
             f"{res['protocol']['origins']} origins", "",
             "| model | " + " | ".join(f"MAE {int(h) * mins:g} min" for h in hs) + " |",
             "| --- |" + " --- |" * len(hs)]
    for m, per in res["models"].items():
        best = best_b if m in BASELINES else best_l
        cells = [f"**{per[h]['mae']:,.2f}**" if per[h]["mae"] == best[h] else f"{per[h]['mae']:,.2f}"
                 for h in hs]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("| *best learnt / best baseline* | "
                 + " | ".join(f"{best_l[h] / best_b[h]:.3f}" for h in hs) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data" / "real")
    ap.add_argument("--models", default="all")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    results = {}
    for name, (path, iv, kw, hz, title) in tables(args.real).items():
        panel = read_wide(path, interval=iv, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning leaking to the user is a defect
            res = evaluate(panel, models=args.models, horizons=hz)
        results[name] = res
        print(markdown(title, res))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
