"""Do model rankings on the generated city transfer to real tables? (docs/flow.md)

Reads the JSON of ``uda run flow --data DIR --models all --json`` (the generated city)
and of ``bench/flow_real.py --json`` (the real tables), ranks the models by MAE at
15 and 60 minutes on each, and prints Spearman's rho between the generated ranking and
each real table's, with the winner class (learnt or naive) on both sides.

    python bench/flow_rankings.py GENERATED.json [GENERATED2.json ...] --real results/flow_real.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

NAIVE = {"last", "snaive_day", "snaive_week", "ha", "ha_slot"}


def ranks(values: list[float]) -> np.ndarray:
    """Ranks from 1 (smallest), ties sharing their mean rank."""
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for x in np.unique(v):
        tie = v == x
        r[tie] = r[tie].mean()
    return r


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (Pearson correlation of the ranks)."""
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def horizon_key(res: dict, minutes: float) -> str | None:
    """The horizon (as stored) closest to ``minutes``, if one is within a step of it."""
    step = res["interval_s"] / 60
    hs = list(next(iter(res["models"].values())))
    best = min(hs, key=lambda h: abs(int(h) * step - minutes))
    return best if abs(int(best) * step - minutes) < step else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("generated", nargs="+", type=Path)
    ap.add_argument("--real", type=Path, required=True)
    args = ap.parse_args()
    real = json.loads(args.real.read_text())
    print("| generated | real table | minutes | models | rho | winner generated | winner real |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for gpath in args.generated:
        gen = json.loads(gpath.read_text())
        for name, res in real.items():
            for minutes in (15, 60):
                hg, hr = horizon_key(gen, minutes), horizon_key(res, minutes)
                if hg is None or hr is None:
                    continue
                models = [m for m in gen["models"] if m in res["models"]]
                a = [gen["models"][m][hg]["mae"] for m in models]
                b = [res["models"][m][hr]["mae"] for m in models]
                wa, wb = models[int(np.argmin(a))], models[int(np.argmin(b))]
                cls = lambda w: "naive" if w in NAIVE else "learnt"  # noqa: E731
                print(f"| {gpath.stem} | {name} | {minutes} | {len(models)} | {spearman(a, b):+.2f} "
                      f"| {wa} ({cls(wa)}) | {wb} ({cls(wb)}) |")


if __name__ == "__main__":
    main()
