"""Additive Holt-Winters with a daily season, smoothing parameters chosen per series on a grid."""

from __future__ import annotations

import numpy as np

from uda.forecasting.models import Forecaster
from uda.kernels import forecast as K


class HoltWinters(Forecaster):
    """Additive Holt-Winters per series; ``(alpha, beta, gamma)`` by least one-step squared
    error over the training part, searched on the grid ``alphas x betas x gammas``.

    Parameters
    ----------
    alphas, betas, gammas
        Candidate level, trend and season smoothing parameters.
    """

    def __init__(self, alphas=(0.05, 0.1, 0.2, 0.4, 0.7), betas=(0.0, 0.01),
                 gammas=(0.05, 0.1, 0.2, 0.4)):
        self.alphas = np.asarray(alphas, dtype=np.float64)
        self.betas = np.asarray(betas, dtype=np.float64)
        self.gammas = np.asarray(gammas, dtype=np.float64)

    def fit(self, Y, ctx, *, train_end, val_end, horizons):
        self.train_end = train_end
        self.params = K.hw_fit(np.ascontiguousarray(Y[:, :train_end]), ctx.calendar.season,
                               self.alphas, self.betas, self.gammas)
        return self

    def predict(self, Y, ctx, origins, horizons):
        return K.hw_predict(Y, self.params, ctx.calendar.season, self.train_end, origins, horizons)
