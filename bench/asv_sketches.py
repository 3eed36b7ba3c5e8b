"""asv: mergeable sketches (HyperLogLog distinct counts, log-bucket quantiles) and their accuracy."""

from __future__ import annotations

import numpy as np

from uda.kernels.sketches import hll_add, hll_estimate, hll_new, qs_add, qs_new, qs_quantile


class HyperLogLog:
    """Distinct-count sketch over card ids with many repeats."""

    params = [[100_000, 2_000_000]]
    param_names = ["keys"]

    def setup(self, n):
        rng = np.random.default_rng(11)
        self.keys = rng.integers(0, n // 4, n).astype(np.int64)
        self.true = np.unique(self.keys).size
        hll_add(hll_new(), self.keys[:10])  # compile / load cache

    def time_hll_add(self, n):
        hll_add(hll_new(), self.keys)

    def track_relative_error(self, n):
        reg = hll_new()
        hll_add(reg, self.keys)
        return abs(hll_estimate(reg) / self.true - 1.0)

    track_relative_error.unit = "|estimate / true - 1|"


class Quantiles:
    """Quantile sketch over a skewed (log-normal) travel-time sample."""

    params = [[100_000, 2_000_000]]
    param_names = ["values"]

    def setup(self, n):
        rng = np.random.default_rng(12)
        self.values = rng.lognormal(6.0, 0.6, n)
        self.exact = np.quantile(self.values, [0.5, 0.95])
        qs_add(qs_new(), self.values[:10])  # compile / load cache

    def time_qs_add(self, n):
        qs_add(qs_new(), self.values)

    def track_p95_relative_error(self, n):
        counts = qs_new()
        qs_add(counts, self.values)
        est = float(np.asarray(qs_quantile(counts, 0.95)).ravel()[0])
        return float(abs(est / self.exact[1] - 1.0))

    track_p95_relative_error.unit = "|estimate / exact - 1|"
