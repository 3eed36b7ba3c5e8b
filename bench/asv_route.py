"""asv: shortest paths, traffic assignment and p-median kernels (route optimisation core)."""

from __future__ import annotations

import numpy as np

from uda.kernels.assign import all_or_nothing, assign
from uda.kernels.assign import warm_up as assign_warm_up
from uda.kernels.paths import csr_from_links, dijkstra, dijkstra_many
from uda.kernels.pmedian import p_median

from .asv_data import grid_links, grid_network, sioux_falls


class Dijkstra:
    """Binary-heap Dijkstra on a street grid, one source and 64 sources (``prange``)."""

    params = [[30, 100]]
    param_names = ["grid_side"]

    def setup(self, side):
        n, tail, head, length = grid_links(side)
        self.indptr, self.heads, slot_link = csr_from_links(n, tail, head)
        self.weights = np.ascontiguousarray(length[slot_link])
        self.sources = np.linspace(0, n - 1, 64).astype(np.int64)
        dijkstra_many(self.indptr, self.heads, self.weights, self.sources[:2])  # compile / load cache
        dijkstra(self.indptr, self.heads, self.weights, 0)

    def time_dijkstra_one_source(self, side):
        dijkstra(self.indptr, self.heads, self.weights, 0)

    def time_dijkstra_64_sources(self, side):
        dijkstra_many(self.indptr, self.heads, self.weights, self.sources)

    def peakmem_dijkstra_64_sources(self, side):
        dijkstra_many(self.indptr, self.heads, self.weights, self.sources)


def _network(name: str):
    return sioux_falls() if name == "sioux_falls" else grid_network(int(name.removeprefix("grid")))


class Assignment:
    """User-equilibrium assignment (Frank-Wolfe family): speed per iteration and convergence."""

    params = [["fw", "cfw", "bfw"], ["sioux_falls", "grid30"]]
    param_names = ["algorithm", "network"]
    timeout = 300

    def setup(self, algorithm, network):
        self.net = _network(network)
        assign_warm_up()

    def time_assign_20_iterations(self, algorithm, network):
        assign(self.net, algorithm=algorithm, gap=0.0, max_iter=20)

    def peakmem_assign_20_iterations(self, algorithm, network):
        assign(self.net, algorithm=algorithm, gap=0.0, max_iter=20)

    def track_relative_gap_after_20_iterations(self, algorithm, network):
        return assign(self.net, algorithm=algorithm, gap=0.0, max_iter=20).relative_gap

    track_relative_gap_after_20_iterations.unit = "relative gap"

    def track_iterations_to_gap_1e_3(self, algorithm, network):
        return assign(self.net, algorithm=algorithm, gap=1e-3, max_iter=2000).iterations

    track_iterations_to_gap_1e_3.unit = "iterations"


class AllOrNothing:
    """One all-or-nothing loading (shortest paths from every origin plus flow accumulation)."""

    params = [["sioux_falls", "grid30", "grid60"]]
    param_names = ["network"]

    def setup(self, network):
        self.net = _network(network)
        assign_warm_up()

    def time_all_or_nothing(self, network):
        all_or_nothing(self.net, self.net.free_flow_time)


class PMedian:
    """p-median site choice: greedy start plus best-improvement interchange."""

    params = [[200, 800], [5, 20]]
    param_names = ["candidates", "k"]

    def setup(self, candidates, k):
        rng = np.random.default_rng(3)
        pts = rng.uniform(0, 10_000, (candidates, 2))
        demand = rng.uniform(0, 10_000, (2 * candidates, 2))
        self.cost = np.sqrt(((demand[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2))
        self.weight = rng.uniform(100, 5_000, demand.shape[0])
        p_median(self.cost[:10, :10], self.weight[:10], 2)  # compile / load cache

    def time_p_median(self, candidates, k):
        p_median(self.cost, self.weight, k)

    def track_objective_vs_greedy(self, candidates, k):
        res = p_median(self.cost, self.weight, k)
        return res.objective / res.greedy_objective

    track_objective_vs_greedy.unit = "objective / greedy objective"
