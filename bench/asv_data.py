"""Seeded inputs shared by the asv benchmarks (no benchmarks here; nothing runs at import).

asv runs these current benchmarks against older commits too, so a name that moved is looked
up where it lives now and then where it lived before (:func:`first_of`; the redesign of
issue 19 moved most modules after 9825fce).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIOUX_FALLS = REPO / "tests" / "data" / "tntp" / "SiouxFalls"


def first_of(*candidates: str) -> Any:
    """The first of ``"module:attr"`` candidates that imports, newest location first.

    Raises
    ------
    ImportError or AttributeError
        The last candidate's, when none resolves.
    """
    error: Exception | None = None
    for candidate in candidates:
        module, _, attr = candidate.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            error = exc
    if error is None:
        msg = "first_of needs at least one 'module:attr' candidate"
        raise ValueError(msg)
    raise error


def grid_links(side: int, *, seed: int = 0) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """A ``side`` x ``side`` street grid with links both ways and seeded lengths.

    Returns
    -------
    num_nodes, tail, head, length
    """
    rng = np.random.default_rng(seed)
    idx = np.arange(side * side).reshape(side, side)
    right = np.c_[idx[:, :-1].ravel(), idx[:, 1:].ravel()]
    down = np.c_[idx[:-1, :].ravel(), idx[1:, :].ravel()]
    pairs = np.r_[right, down]
    tail = np.r_[pairs[:, 0], pairs[:, 1]].astype(np.int64)
    head = np.r_[pairs[:, 1], pairs[:, 0]].astype(np.int64)
    length = rng.uniform(0.8, 1.2, tail.size)
    return side * side, tail, head, length


def grid_network(side: int, *, zones: int = 24, seed: int = 0):
    """An assignment :class:`~uda.kernels.assign.Network` on a grid, congested by gravity demand."""
    from uda.kernels.assign import Network

    rng = np.random.default_rng(seed)
    n, tail, head, length = grid_links(side, seed=seed)
    centroids = np.sort(rng.choice(n, size=min(zones, n), replace=False))
    xy = np.c_[centroids // side, centroids % side].astype(float)
    dist = np.abs(xy[:, None, :] - xy[None, :, :]).sum(axis=2)
    demand = rng.uniform(50, 150, (centroids.size, centroids.size)) * np.exp(-dist / side)
    np.fill_diagonal(demand, 0.0)
    capacity = rng.uniform(400, 900, tail.size)
    return Network(num_nodes=n, tail=tail, head=head, free_flow_time=length, b=np.full(tail.size, 0.15),
                   capacity=capacity, power=np.full(tail.size, 4.0), origins=centroids, dests=centroids,
                   demand=demand)


def sioux_falls():
    """The Sioux Falls network and demand from the repository's test data."""
    from uda.io.tntp import read_folder

    tntp_network = first_of("uda.routing.assignment:tntp_network", "uda.tasks.route:tntp_network")
    net, trips = read_folder(SIOUX_FALLS)
    return tntp_network(net, trips)


def plan(scale: str, *, seed: int = 1):
    """The generator's per-dataset plan (city, weather, incidents, cards, sites) for ``scale``."""
    from uda.city import build_city
    from uda.scales import resolve_scale

    plan_class = first_of("uda.synth.plan:Plan", "uda.generate:_Plan")  # generate's private _Plan up to 9825fce
    return plan_class(build_city(resolve_scale(scale), seed), seed)


def panel(n_series: int, days: int, *, seed: int = 0, missing: float = 0.02) -> np.ndarray:
    """A traffic-like panel ``(n_series, days * 288)``: daily and weekly shape, noise, gaps."""
    rng = np.random.default_rng(seed)
    season = 288
    t = np.arange(days * season)
    slot = (t % season) / season
    weekend = ((t // season) % 7) >= 5
    shape = 0.2 + np.exp(-0.5 * ((slot - 0.33) / 0.05) ** 2) + np.exp(-0.5 * ((slot - 0.72) / 0.06) ** 2)
    shape = np.where(weekend, 0.6 * shape, shape)
    scale = rng.uniform(300, 1500, n_series)[:, None]
    ar = np.zeros((n_series, t.size))
    eps = rng.normal(0, 0.05, (n_series, t.size))
    for i in range(1, t.size):
        ar[:, i] = 0.9 * ar[:, i - 1] + eps[:, i]
    y = scale * shape[None, :] * (1.0 + ar)
    y[rng.uniform(size=y.shape) < missing] = np.nan
    return y


def weekend_flags(n_time: int, season: int = 288) -> np.ndarray:
    """Per time step, whether its day is a weekend day (the panel starts on a Monday)."""
    return (((np.arange(n_time) // season) % 7) >= 5).astype(np.bool_)


def water_parameters() -> tuple[str, ...]:
    """The water table's guideline parameters, in column order."""
    return first_of("uda.contract:WATER_PARAMETERS", "uda.synth.water:PARAMETERS")


def water_block(scale: str, *, seed: int = 1) -> dict[str, np.ndarray]:
    """Water-quality series of every site of ``scale`` (as generated), grouped by site."""
    params = water_parameters()
    p = plan(scale, seed=seed)
    n_sites = p.city.tables["water_sites"].num_rows
    tab = p.water_chunk(0, n_sites)
    values = np.column_stack([tab[c].to_numpy().astype(np.float64) for c in params])
    site = tab["site_id"].to_numpy()
    offsets = np.searchsorted(site, np.arange(n_sites + 1)).astype(np.int64)
    ts = tab["ts"].cast("int64").to_numpy()
    return {"values": np.ascontiguousarray(values), "offsets": offsets, "ts": ts}


def tiny_dataset(folder: str | Path, *, seed: int = 1) -> str:
    """Generate the ``tiny`` dataset into ``folder`` (once) and return its path."""
    from uda.generate import generate
    from uda.scales import resolve_scale

    out = Path(folder) / f"tiny-{seed}"
    if not (out / "manifest.json").exists():
        generate(out, scale=resolve_scale("tiny"), seed=seed, workers=1)
    return str(out)
