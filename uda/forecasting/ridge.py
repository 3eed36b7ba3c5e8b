"""The ridge family: direct linear models per series and horizon, chosen by blocked cross-validation.

One class, :class:`Ridge`, configured three ways in :mod:`uda.forecasting.registry`:
``ridge`` (the series' own history and calendar), ``ridge_sp`` (plus the neighbours' mean
signal) and ``ridge_st`` (plus the series of the best-correlated neighbours). The kernels
are in :mod:`uda.kernels.linear`.
"""

from __future__ import annotations

import numpy as np

from uda.errors import UserError
from uda.forecasting.models import Forecaster
from uda.forecasting.panel import Calendar, Context, standardise
from uda.kernels import forecast as K
from uda.kernels import linear as KL

#: Recent deviations used by default.
DEFAULT_LAGS = 6
#: Raw recent values used by the raw-level candidates of the ridge family.
RAW_LAGS = 3


def _filled(P: np.ndarray, fallback: np.ndarray | float) -> np.ndarray:
    """``P`` with its missing values taken from ``fallback``."""
    return np.where(np.isnan(P), fallback, P)


def _shift(X: np.ndarray, k: int) -> np.ndarray:
    """``X`` delayed by ``k`` steps along time (NaN for the first ``k``)."""
    out = np.full_like(X, np.nan)
    out[:, k:] = X[:, :X.shape[1] - k] if k < X.shape[1] else out[:, k:]
    return out


class Ridge(Forecaster):
    """Direct linear models chosen per series and horizon by validation error.

    For every series and horizon a family of direct models (one per horizon) predicts the
    standardised value at the target from: the last ``lags`` values (forward-filled), the
    historical-average profile at the origin, and, at the target, the profile by day type,
    the profile over all recent days, the profile by weekday, the value at the same slot
    on the most recent day and week before the origin, and the weekend flag. The candidates
    differ in the features they use and in the baseline they are shrunk towards:

    * ``level``: the recent values only, shrunk towards the last value (raw level,
      persistence);
    * ``profile`` / ``profile_slot``: the target-side profiles only, shrunk towards the
      historical average by day type / over all days;
    * ``full``: everything, shrunk towards the historical average;
    * ``dev``: everything, shrunk towards "last value plus the change of the profile"
      (profile-relative persistence);
    * ``dev_short``: ``dev`` with the last 2 values only;

    each with every penalty of ``lams`` (a large penalty is the baseline itself), each
    fitted by least squares and (``robust``) by least squares weighted by ``1 / |residual|``
    of a pilot fit (one step towards least absolute deviations, for spiky series). The
    candidates are scored by blocked cross-validation inside ``[0, val_end)`` (the first
    60 %, then ``folds`` blocks, each predicted by the fit on everything before it); the
    ``top`` best per series and horizon are refitted on ``[0, val_end)`` and averaged.
    Missing inputs are forward-filled; profiles missing for a short history fall back to
    the coarser one (by weekday -> by day type -> all days -> the training mean).

    Parameters
    ----------
    lags
        Recent values used.
    lams
        Penalties tried (on standardised values).
    weeks
        Weeks of history in the profiles.
    max_pairs
        At most about this many origins per series in the fits (a stride beyond it).
    max_val
        At most about this many origins per series in each cross-validation fold.
    folds
        Cross-validation folds.
    top
        Candidates averaged.
    robust
        Also fit every candidate with robust weights.
    l1_steps
        Further reweighting steps of the robust candidates chosen.
    neighbour_lags
        Recent deviations of the neighbours' mean standardised signal used (0: none; the
        ``nb`` families join the candidates).
    nearest_lags
        Recent deviations of each of the nearest neighbours' series used, each with its own
        coefficients (0: none).
    """

    def __init__(self, lags: int = DEFAULT_LAGS, lams=(0.01, 0.1, 1.0, 10.0), weeks: int = 4,
                 max_pairs: int = 600, max_val: int = 150, folds: int = 3, top: int = 3,
                 robust: bool = True, l1_steps: int = 1, neighbour_lags: int = 0,
                 nearest_lags: int = 0):
        self.lags = lags
        self.neighbour_lags = neighbour_lags
        self.nearest_lags = nearest_lags
        self.robust = robust
        self.l1_steps = l1_steps
        self.top = top
        self.folds = folds
        self.max_val = max_val
        self.lams = np.asarray(lams, dtype=np.float64)
        self.weeks = weeks
        self.max_pairs = max_pairs

    @property
    def needs_neighbours(self) -> bool:
        """True if the model reads the neighbour signals."""
        return bool(self.neighbour_lags or self.nearest_lags)

    def history(self, season: int) -> int:
        """Two days plus the recent deviations used."""
        return 2 * season + self.lags

    # ----------------------------------------------------------------- features
    def _deviation(self, X: np.ndarray, cal: Calendar) -> np.ndarray:
        """Forward-filled ``X`` minus its day-type profile (0 where undefined)."""
        P = K.profile_matrix(X, cal.weekend, cal.season, self.weeks)
        return np.nan_to_num(K.forward_fill(X) - P)

    def _panels(self, Z: np.ndarray, ctx: Context):
        """The panel stack and the feature layout (see :mod:`uda.kernels.linear`).

        The stack is allocated once and filled panel by panel, so a block's peak is the
        stack plus one or two panels of temporaries (not a list of panels and its copy).
        """
        cal = ctx.calendar
        if self.neighbour_lags and ctx.neighbours is None:
            msg = f"model {self.name!r} needs neighbour information, which this input does not provide"
            raise UserError(msg)
        near = None
        if self.nearest_lags:
            near = ctx.nearest if ctx.nearest is not None else np.full((Z.shape[0], 0, Z.shape[1]), np.nan)
        n_extra = (1 if self.neighbour_lags else 0) + (near.shape[1] if near is not None else 0)
        P = np.empty((7 + n_extra, *Z.shape))
        zeros = np.zeros_like(cal.weekend)
        # panels: 0 forward-filled values, 1 day-type profile, 2 all-days profile,
        # 3 weekly profile, 4 same slot yesterday, 5 same slot last week, 6 deviation (0 - 1)
        P[0] = K.forward_fill(Z)
        P[2] = _filled(K.periodic_mean(Z, zeros, cal.season, 14), 0.0)
        P[1] = _filled(K.profile_matrix(Z, cal.weekend, cal.season, self.weeks), P[2])
        P[3] = _filled(K.periodic_mean(Z, zeros, 7 * cal.season, self.weeks), P[1])
        P[4] = _filled(_shift(P[0], cal.season), P[1])
        P[5] = _filled(_shift(P[0], 7 * cal.season), P[3])
        np.subtract(P[0], P[1], out=P[6])
        # the last RAW_LAGS raw values (the raw-level family), then the last `lags`
        # deviations from the day-type profile (the others)
        opan = [0] * RAW_LAGS + [1] + [6] * self.lags
        olag = list(range(1, RAW_LAGS + 1)) + [1] + list(range(1, self.lags + 1))
        k = 7
        if self.neighbour_lags:
            P[k] = self._deviation(ctx.neighbours, cal)
            opan += [k] * self.neighbour_lags
            olag += list(range(1, self.neighbour_lags + 1))
            k += 1
        for j in range(near.shape[1] if near is not None else 0):
            P[k] = self._deviation(np.ascontiguousarray(near[:, j]), cal)
            opan += [k] * self.nearest_lags
            olag += list(range(1, self.nearest_lags + 1))
            k += 1
        spec = (np.asarray(opan, np.int64), np.asarray(olag, np.int64),
                np.asarray([1, 2, 3, 4, 5], np.int64))
        return P, spec

    def _candidates(self, spec) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Feature masks, priors, penalties and family names of every candidate."""
        opan, olag, tpan = spec
        Fa = 1 + len(opan)
        F = Fa + len(tpan) + 1
        inter = np.zeros(F, bool)
        inter[0] = True
        raw = np.zeros(F, bool)
        raw[1:1 + RAW_LAGS] = True
        p_o = 1 + RAW_LAGS  # the day-type profile at the origin
        d0 = p_o + 1  # first deviation lag
        devs = np.zeros(F, bool)
        devs[d0:d0 + self.lags] = True
        short = np.zeros(F, bool)
        short[d0:d0 + 2] = True
        nb = np.zeros(F, bool)
        nb[d0 + self.lags:Fa] = True
        tgt = np.zeros(F, bool)
        tgt[Fa:] = True

        def prior(*idx: int) -> np.ndarray:
            p = np.zeros(F)
            p[list(idx)] = 1.0
            return p

        last = prior(1)  # the last value
        ha = prior(Fa)  # the day-type profile at the target
        slot = prior(Fa + 1)  # the profile over all recent days at the target (``ha_slot``)
        dev = prior(d0, Fa)  # last deviation plus the profile at the target
        dev_raw = prior(1, Fa)
        dev_raw[p_o] = -1.0  # the same from the raw value: last + profile(t) - profile(o - 1)
        fams = [("level", inter | raw, last), ("level_dev", inter | raw | (dev_raw < 0) | tgt, dev_raw),
                ("profile", inter | tgt, ha),
                ("profile_slot", inter | tgt, slot), ("full", inter | devs | tgt, ha),
                ("dev", inter | devs | tgt, dev), ("dev_short", inter | short | tgt, dev)]
        if nb.any():
            fams += [("full_nb", inter | devs | nb | tgt, ha), ("dev_nb", inter | devs | nb | tgt, dev)]
        masks, priors, lams, names = [], [], [], []
        for fam, mask, prior in fams:
            for lam in self.lams:
                masks.append(mask)
                priors.append(prior)
                lams.append(lam)
                names.append(fam)
        return np.array(masks), np.array(priors), np.asarray(lams, np.float64), names

    # ----------------------------------------------------------------- fit / predict
    def fit(self, Y, ctx, *, train_end, val_end, horizons):
        cal = ctx.calendar
        self.mu, self.sd = standardise(Y, train_end)
        self.horizons = np.asarray(horizons, dtype=np.int64)
        Z = self._scaled(Y)
        P, spec = self._panels(Z, ctx)
        self._built = (Y, ctx, P, spec)  # predict on the same panel reuses them
        masks, priors, lams, self.families = self._candidates(spec)
        stride = max(1, val_end // self.max_pairs)
        # blocked cross-validation: the first 60 % of [0, val_end), then `folds` blocks;
        # fold j is predicted by the fit on everything before it
        edges = np.unique(np.linspace(0.6 * val_end, val_end, self.folds + 1).astype(np.int64))
        edges = np.concatenate([[0], edges])
        G, b, m = KL.lin_gram(P, Z, *spec, cal.weekend, self.horizons, edges, stride)
        default = self.families.index("dev") + len(self.lams) // 2  # used without validation pairs
        sums = [(G, b, m)]
        if self.robust:
            # every candidate also fitted with robust weights, 1 / |residual| of a pilot fit
            # (`dev`): one step towards least absolute deviations, for spiky series; the
            # cross-validation chooses between the plain and the robust fits
            pilot = KL.lin_solve(G.sum(axis=2), b.sum(axis=2), m.sum(axis=2), masks[[default]],
                                priors[[default]], lams[[default]])[:, :, 0]
            sums.append(KL.lin_gram(P, Z, *spec, cal.weekend, self.horizons, edges, stride, pilot))
        self.families = self.families * len(sums)
        allm, allp, alll = (np.concatenate([x] * len(sums)) for x in (masks, priors, lams))
        err, cnt = KL.lin_cv_error(P, Z, *sums[0], *sums[-1], allm, allp, alll, len(lams), *spec,
                                  cal.weekend, self.horizons, edges, self.max_val)
        # the `top` best candidates by cross-validated MAE, averaged (less winner's curse
        # than the single best when candidates differ by noise), refitted on [0, val_end)
        ranked = np.argsort(err, axis=2, kind="stable")[:, :, :self.top]
        self.choice = np.where(cnt[:, :, None] > 0, ranked, default)
        G, b, m = (np.stack(x) for x in zip(*[[a.sum(axis=2) for a in part] for part in sums],
                                            strict=True))
        self.coef = KL.lin_solve_mean(G, b, m, allm, allp, alll, self.choice)
        robust = (self.choice >= len(lams)).any(axis=(1, 2))
        rows = slice(None) if robust.all() else np.flatnonzero(robust)
        for _ in range(self.l1_steps if robust.any() else 0):
            # further reweighting of the series whose chosen candidates include robust ones
            # (the others are skipped in place: no copy of the panel stack)
            Gw, bw, mw = KL.lin_gram(P, Z, *spec, cal.weekend, self.horizons, edges[[0, -1]], stride,
                                    self.coef, active=robust)
            G[1][rows], b[1][rows], m[1][rows] = Gw[rows, :, 0], bw[rows, :, 0], mw[rows, :, 0]
            self.coef[rows] = KL.lin_solve_mean(G[:, rows], b[:, rows], m[:, rows], allm, allp,
                                               alll, self.choice[rows])
        return self

    def _scaled(self, Y: np.ndarray) -> np.ndarray:
        """``Y`` on the scale the model was fitted in (training mean and standard deviation)."""
        return (Y - self.mu[:, None]) / self.sd[:, None]

    def chosen(self) -> dict[str, int]:
        """How often each family of candidates is among those chosen (series x horizon x top)."""
        fam = np.asarray(self.families)[self.choice]
        names, counts = np.unique(fam, return_counts=True)
        return {str(k): int(v) for k, v in zip(names, counts, strict=True)}

    def predict(self, Y, ctx, origins, horizons):
        cal = ctx.calendar
        horizons = np.asarray(horizons, dtype=np.int64)
        pos = [int(np.flatnonzero(self.horizons == h)[0]) for h in horizons]
        built = self.__dict__.pop("_built", None)
        if built is not None and built[0] is Y and built[1] is ctx:
            P, spec = built[2], built[3]
        else:
            P, spec = self._panels(self._scaled(Y), ctx)
        out = KL.lin_predict(P, np.ascontiguousarray(self.coef[:, pos]), *spec, cal.weekend,
                            horizons, np.asarray(origins, dtype=np.int64))
        return out * self.sd[:, None, None] + self.mu[:, None, None]
