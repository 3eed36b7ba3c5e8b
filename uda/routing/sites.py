"""Site choice: p-median on population-weighted travel time between zone centroids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uda.errors import UserError
from uda.kernels.assign import all_or_nothing
from uda.kernels.pmedian import PMedianResult, p_median
from uda.routing.network import CityGraph


@dataclass
class SiteChoice:
    """Chosen sites and the site serving each zone.

    Attributes
    ----------
    site_nodes
        Node ids of the chosen sites.
    zone_site_nodes
        Node id of the site serving each zone (in zone order).
    result
        The p-median run (objective, greedy objective, swaps).
    """

    site_nodes: np.ndarray
    zone_site_nodes: np.ndarray
    result: PMedianResult


def choose_sites(city: CityGraph, link_time_s: np.ndarray, k: int) -> SiteChoice:
    """``k`` sites minimising population-weighted travel time from the zone centroids.

    Demand points are zones (weight = population); candidates are the distinct zone
    centroid nodes reachable from every zone; cost = travel time from the zone centroid
    with ``link_time_s`` per link (skims are zone-to-zone only).

    Raises
    ------
    UserError
        ``k`` exceeds the number of candidate sites.
    """
    nodes_c = np.unique(city.centroid)
    site_cost = all_or_nothing(city.network(city.free_flow_time_s, nodes_c), link_time_s).skim
    reachable = np.isfinite(site_cost).all(axis=0)
    candidates, site_cost = nodes_c[reachable], site_cost[:, reachable]
    if k > candidates.size:
        msg = (f"--sites {k} exceeds the {candidates.size} candidate sites (zone centroids reachable from "
               "every zone); ask for fewer sites")
        raise UserError(msg)
    pm = p_median(site_cost, city.population, k)
    return SiteChoice(site_nodes=city.node_id[candidates[pm.sites]],
                      zone_site_nodes=city.node_id[candidates[pm.assignment]], result=pm)
