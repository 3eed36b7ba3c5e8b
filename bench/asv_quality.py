"""asv: the one-scan data-quality measurement (quality kernel with HLL and quantile sketches) per table."""

from __future__ import annotations

import os

from .asv_data import first_of, tiny_dataset

#: The scan's entry point (uda/quality.py up to 9825fce, then the uda/quality/ package; same signature).
measure = first_of("uda.quality.scan:measure", "uda.quality:measure")


class QualityScan:
    """``uda.quality.scan.measure`` of each sensor table of the tiny dataset, Polars and Dask."""

    params = [["traffic", "taps", "water"], ["polars", "dask"]]
    param_names = ["table", "engine"]
    timeout = 600

    def setup_cache(self):
        return tiny_dataset(os.getcwd())

    def setup(self, path, table, engine):
        measure(path, table, engine=engine)  # compile / load cache

    def time_measure(self, path, table, engine):
        measure(path, table, engine=engine)

    def peakmem_measure(self, path, table, engine):
        measure(path, table, engine=engine)

    def track_distinct_keys_error(self, path, table, engine):
        return float(measure(path, table, engine=engine)["overall"]["distinct_keys_rel_error"])

    track_distinct_keys_error.unit = "relative error of the HLL distinct-key count"
