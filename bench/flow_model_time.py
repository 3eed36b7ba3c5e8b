"""Time fit + predict of one forecaster on a generated dataset's traffic panel (rolling origins).

Run it with ``PYTHONPATH`` pointing at two trees (e.g. a worktree of an older commit and
this one), alternately, to compare models across commits in one session::

    PYTHONPATH=/tmp/uda-old python bench/flow_model_time.py DATA --model ridge --repeats 3
    PYTHONPATH=.            python bench/flow_model_time.py DATA --model ridge --repeats 3

Prints one JSON line: the wall and CPU (process, all threads) times of every repeat (the
first includes any compilation not yet cached) and the MAE per horizon over the test part.
On a shared machine the CPU time is the steadier of the two.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    from uda.forecasting import neighbours as N
    from uda.forecasting.panel import Calendar, Context
    from uda.forecasting.protocol import make_protocol, resolve_horizons, usable_series
    from uda.forecasting.registry import MODELS, new_model
    from uda.kernels.forecast import error_sums
    from uda.store import open_dataset
    from uda.tasks.flow import traffic_panel_polars

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--model", default="ridge")
    ap.add_argument("--series", type=int, default=0, help="first N sensors only (0: all)")
    ap.add_argument("--horizons", default="1,3,6,12")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    _, Y, t0 = traffic_panel_polars(open_dataset(args.data), column="flow")
    Y = np.ascontiguousarray(Y[:args.series] if args.series else Y)
    start = np.datetime64(int(t0), "ms").astype("datetime64[s]")
    proto = make_protocol(Y.shape[1], 288, resolve_horizons(args.horizons))
    Y = Y[usable_series(Y, proto.train_end)]  # as the evaluator drops them
    cal = Calendar.regular(start, 300, Y.shape[1])
    ctx = Context(cal)
    if MODELS[args.model].needs_neighbours:
        indptr, indices = N.correlation_neighbours(Y, proto.train_end, calendar=cal)
        ctx = N.neighbour_context(Y, proto.train_end, indptr, indices, cal)
    times, cpu = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        model = new_model(args.model).fit(Y, ctx, train_end=proto.train_end, val_end=proto.val_end,
                                          horizons=proto.horizons)
        pred = model.predict(Y, ctx, proto.origins, proto.horizons)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    sums = error_sums(np.where(np.isnan(pred), 0.0, pred), Y, proto.origins, proto.horizons)
    print(json.dumps({"model": args.model, "series": int(Y.shape[0]), "times_s": times, "cpu_s": cpu,
                      "mae": (sums[:, 1] / sums[:, 0]).round(3).tolist()}))


if __name__ == "__main__":
    main()
