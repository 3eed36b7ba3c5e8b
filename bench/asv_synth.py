"""asv: the Numba generator kernels for traffic, smart-card taps and water quality."""

from __future__ import annotations

from .asv_data import plan


class Generators:
    """One chunk of each sensor table, from the generator plan of a preset (kernel plus Arrow)."""

    params = [["tiny", "small"]]
    param_names = ["scale"]
    timeout = 300

    def setup(self, scale):
        self.plan = plan(scale)
        sc = self.plan.city.scale
        self.sensors = sc.sensors
        self.sites = self.plan.city.tables["water_sites"].num_rows
        self.plan.traffic_chunk(0, 1)  # compile / load cache
        self.plan.water_chunk(0, 1)
        self.plan.passenger_chunk(0, 1)

    def time_traffic_all_sensors(self, scale):
        self.plan.traffic_chunk(0, self.sensors)

    def peakmem_traffic_all_sensors(self, scale):
        self.plan.traffic_chunk(0, self.sensors)

    def time_water_all_sites(self, scale):
        self.plan.water_chunk(0, self.sites)

    def time_passenger_one_day(self, scale):
        self.plan.passenger_chunk(0, 1)
