"""asv: forecasters of the flow task (fit plus rolling-origin predict) and their error."""

from __future__ import annotations

import numpy as np

from uda.kernels.forecast import forward_fill

from .asv_data import first_of, panel

# The one evaluator (uda.forecasting.evaluation.evaluate) is flow's panel evaluator of before the
# redesign (uda.tasks.flow.evaluate_panel, up to 9825fce): same signature and the same work (one
# block of every series with Polars), so both revisions are timed on it. asv at 9825fce timed the
# older whole-panel uda.forecast.evaluate, which the CLI did not run.
evaluate = first_of("uda.forecasting.evaluation:evaluate", "uda.tasks.flow:evaluate_panel")
Panel = first_of("uda.forecasting.panel:Panel", "uda.forecast:Panel")
MODELS = first_of("uda.forecasting.registry:MODELS", "uda.forecast:MODELS")

HORIZONS = [1, 12]


class Forecasters:
    """Every registered forecaster on a seeded 14-day, 5-minute panel (70/10/20 split)."""

    params = [list(MODELS), [50, 200]]
    param_names = ["model", "series"]
    timeout = 300

    def setup(self, model, series):
        y = panel(series, 14)
        self.panel = Panel(y, [f"s{i}" for i in range(series)], np.datetime64("2026-03-02T00:00"), 300)
        small = Panel(y[:4, : 288 * 8], self.panel.ids[:4], self.panel.start, 300)
        evaluate(small, models=model, horizons=HORIZONS)  # compile / load cache

    def time_evaluate(self, model, series):
        evaluate(self.panel, models=model, horizons=HORIZONS)

    def peakmem_evaluate(self, model, series):
        evaluate(self.panel, models=model, horizons=HORIZONS)

    def track_mae_h1(self, model, series):
        return evaluate(self.panel, models=model, horizons=HORIZONS)["models"][model]["1"]["mae"]

    track_mae_h1.unit = "veh/h"

    def track_mae_h12(self, model, series):
        return evaluate(self.panel, models=model, horizons=HORIZONS)["models"][model]["12"]["mae"]

    track_mae_h12.unit = "veh/h"


class ForwardFill:
    """Causal forward fill of a panel with 2 % gaps."""

    params = [[200, 2000]]
    param_names = ["series"]

    def setup(self, series):
        self.y = panel(series, 14)
        forward_fill(self.y[:2, :10])

    def time_forward_fill(self, series):
        forward_fill(self.y)
