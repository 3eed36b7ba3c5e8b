"""The generated city's road graph, zones and sensors as arrays, ready for assignment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from uda.errors import UserError
from uda.kernels.assign import Network

if TYPE_CHECKING:
    from uda.store import Dataset



#: BPR parameters used on the generated city (the "traditional" values).
CITY_BPR_B = 0.15
CITY_BPR_POWER = 4.0


def _node_index(node_id: np.ndarray, values: np.ndarray, what: str) -> np.ndarray:
    order = np.argsort(node_id)
    pos = np.searchsorted(node_id[order], values)
    bad = (pos >= node_id.size) | (node_id[order][np.minimum(pos, node_id.size - 1)] != values)
    if bad.any():
        msg = f"{what} refers to node {int(values[bad][0])}, which is not in the nodes table; regenerate the dataset"
        raise UserError(msg)
    return order[pos]


@dataclass
class CityGraph:
    """The generated city's road graph, zones and sensors as arrays (node indices 0-based).

    Attributes
    ----------
    node_id, link_id, zone_ids
        Dataset ids (links sorted by ``link_id``, zones by ``zone_id``).
    tail, head
        Link ends as node indices.
    length_m, free_speed_kmh, capacity_vph
        Link attributes.
    centroid
        Node index of each zone's centroid.
    population, jobs
        Per zone.
    sensor_link
        Link id of each sensor, indexed by ``sensor_id`` (``-1`` for unused ids).
    """

    node_id: np.ndarray
    link_id: np.ndarray
    zone_ids: np.ndarray
    tail: np.ndarray
    head: np.ndarray
    length_m: np.ndarray
    free_speed_kmh: np.ndarray
    capacity_vph: np.ndarray
    centroid: np.ndarray
    population: np.ndarray
    jobs: np.ndarray
    sensor_link: np.ndarray

    @property
    def free_flow_time_s(self) -> np.ndarray:
        """Free-flow travel time per link in seconds."""
        return self.length_m / (self.free_speed_kmh / 3.6)

    def network(self, link_time_s: np.ndarray, dests: np.ndarray, demand: np.ndarray | None = None) -> Network:
        """An assignment network from zone centroids to ``dests`` (zero demand by default)."""
        n_links = self.link_id.size
        return Network(num_nodes=self.node_id.size, tail=self.tail, head=self.head, free_flow_time=link_time_s,
                       b=np.full(n_links, CITY_BPR_B), capacity=self.capacity_vph,
                       power=np.full(n_links, CITY_BPR_POWER), origins=self.centroid, dests=dests,
                       demand=np.zeros((self.centroid.size, dests.size)) if demand is None else demand)


def read_city(ds: Dataset) -> CityGraph:
    """Read the city tables (nodes, links, zones, sensors) of a dataset into a :class:`CityGraph`.

    Raises
    ------
    UserError
        Links or zones naming unknown nodes, non-positive free speeds, negative lengths or
        capacities, negative sensor ids.
    """
    nodes = ds.read("nodes")
    links = ds.read("links").sort("link_id")
    zones = ds.read("zones").sort("zone_id")
    sensors = ds.read("sensors")
    node_id = nodes["node_id"].to_numpy().astype(np.int64)
    length = links["length_m"].to_numpy().astype(np.float64)
    free_speed = links["free_speed_kmh"].to_numpy().astype(np.float64)
    capacity = links["capacity_vph"].to_numpy().astype(np.float64)
    if not ((free_speed > 0).all() and (length >= 0).all() and (capacity >= 0).all()):
        msg = "links table has non-positive free speeds or negative lengths/capacities; regenerate the dataset"
        raise UserError(msg)
    sid = sensors["sensor_id"].to_numpy().astype(np.int64)
    if sid.size and sid.min() < 0:
        msg = f"sensors table has a negative sensor_id ({int(sid.min())}); regenerate the dataset"
        raise UserError(msg)
    sensor_link = np.full(int(sid.max(initial=-1)) + 1, -1, dtype=np.int64)
    sensor_link[sid] = sensors["link_id"].to_numpy()
    return CityGraph(
        node_id=node_id, link_id=links["link_id"].to_numpy().astype(np.int64),
        zone_ids=zones["zone_id"].to_numpy().astype(np.int64),
        tail=_node_index(node_id, links["from_node"].to_numpy().astype(np.int64), "links.from_node"),
        head=_node_index(node_id, links["to_node"].to_numpy().astype(np.int64), "links.to_node"),
        length_m=length, free_speed_kmh=free_speed, capacity_vph=capacity,
        centroid=_node_index(node_id, zones["centroid_node"].to_numpy().astype(np.int64), "zones.centroid_node"),
        population=zones["population"].to_numpy().astype(np.float64),
        jobs=zones["jobs"].to_numpy().astype(np.float64), sensor_link=sensor_link)
