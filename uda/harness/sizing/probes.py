"""Route's network stages measured by a probe on the target's street network (in place of their fitted term)."""

from __future__ import annotations

import math
from typing import Any

_PROBES: dict[tuple[int, int, tuple[tuple[str, Any], ...], float], tuple[Any, str]] = {}


def with_probe(sizes: dict[str, float], task: str, dataset: dict[str, Any] | None,
               options: dict[str, Any] | None, probe_s: float) -> tuple[dict[str, float], dict[str, Any] | None]:
    """``sizes`` with route's network stages measured on their street network by a probe.

    For route (with ``probe_s`` > 0 seconds of budget) the gravity OD, assignment and sites
    are run on the network of ``sizes["sensors"]`` sensors (seed from ``dataset``, options of
    the case) by :func:`uda.harness.route_probe.probe_network`; the copy of ``sizes`` holds
    ``probe_wall_s``, ``probe_cpu_s`` and the probe's iterations, which the time models use
    in place of their fitted network term. Probes are cached per network and options.

    Returns
    -------
    (dict, dict or None)
        The sizes, and what the probe found (or why it was not run); ``None`` when no probe
        applies (another task, or ``probe_s`` is 0).
    """
    from uda.harness.route_probe import probe_network

    if task.split("[")[0] != "route" or probe_s <= 0 or not sizes.get("sensors"):
        return sizes, None
    if not (math.isfinite(sizes["sensors"]) and 1 <= sizes["sensors"] <= 10**7):
        return sizes, {"probed": False, "reason": f"{sizes['sensors']:g} sensors is no city the generator builds"}
    params = (dataset or {}).get("params") or {}
    seed = int(params.get("seed") or (dataset or {}).get("seed") or 1)
    opts = dict(options or {})
    key = (int(sizes["sensors"]), seed, tuple(sorted((k, str(v)) for k, v in opts.items())), float(probe_s))
    if key not in _PROBES:
        _PROBES[key] = probe_network(key[0], seed=seed, options=opts, budget_s=probe_s)
    probe, why = _PROBES[key]
    if probe is None:
        return sizes, {"probed": False, "reason": why}
    out = dict(sizes, probe_wall_s=probe.wall_s, probe_cpu_s=probe.cpu_s, iterations=probe.iterations)
    return out, {"probed": True, **probe.to_dict()}


def probe_note(task: str, eng: str, where: str, info: dict[str, Any], iterations: float) -> str:
    """The note ``uda size`` prints about a probe: what it measured, or why it was not run."""
    if not info.get("probed"):
        return (f"{task} on {eng}: network stages fitted on the sweep at {iterations:.0f} assignment iterations "
                f"(the count the gap needs on this network is unknown), not probed at {where}: {info['reason']}; "
                "raise --probe-seconds to measure them")
    its = (f"{info['iterations']:.0f} iterations" if info["iterations_source"] == "measured" else
           f"{info['iterations']:.0f} iterations extrapolated from the gap after the budget")
    return (f"{task} on {eng}: network stages (gravity OD, assignment, sites) measured at {where} by a probe on its "
            f"street network ({info['zones']:,} zones, {info['links']:,} links; {its}; median of {info['runs']} "
            f"run(s), {info['spent_s']:.1f} s on this machine now"
            + (f", load average {info['load_avg_1m']:.1f}" if info.get("load_avg_1m") is not None else "")
            + f"): {info['wall_s']:.2f} s wall, "
            f"{info['cpu_s']:.2f} s CPU")
