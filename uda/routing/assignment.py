"""Assignment runs: option checks, the labelled result and its summary, TNTP networks."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from uda.errors import UserError
from uda.io.tntp import TntpNetwork, TntpTrips, read_folder
from uda.kernels.assign import (
    ALGORITHMS,
    AssignmentResult,
    Network,
    all_or_nothing,
    assign,
    parallel_blocks,
    warm_up,
)

#: What to do with demand between OD pairs that have no path.
UNREACHABLE_POLICIES = ("error", "drop")
#: How many of the most congested links a summary lists.
TOP_LINKS = 10


def check_algorithm(algorithm: str) -> str:
    """Return ``algorithm`` if known, else raise :class:`UserError`."""
    if algorithm not in ALGORITHMS:
        msg = f"unknown assignment algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
        raise UserError(msg)
    return algorithm


def check_finite(**values: float) -> None:
    """Refuse NaN and infinite option values (``--trip-rate inf`` gives NaN demand)."""
    for name, value in values.items():
        if not math.isfinite(value):
            msg = f"--{name.replace('_', '-')} {value} must be a finite number"
            raise UserError(msg)


def check_reachable(net: Network, *, unreachable: str = "error",
                    origin_ids: np.ndarray | None = None, dest_ids: np.ndarray | None = None) -> tuple[int, float]:
    """OD pairs with demand but no path, and their demand; an error unless ``unreachable="drop"``.

    Parameters
    ----------
    net
        Network and demand.
    unreachable
        ``"error"``: raise :class:`UserError` naming the first such pair. ``"drop"``: leave
        that demand unassigned; the caller reports the returned count and demand.
    origin_ids, dest_ids
        Labels of the demand rows and columns used in the message (default: indices).

    Returns
    -------
    (pairs, demand)
    """
    if unreachable not in UNREACHABLE_POLICIES:
        msg = f"unknown unreachable policy {unreachable!r}; choose one of {', '.join(UNREACHABLE_POLICIES)}"
        raise UserError(msg)
    aon = all_or_nothing(net, net.free_flow_time)
    if aon.unreachable_pairs and unreachable == "error":
        i, j = (int(k[0]) for k in np.nonzero(np.isinf(aon.skim) & (net.demand > 0)))
        o = origin_ids[i] if origin_ids is not None else net.origins[i]
        d = dest_ids[j] if dest_ids is not None else net.dests[j]
        msg = (f"{aon.unreachable_pairs} OD pairs with demand {aon.unreachable_demand:g} have no path "
               f"(first: {o} -> {d}); connect the network or use --unreachable drop to leave that demand unassigned")
        raise UserError(msg)
    return aon.unreachable_pairs, aon.unreachable_demand


@dataclass
class RouteAssignment:
    """An assignment result with link labels, ready to report or write.

    Attributes
    ----------
    result
        The raw :class:`~uda.kernels.assign.AssignmentResult`.
    init_node, term_node
        Link ends in the caller's node labels (TNTP numbers or city node ids).
    capacity
        Link capacities, for volume/capacity ratios.
    algorithm, compile_seconds, total_demand
        How the run was made and the demand it assigned.
    """

    result: AssignmentResult
    init_node: np.ndarray
    term_node: np.ndarray
    capacity: np.ndarray
    algorithm: str
    compile_seconds: float
    total_demand: float

    @property
    def vc(self) -> np.ndarray:
        """Volume/capacity ratio per link (NaN where capacity is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.capacity > 0, self.result.flow / np.where(self.capacity > 0, self.capacity, 1), np.nan)

    def most_congested(self, k: int = TOP_LINKS) -> list[dict[str, Any]]:
        """The ``k`` links with the highest volume/capacity ratio."""
        vc = self.vc
        order = np.argsort(-np.nan_to_num(vc, nan=-np.inf), kind="stable")[:k]
        r = self.result
        return [{"init_node": int(self.init_node[i]), "term_node": int(self.term_node[i]),
                 "flow": float(r.flow[i]), "capacity": float(self.capacity[i]),
                 "vc": float(vc[i]), "cost": float(r.cost[i])} for i in order]

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary: quality, timing, history and the most congested links."""
        r = self.result
        vc = self.vc
        return {
            "algorithm": self.algorithm,
            "relative_gap": r.relative_gap,
            "objective": r.objective,
            "total_travel_time": r.total_travel_time,
            "shortest_path_travel_time": r.shortest_path_travel_time,
            "iterations": r.iterations,
            "converged": r.converged,
            "seconds": r.seconds,
            "compile_seconds": self.compile_seconds,
            "links": int(r.flow.size),
            "total_demand": self.total_demand,
            "unreachable_demand": r.unreachable_demand,
            "unreachable_pairs": r.unreachable_pairs,
            "max_vc": float(np.nanmax(vc)) if np.isfinite(vc).any() else None,
            "links_over_capacity": int(np.sum(vc > 1.0)),
            "most_congested": self.most_congested(),
            "gap_history": r.gap_history,
            "objective_history": r.objective_history,
        }


def tntp_network(net: TntpNetwork, trips: TntpTrips) -> Network:
    """An assignment :class:`Network` from TNTP network and trips (see :mod:`uda.io.tntp`).

    Node ``k`` of the files becomes index ``k - 1``; zone ``z`` is node ``z``; nodes
    below ``<FIRST THRU NODE>`` are not passed through.
    """
    zones = np.arange(net.num_zones, dtype=np.int64)
    return Network(
        num_nodes=net.num_nodes, tail=net.init_node.astype(np.int64) - 1,
        head=net.term_node.astype(np.int64) - 1, free_flow_time=net.free_flow_time, b=net.b,
        capacity=net.capacity, power=net.power, origins=zones, dests=zones, demand=trips.demand,
        first_thru=net.first_thru_node - 1)


def assign_tntp(folder: str | os.PathLike, *, algorithm: str = "bfw", gap: float = 1e-4,
                max_iter: int = 1000, unreachable: str = "error") -> RouteAssignment:
    """Read a TNTP folder and run user-equilibrium assignment on it.

    Parameters
    ----------
    folder
        Folder with ``<Name>_net.tntp`` and ``<Name>_trips.tntp``.
    algorithm
        One of :data:`~uda.kernels.assign.ALGORITHMS`.
    gap
        Target relative gap.
    max_iter
        Iteration limit.
    unreachable
        ``"error"`` or ``"drop"`` for demand between zones without a path.

    Returns
    -------
    RouteAssignment
        Links labelled with the TNTP node numbers; ``compile_seconds`` is the Numba
        compile/cache-load time, measured apart from ``result.seconds``.
    """
    check_algorithm(algorithm)
    check_finite(gap=gap)
    if not (gap >= 0):
        msg = f"--gap must be >= 0, got {gap}"
        raise UserError(msg)
    if max_iter < 0:
        msg = f"--max-iter must be >= 0, got {max_iter}"
        raise UserError(msg)
    tnet, trips = read_folder(folder)
    net = tntp_network(tnet, trips)
    compile_seconds = warm_up(parallel=parallel_blocks(net) > 1)
    zone_ids = np.arange(1, tnet.num_zones + 1)
    check_reachable(net, unreachable=unreachable, origin_ids=zone_ids, dest_ids=zone_ids)
    result = assign(net, algorithm=algorithm, gap=gap, max_iter=max_iter)
    return RouteAssignment(result=result, init_node=tnet.init_node, term_node=tnet.term_node,
                           capacity=tnet.capacity, algorithm=algorithm,
                           compile_seconds=compile_seconds, total_demand=float(trips.demand.sum()))
