"""Probe that ``uda regress`` runs inside one revision's source tree: seeded inputs, one call per kernel.

This file is copied next to the extracted revision and run as a script with that tree
first on ``sys.path``, so it imports the revision's kernels, never the installed ones.
It therefore uses only the standard library and NumPy at module level and must keep
working against older revisions: a name that moved is looked up where it lives now and
then where it lived before (:func:`_first`; e.g. issue 19 moved most modules after 9825fce), and
a case whose kernel exists in neither place is reported as ``missing``. Only modules of the
tree measured are imported (:class:`_TreeOnly`): an editable install's finder would
otherwise hand out the checkout's copy of a ``uda.<module>`` the old tree lacks.

Modes
-----
``--list``
    Print the case names.
``--build``
    Build every case (imports and inputs) without calling its kernel: which cases a
    revision has, in seconds (nothing is compiled).
``--warm``
    Build every case and call its kernel once (compiles or loads the Numba cache).
``--measure LIB``
    Under callgrind with ``--instr-atstart=no``: for every case call the kernel once
    unmeasured (cache load, page faults), then once between the start and stop client
    requests of the helper library ``LIB``, which dumps the counts under the case name.
``--time N``
    Without valgrind: call each kernel N times and report every wall time (used to
    compare instruction counts with timing on this machine).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import importlib
import json
import os
import sys
import time
import traceback

import numpy as np

SEED = 12345


def _first(*candidates: str):
    """The first of ``"module:attr"`` candidates that imports, newest location first.

    Raises the last candidate's ImportError or AttributeError when none resolves.
    """
    error: Exception | None = None
    for candidate in candidates:
        module, _, attr = candidate.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            error = exc
    if error is None:
        msg = "_first needs at least one 'module:attr' candidate"
        raise ValueError(msg)
    raise error


def _tree_roots() -> tuple[str, ...]:
    """Folders a ``uda`` module may come from: the tree's ``uda/`` and its ``cli/`` (``uda.cli``)."""
    import uda

    pkg = os.path.dirname(os.path.realpath(uda.__file__))
    return pkg + os.sep, os.path.join(os.path.dirname(pkg), "cli") + os.sep


class _TreeOnly:
    """Meta-path finder in front of the others: a ``uda.*`` module must come from the tree measured.

    An editable install of uda adds a finder that resolves ``uda.<child>`` in the developer's
    checkout when the tree on ``sys.path`` lacks it, which would measure HEAD's code inside an
    old revision (or mix the two). Such a module is refused here (ModuleNotFoundError), so the
    case falls back to the revision's own name or is reported missing.
    """

    @classmethod
    def find_spec(cls, fullname: str, path=None, target=None):
        if not fullname.startswith("uda."):
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is cls or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        where = spec.origin if spec.has_location else next(iter(spec.submodule_search_locations or []), None)
        roots = _tree_roots()
        if where is None or not os.path.realpath(where).startswith(roots):
            msg = f"No module named {fullname!r} in the tree measured ({roots[0]}; found {where})"
            raise ModuleNotFoundError(msg, name=fullname)
        return spec


def _tree_only() -> None:
    """Put :class:`_TreeOnly` first on ``sys.meta_path`` (once)."""
    if _TreeOnly not in sys.meta_path:
        sys.meta_path.insert(0, _TreeOnly)


def _grid(side: int):
    rng = np.random.default_rng(SEED)
    idx = np.arange(side * side).reshape(side, side)
    right = np.c_[idx[:, :-1].ravel(), idx[:, 1:].ravel()]
    down = np.c_[idx[:-1, :].ravel(), idx[1:, :].ravel()]
    pairs = np.r_[right, down]
    tail = np.r_[pairs[:, 0], pairs[:, 1]].astype(np.int64)
    head = np.r_[pairs[:, 1], pairs[:, 0]].astype(np.int64)
    return side * side, tail, head, rng.uniform(0.8, 1.2, tail.size)


def _network(side: int, zones: int):
    from uda.kernels.assign import Network

    rng = np.random.default_rng(SEED)
    n, tail, head, length = _grid(side)
    cen = np.sort(rng.choice(n, size=zones, replace=False))
    xy = np.c_[cen // side, cen % side].astype(float)
    dist = np.abs(xy[:, None, :] - xy[None, :, :]).sum(axis=2)
    demand = rng.uniform(50, 150, (zones, zones)) * np.exp(-dist / side)
    np.fill_diagonal(demand, 0.0)
    return Network(num_nodes=n, tail=tail, head=head, free_flow_time=length,
                   b=np.full(tail.size, 0.15), capacity=rng.uniform(400, 900, tail.size),
                   power=np.full(tail.size, 4.0), origins=cen, dests=cen, demand=demand)


@functools.cache
def _plan():
    """One small generator plan shared by every case (a city build is slow under valgrind)."""
    from uda.city import build_city
    from uda.scales import resolve_scale

    plan = _first("uda.synth.plan:Plan", "uda.generate:_Plan")  # generate's private _Plan up to 9825fce
    scale = resolve_scale("tiny", sensors=24, days=7, cards=3000, water_sites=8)
    return plan(build_city(scale, 1), 1)


def _panel(n: int, days: int):
    rng = np.random.default_rng(SEED)
    t = np.arange(days * 288)
    slot = (t % 288) / 288
    shape = 0.2 + np.exp(-0.5 * ((slot - 0.33) / 0.05) ** 2) + np.exp(-0.5 * ((slot - 0.72) / 0.06) ** 2)
    y = rng.uniform(300, 1500, (n, 1)) * shape * (1.0 + rng.normal(0, 0.05, (n, t.size)))
    y[rng.uniform(size=y.shape) < 0.02] = np.nan
    return y


@functools.cache
def _water():
    params = _first("uda.contract:WATER_PARAMETERS", "uda.synth.water:PARAMETERS")

    p = _plan()
    n = p.city.tables["water_sites"].num_rows
    tab = p.water_chunk(0, n)
    values = np.ascontiguousarray(np.column_stack([tab[c].to_numpy().astype(np.float64) for c in params]))
    site = tab["site_id"].to_numpy()
    offsets = np.searchsorted(site, np.arange(n + 1)).astype(np.int64)
    return values, offsets, tab["ts"].cast("int64").to_numpy()


def _limits():
    lower = np.array([np.nan, 6.5, 5.5, np.nan, np.nan, np.nan, np.nan])
    upper = np.array([28.0, 9.0, np.nan, 25.0, 2500.0, 13.0, 1.0])
    return lower, upper


# ---- cases: each builds its inputs and returns the call to measure ------------------------

def case_dijkstra_many():
    from uda.kernels.paths import csr_from_links, dijkstra_many

    n, tail, head, length = _grid(40)
    indptr, heads, slot = csr_from_links(n, tail, head)
    w = np.ascontiguousarray(length[slot])
    src = np.linspace(0, n - 1, 20).astype(np.int64)
    return lambda: dijkstra_many(indptr, heads, w, src)


def case_all_or_nothing():
    from uda.kernels.assign import all_or_nothing

    net = _network(40, 30)
    return lambda: all_or_nothing(net, net.free_flow_time)


def case_assign_bfw():
    from uda.kernels.assign import assign

    net = _network(20, 16)
    return lambda: assign(net, algorithm="bfw", gap=0.0, max_iter=5)


def case_p_median():
    from uda.kernels.pmedian import p_median

    rng = np.random.default_rng(SEED)
    pts, dem = rng.uniform(0, 1e4, (120, 2)), rng.uniform(0, 1e4, (240, 2))
    cost = np.sqrt(((dem[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2))
    w = rng.uniform(100, 5000, 240)
    return lambda: p_median(cost, w, 8)


def case_traffic_generator():
    p = _plan()
    return lambda: p.traffic_chunk(0, 6)


def case_passenger_generator():
    p = _plan()
    return lambda: p.passenger_chunk(0, 1)


def case_water_generator():
    p = _plan()
    return lambda: p.water_chunk(0, 8)


def case_table_checksum():
    import pyarrow as pa

    from uda.kernels.checksum import table_hash_sum

    rng = np.random.default_rng(SEED)
    n = 200_000
    tab = pa.table({"a": rng.integers(0, 5000, n).astype(np.int32),
                    "b": rng.normal(size=n).astype(np.float32), "c": rng.uniform(size=n)})
    return lambda: table_hash_sum(tab)


def _forecast(model: str, n: int):
    # The one evaluator (uda.forecasting.evaluation.evaluate) is flow's panel evaluator of before
    # the redesign (uda.tasks.flow.evaluate_panel): same signature and the same work (one block of
    # every series, in this thread), so both revisions are timed on it. The probe of 9825fce timed
    # the older whole-panel uda.forecast.evaluate, which the CLI did not run.
    evaluate = _first("uda.forecasting.evaluation:evaluate", "uda.tasks.flow:evaluate_panel")
    Panel = _first("uda.forecasting.panel:Panel", "uda.forecast:Panel")  # noqa: N806 - a class

    panel = Panel(_panel(n, 9), [f"s{i}" for i in range(n)], np.datetime64("2026-03-02T00:00"), 300)
    return lambda: evaluate(panel, models=model, horizons=[1, 6])


def case_forecast_ha():
    return _forecast("ha", 20)


def case_forecast_hw():
    return _forecast("hw", 4)


def case_forecast_ridge():
    return _forecast("ridge", 4)


def case_ccme_wqi():
    from uda.kernels.wqi import ccme_wqi, weighted_arithmetic_wqi

    values, offsets, _ = _water()
    days = np.arange(0, values.shape[0] + 1, 96, dtype=np.int64)
    lower, upper = _limits()
    ideal = np.array([0.0, 7.0, 14.6, 0.0, 0.0, 0.0, 0.0])
    standard = np.array([np.nan, 8.5, 5.0, 25.0, 2500.0, 13.0, 1.0])

    def call():
        ccme_wqi(values, days, lower, upper)
        weighted_arithmetic_wqi(values, days, ideal, standard)

    return call


def case_exceedance_episodes():
    from uda.kernels.wqi import exceedance_episodes

    values, offsets, ts = _water()
    lower, upper = _limits()
    return lambda: exceedance_episodes(ts, values, offsets, lower, upper, 1_350_000)


def case_rolling_baseline():
    from uda.kernels.detect import rolling_baseline

    values, offsets, _ = _water()
    two = np.ascontiguousarray(values[: offsets[2]])  # two sites: O(rows x window), the costliest kernel
    return lambda: rolling_baseline(two, offsets[:3], 96, 24, np.full(values.shape[1], 1e-3))


def case_detector_scores():
    from uda.kernels.detect import alarm_runs, cusum, multivariate_score

    values, offsets, _ = _water()
    z = np.ascontiguousarray((values - np.nanmedian(values, axis=0)) / np.nanstd(values, axis=0))
    dirs = np.array([0.0, 0.0, -1.0, 1.0, 1.0, 1.0, 1.0])

    def call():
        mv = multivariate_score(z, dirs, 4.0)
        cs = cusum(mv.reshape(-1, 1), offsets, 0.5, 4.0)[:, 0]
        alarm_runs(cs > 5.0, offsets, 4)

    return call


def case_sketches():
    from uda.kernels.sketches import hll_add, hll_new, qs_add, qs_new

    rng = np.random.default_rng(SEED)
    keys = rng.integers(0, 20_000, 50_000)
    vals = rng.lognormal(6.0, 0.6, 50_000)

    def call():
        hll_add(hll_new(), keys)
        qs_add(qs_new(), vals)

    return call


def case_quality_scan():
    import polars as pl

    # uda/quality.py (up to 9825fce) became the uda/quality/ package; same signatures
    arrays_polars = _first("uda.quality.scan:arrays_polars", "uda.quality:arrays_polars")
    scan_arrays = _first("uda.quality.scan:scan_arrays", "uda.quality:scan_arrays")

    p = _plan()
    arrays = arrays_polars(pl.from_arrow(p.traffic_chunk(0, 24)), "traffic")
    lookup = np.zeros(p.city.scale.sensors, np.int64)
    return lambda: scan_arrays(arrays, "traffic", lookup=lookup, n_districts=4, period=(0, 1 << 62))


CASES = {name.removeprefix("case_"): fn for name, fn in sorted(globals().items())
         if name.startswith("case_") and callable(fn)}


def _build(name: str):
    """``(status, call, detail)`` of one case: ok, missing (not in this revision) or error."""
    try:
        return "ok", CASES[name](), ""
    except (ImportError, AttributeError) as exc:
        return "missing", None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - reported per case, the others still run
        return "error", None, "".join(traceback.format_exception_only(type(exc), exc)).strip()


def main(argv: list[str] | None = None) -> int:
    """Run the probe; writes ``{case: {"status", "detail", "seconds"?}}`` to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true")
    mode.add_argument("--build", action="store_true")
    mode.add_argument("--warm", action="store_true")
    mode.add_argument("--measure", metavar="LIB")
    mode.add_argument("--time", type=int, metavar="N")
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--out", help="JSON file for per-case status")
    args = ap.parse_args(argv)
    _tree_only()
    if args.list:
        print("\n".join(CASES))
        return 0
    names = [c for c in args.cases.split(",") if c] or list(CASES)
    lib = None
    if args.measure:
        lib = ctypes.CDLL(args.measure)
        lib.uda_cg_stop.argtypes = [ctypes.c_char_p]
    report = {}
    for name in names:
        if name not in CASES:
            report[name] = {"status": "missing", "detail": "no such case in this probe"}
            continue
        status, call, detail = _build(name)
        entry = {"status": status, "detail": detail}
        if status == "ok" and not args.build:
            try:
                call()  # compile or load from the Numba cache; touch the memory
                if lib is not None:
                    lib.uda_cg_start()
                    call()
                    lib.uda_cg_stop(name.encode())
                elif args.time:
                    times = []
                    for _ in range(args.time):
                        t0 = time.perf_counter()
                        call()
                        times.append(time.perf_counter() - t0)
                    entry["seconds"] = times
            except Exception as exc:  # noqa: BLE001 - reported per case
                entry = {"status": "error",
                         "detail": "".join(traceback.format_exception_only(type(exc), exc)).strip()}
        report[name] = entry
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
    else:
        json.dump(report, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
