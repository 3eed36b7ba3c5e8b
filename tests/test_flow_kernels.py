"""Forecasting kernels against slow NumPy / statsmodels references (gaps, constant series)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uda.forecasting.panel import Calendar
from uda.kernels import forecast as K
from uda.kernels import linear as KL

SEASON = 8  # a tiny "day" of 8 steps keeps the references fast


def _panel(n=4, days=9, seed=0, gaps=0.1, constant_row=True):
    rng = np.random.default_rng(seed)
    T = days * SEASON
    t = np.arange(T)
    Y = 50 + 20 * np.sin(2 * np.pi * t / SEASON)[None, :] + rng.normal(0, 3, (n, T))
    Y[rng.random((n, T)) < gaps] = np.nan
    if constant_row:
        Y[0] = 7.0
    return Y


def _cal(T):
    # start on a Monday so days 5 and 6 are a weekend; 8 steps of 3 h make a day
    return Calendar.regular(np.datetime64("2024-01-01T00:00"), 10800, T)


# --------------------------------------------------------------------------- naive


def test_forward_fill_matches_loop():
    Y = _panel()
    Y[1, :3] = np.nan
    ref = Y.copy()
    for i in range(Y.shape[0]):
        for t in range(1, Y.shape[1]):
            if np.isnan(ref[i, t]):
                ref[i, t] = ref[i, t - 1]
    np.testing.assert_array_equal(K.forward_fill(Y), ref)


def _last_ref(Y, origins, horizons):
    out = np.full((Y.shape[0], len(origins), len(horizons)), np.nan)
    for i in range(Y.shape[0]):
        for a, o in enumerate(origins):
            obs = np.flatnonzero(~np.isnan(Y[i, :o]))
            if obs.size:
                out[i, a, :] = Y[i, obs[-1]]
    return out


def _snaive_ref(Y, origins, horizons, period, max_back):
    out = np.full((Y.shape[0], len(origins), len(horizons)), np.nan)
    for i in range(Y.shape[0]):
        for a, o in enumerate(origins):
            for c, h in enumerate(horizons):
                t = o + h - 1
                cands = [t - k * period for k in range(1, 100) if 0 <= t - k * period < o]
                for src in cands[:max_back]:
                    if not np.isnan(Y[i, src]):
                        out[i, a, c] = Y[i, src]
                        break
    return out


def _ha_ref(Y, origins, horizons, weekend, season, weeks):
    out = np.full((Y.shape[0], len(origins), len(horizons)), np.nan)
    for i in range(Y.shape[0]):
        for a, o in enumerate(origins):
            for c, h in enumerate(horizons):
                t = o + h - 1
                vals = [Y[i, t - j * season] for j in range(1, 7 * weeks + 1)
                        if 0 <= t - j * season < o and weekend[t - j * season] == weekend[t]]
                vals = [v for v in vals if not np.isnan(v)]
                if vals:
                    out[i, a, c] = np.mean(vals)
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), gaps=st.sampled_from([0.0, 0.2, 0.6, 1.0]),
       hs=st.lists(st.integers(1, 20), min_size=1, max_size=3, unique=True))
def test_naive_kernels_match_references(seed, gaps, hs):
    Y = _panel(n=3, days=16, seed=seed, gaps=gaps)
    horizons = np.array(sorted(hs), dtype=np.int64)
    T = Y.shape[1]
    origins = np.arange(1, T - horizons.max() + 1, 5, dtype=np.int64)
    cal = _cal(T)
    np.testing.assert_array_equal(K.last_value_predict(Y, origins, horizons),
                                  _last_ref(Y, origins, horizons))
    for period, back in ((SEASON, 4), (7 * SEASON, 2)):
        np.testing.assert_array_equal(K.seasonal_naive_predict(Y, origins, horizons, period, back),
                                      _snaive_ref(Y, origins, horizons, period, back))
    np.testing.assert_allclose(
        K.historical_average_predict(Y, origins, horizons, cal.weekend, SEASON, 2),
        _ha_ref(Y, origins, horizons, cal.weekend, SEASON, 2), rtol=1e-12)


def test_constant_series_naive_forecasts_are_constant():
    Y = np.full((2, 10 * SEASON), 5.0)
    Y[1, ::3] = np.nan
    horizons = np.array([1, 4, 9])
    origins = np.arange(2 * SEASON, 9 * SEASON, dtype=np.int64)
    cal = _cal(Y.shape[1])
    for pred in (K.last_value_predict(Y, origins, horizons),
                 K.seasonal_naive_predict(Y, origins, horizons, SEASON, 4),
                 K.historical_average_predict(Y, origins, horizons, cal.weekend, SEASON, 1)):
        ok = np.isfinite(pred)  # HA has no earlier Saturday in a 1-week window: NaN there
        assert ok.mean() > 0.75
        assert np.all(pred[ok] == 5.0)


def test_calendar_weekend_and_slot():
    cal = Calendar.regular(np.datetime64("2024-01-06T21:00"), 3600, 30)  # a Saturday
    assert cal.season == 24
    assert cal.slot[:4].tolist() == [21, 22, 23, 0]
    assert cal.weekend[:3].tolist() == [1, 1, 1]  # Saturday evening, then Sunday
    assert cal.weekend[3 + 24] == 0  # Monday 00:00


# --------------------------------------------------------------------------- Holt-Winters


def _hw_ref(y, alpha, beta, gamma, l0, b0, s0, origins, horizons):
    """Plain-Python additive Holt-Winters with missing values kept on the forecast path."""
    m = len(s0)
    seas = list(s0)
    level, trend, sse = l0, b0, 0.0
    out = np.full((len(origins), len(horizons)), np.nan)
    for t in range(len(y) + 1):
        for a, o in enumerate(origins):
            if o == t:
                for c, h in enumerate(horizons):
                    out[a, c] = level + h * trend + seas[(t + h - 1) % m]
        if t == len(y):
            break
        k = t % m
        if np.isnan(y[t]):
            level = level + trend
            continue
        sse += (y[t] - level - trend - seas[k]) ** 2
        new_level = alpha * (y[t] - seas[k]) + (1 - alpha) * (level + trend)
        new_trend = beta * (new_level - level) + (1 - beta) * trend
        seas[k] = gamma * (y[t] - level - trend) + (1 - gamma) * seas[k]
        level, trend = new_level, new_trend
    return sse, out


def test_hw_filter_matches_statsmodels_without_gaps():
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    y = _panel(n=2, days=6, seed=3, gaps=0.0, constant_row=False)[1]
    l0, b0, s0 = K.hw_initial_state(y, SEASON)
    alpha, beta, gamma = 0.3, 0.05, 0.2
    H = np.arange(1, 2 * SEASON + 1)
    T = len(y)
    out = np.full((1, len(H)), np.nan)
    sse = K.hw_filter(y, alpha, beta, gamma, l0, b0, s0, T, np.array([T]), H, out)
    model = ExponentialSmoothing(y, trend="add", seasonal="add", seasonal_periods=SEASON,
                                 initialization_method="known", initial_level=l0,
                                 initial_trend=b0, initial_seasonal=s0)
    res = model.fit(smoothing_level=alpha, smoothing_trend=beta, smoothing_seasonal=gamma,
                    optimized=False)
    np.testing.assert_allclose(sse, res.sse, rtol=1e-9)
    np.testing.assert_allclose(y - res.resid, res.fittedvalues, rtol=1e-12)
    # statsmodels' h-step forecasts for h = 1 .. m-1 use s[T+h-m] as we do; at h = m it reuses
    # the seasonal index of one season earlier instead of the one just updated (Hyndman's
    # s[T+h-m(k+1)] with k = 0 is s[T]), so those steps are compared with the formula.
    short = H < SEASON
    np.testing.assert_allclose(out[0][short], res.forecast(len(H))[short], rtol=1e-9)
    level, trend = res.level[-1], res.trend[-1]
    np.testing.assert_allclose(out[0][SEASON - 1], level + SEASON * trend + res.season[-1], rtol=1e-9)


def test_hw_with_gaps_matches_reference_and_constant_is_flat():
    Y = _panel(n=3, days=7, seed=5, gaps=0.15)
    origins = np.array([2 * SEASON, 3 * SEASON + 3, 6 * SEASON], dtype=np.int64)
    horizons = np.array([1, 5, 11], dtype=np.int64)
    params = K.hw_fit(Y, SEASON, np.array([0.1, 0.5]), np.array([0.0, 0.1]), np.array([0.1, 0.3]))
    pred = K.hw_predict(Y, params, SEASON, Y.shape[1], origins, horizons)
    for i in range(Y.shape[0]):
        l0, b0, s0 = K.hw_initial_state(Y[i], SEASON)
        _, ref = _hw_ref(Y[i, :origins[-1]], *params[i], l0, b0, s0, origins, horizons)
        np.testing.assert_allclose(pred[i], ref, rtol=1e-9)
        # the chosen grid point has the least SSE of the grid
        sses = [_hw_ref(Y[i], a, b, g, l0, b0, s0, [], [])[0]
                for a in (0.1, 0.5) for b in (0.0, 0.1) for g in (0.1, 0.3)]
        best = _hw_ref(Y[i], *params[i], l0, b0, s0, [], [])[0]
        assert best == pytest.approx(min(sses), rel=1e-12)
    np.testing.assert_allclose(pred[0], 7.0, rtol=1e-12)


# --------------------------------------------------------------------------- ridge


def _profile_ref(Y, weekend, weeks):
    P = np.full(Y.shape, np.nan)
    for i in range(Y.shape[0]):
        for t in range(Y.shape[1]):
            vals = [Y[i, t - j * SEASON] for j in range(1, 7 * weeks + 1)
                    if t - j * SEASON >= 0 and weekend[t - j * SEASON] == weekend[t]]
            vals = [v for v in vals if not np.isnan(v)]
            if vals:
                P[i, t] = np.mean(vals)
    return P


def test_profile_matrix_matches_reference_and_ha():
    Y = _panel(n=3, days=20, seed=9, gaps=0.3)
    cal = _cal(Y.shape[1])
    P = K.profile_matrix(Y, cal.weekend, SEASON, 2)
    np.testing.assert_allclose(P, _profile_ref(Y, cal.weekend, 2), rtol=1e-10)
    origins = np.arange(20, Y.shape[1] - SEASON + 1, 3, dtype=np.int64)
    horizons = np.arange(1, SEASON + 1, dtype=np.int64)
    ha = K.historical_average_predict(Y, origins, horizons, cal.weekend, SEASON, 2)
    targets = origins[:, None] + horizons[None, :] - 1
    np.testing.assert_allclose(ha, P[:, targets], rtol=1e-10)


def _lin_ref_pairs(P, Z, opan, olag, tpan, weekend, o_range, h, t_lo, t_hi):
    """Design rows and targets of the direct linear model, built one pair at a time."""
    rows, ys = [], []
    for o in o_range:
        t = o + h - 1
        if not t_lo <= t < t_hi or np.isnan(Z[t]) or min(o - olag) < 0:
            continue
        f = [1.0] + [P[p, o - lag] for p, lag in zip(opan, olag, strict=True)]
        f += [P[p, t] for p in tpan] + [float(weekend[t])]
        if np.isnan(f).any():
            continue
        rows.append(f)
        ys.append(Z[t])
    return np.array(rows), np.array(ys)


def _lin_setup(seed=7):
    rng = np.random.default_rng(seed)
    Z = (_panel(n=3, days=10, seed=seed, gaps=0.05) - 50) / 20
    T = Z.shape[1]
    P = np.stack([K.forward_fill(Z), rng.normal(size=Z.shape), np.roll(K.forward_fill(Z), SEASON, axis=1)])
    P[2, :, :SEASON] = np.nan
    opan = np.array([0, 0, 0, 1], dtype=np.int64)
    olag = np.array([1, 2, 3, 1], dtype=np.int64)
    tpan = np.array([2, 1], dtype=np.int64)
    return Z, P, opan, olag, tpan, _cal(T)


@pytest.mark.parametrize("weighted", [False, True])
def test_lin_gram_and_solve_match_numpy(weighted):
    Z, P, opan, olag, tpan, cal = _lin_setup()
    T = Z.shape[1]
    horizons = np.array([1, 3, 8], dtype=np.int64)
    edges = np.array([0, 5 * SEASON, 7 * SEASON], dtype=np.int64)
    F = 1 + len(opan) + len(tpan) + 1
    wcoef = np.random.default_rng(1).normal(0, 0.3, (3, 3, F)) if weighted else None
    G, b, m = KL.lin_gram(P, Z, opan, olag, tpan, cal.weekend, horizons, edges, 1, wcoef, 0.05)
    masks = np.array([np.ones(F, bool), np.r_[True, True, False, False, False, True, True, True]])
    priors = np.zeros((2, F))
    priors[0, 1] = 1.0
    priors[1, 5] = 1.0
    lams = np.array([0.5, 0.01])
    coef = KL.lin_solve(G[:, :, 0], b[:, :, 0], m[:, :, 0], masks, priors, lams)
    for i in range(3):
        for c, h in enumerate(horizons):
            for j in range(2):
                A, y = _lin_ref_pairs(P[:, i], Z[i], opan, olag, tpan, cal.weekend, range(T), h,
                                      edges[j], edges[j + 1])
                w = np.ones(len(y)) if wcoef is None else 1 / np.maximum(np.abs(y - A @ wcoef[i, c]), 0.05)
                assert m[i, c, j] == pytest.approx(w.sum())
                np.testing.assert_allclose(np.triu(G[i, c, j]), np.triu((A * w[:, None]).T @ A), rtol=1e-10, atol=1e-10)
                np.testing.assert_allclose(b[i, c, j], (A * w[:, None]).T @ y, rtol=1e-10, atol=1e-10)
                if j:
                    continue
                for k in range(2):
                    idx = np.flatnonzero(masks[k])
                    As = A[:, idx]
                    D = lams[k] * np.eye(len(idx))
                    D[0, 0] = 1e-9
                    rhs = (As * w[:, None]).T @ y / w.sum() + lams[k] * np.r_[0.0, priors[k, idx[1:]]]
                    beta = np.linalg.solve((As * w[:, None]).T @ As / w.sum() + D, rhs)
                    np.testing.assert_allclose(coef[i, c, k, idx], beta, rtol=1e-6, atol=1e-8)
                    assert np.all(coef[i, c, k, ~masks[k]] == 0)


def test_lin_predict_matches_dot_products():
    Z, P, opan, olag, tpan, cal = _lin_setup(seed=3)
    T = Z.shape[1]
    horizons = np.array([1, 4], dtype=np.int64)
    F = 1 + len(opan) + len(tpan) + 1
    coef = np.random.default_rng(2).normal(size=(3, 2, F))
    origins = np.arange(2 * SEASON, T - 3, dtype=np.int64)
    pred = KL.lin_predict(P, coef, opan, olag, tpan, cal.weekend, horizons, origins)
    for i in range(3):
        for c, h in enumerate(horizons):
            for a, o in enumerate(origins):
                t = o + h - 1
                f = np.r_[1.0, P[opan, i, o - olag], P[tpan, i, t], float(cal.weekend[t])]
                if np.isnan(f).any():
                    assert np.isnan(pred[i, a, c])
                else:
                    assert pred[i, a, c] == pytest.approx(f @ coef[i, c], rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("two_sets", [False, True])
def test_lin_cv_error_is_solve_then_score_per_fold(two_sets):
    Z, P, opan, olag, tpan, cal = _lin_setup(seed=3)
    T = Z.shape[1]
    horizons = np.array([1, 4], dtype=np.int64)
    F = 1 + len(opan) + len(tpan) + 1
    edges = np.array([0, 4 * SEASON, 6 * SEASON, 8 * SEASON, T], dtype=np.int64)
    G0, b0, m0 = KL.lin_gram(P, Z, opan, olag, tpan, cal.weekend, horizons, edges)
    wcoef = np.random.default_rng(1).normal(0, 0.3, (3, 2, F))
    G1, b1, m1 = KL.lin_gram(P, Z, opan, olag, tpan, cal.weekend, horizons, edges, 1, wcoef)
    if not two_sets:
        G1, b1, m1 = G0, b0, m0
    masks = np.array([np.ones(F, bool), np.r_[True, True, False, False, False, True, True, True]])
    priors = np.zeros((2, F))
    priors[0, 1] = 1.0
    lams = np.array([0.5, 0.01])
    sets = [(G0, b0, m0), (G1, b1, m1)] if two_sets else [(G0, b0, m0)]
    allm, allp, alll = (np.concatenate([x] * len(sets)) for x in (masks, priors, lams))
    max_val = 5
    err, cnt = KL.lin_cv_error(P, Z, G0, b0, m0, G1, b1, m1, allm, allp, alll, 2, opan, olag, tpan,
                              cal.weekend, horizons, edges, max_val)
    want = np.zeros_like(err)
    want_cnt = np.zeros_like(cnt)
    for j in range(1, len(edges) - 1):
        coef = np.concatenate([KL.lin_solve(G[:, :, :j].sum(axis=2), b[:, :, :j].sum(axis=2),
                                           m[:, :, :j].sum(axis=2), masks, priors, lams)
                               for G, b, m in sets], axis=2)
        lo, hi = edges[j], edges[j + 1]
        origins = np.arange(max(0, lo - 4 + 1), hi, max(1, (hi - lo) // max_val))
        for i in range(3):
            for c, h in enumerate(horizons):
                A, y = _lin_ref_pairs(P[:, i], Z[i], opan, olag, tpan, cal.weekend, origins, h, lo, hi)
                want_cnt[i, c] += len(y)
                if len(y):
                    want[i, c] += np.abs(A @ coef[i, c].T - y[:, None]).sum(axis=0)
    np.testing.assert_array_equal(cnt, want_cnt)
    np.testing.assert_allclose(err, want, rtol=1e-9, atol=1e-9)


def test_lin_solve_without_pairs_returns_the_prior():
    G = np.zeros((1, 1, 3, 3))
    b = np.zeros((1, 1, 3))
    m = np.zeros((1, 1))
    priors = np.array([[0.0, 1.0, 0.0]])
    coef = KL.lin_solve(G, b, m, np.ones((1, 3), bool), priors, np.array([1.0]))
    np.testing.assert_array_equal(coef[0, 0, 0], priors[0])


def test_periodic_mean_and_pair_correlation_match_numpy():
    Y = _panel(n=3, days=20, seed=4, gaps=0.2)
    cls = np.zeros(Y.shape[1], dtype=np.int8)
    period, window = 7 * SEASON, 2
    P = K.periodic_mean(Y, cls, period, window)
    for i in range(3):
        for t in range(Y.shape[1]):
            src = [t - j * period for j in range(1, window + 1) if t - j * period >= 0]
            vals = [Y[i, s] for s in src if not np.isnan(Y[i, s])]
            if vals:
                assert P[i, t] == pytest.approx(np.mean(vals), rel=1e-12)
            else:
                assert np.isnan(P[i, t])
    rows, cols = np.array([1, 2, 0]), np.array([2, 1, 0])
    corr = K.pair_correlation(Y, rows, cols, 100)
    for k in range(3):
        x, y = Y[rows[k], :100], Y[cols[k], :100]
        ok = ~np.isnan(x) & ~np.isnan(y)
        ref = 0.0 if np.std(x[ok]) < 1e-9 or np.std(y[ok]) < 1e-9 else np.corrcoef(x[ok], y[ok])[0, 1]
        assert corr[k] == pytest.approx(ref, abs=1e-10)


def test_neighbour_mean_and_error_sums_match_numpy():
    Z = _panel(n=4, days=3, seed=2, gaps=0.3)
    indptr = np.array([0, 2, 3, 3, 5])
    indices = np.array([1, 2, 0, 0, 1])
    nb = K.neighbour_mean(Z, indptr, indices)
    for i in range(4):
        nbrs = indices[indptr[i]:indptr[i + 1]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanmean(Z[nbrs], axis=0) if len(nbrs) else np.full(Z.shape[1], np.nan)
        np.testing.assert_allclose(nb[i], ref, rtol=1e-12)
    Y = Z.copy()
    Y[1, 5] = 0.0
    origins = np.arange(3, 12, dtype=np.int64)
    horizons = np.array([1, 4], dtype=np.int64)
    pred = np.random.default_rng(0).normal(50, 5, (4, len(origins), 2))
    sums = K.error_sums(pred, Y, origins, horizons)
    for c, h in enumerate(horizons):
        act = Y[:, origins + h - 1]
        mask = np.isfinite(act) & (act != 0)
        e = np.abs(pred[:, :, c] - act)[mask]
        np.testing.assert_allclose(sums[c], [mask.sum(), e.sum(), (e ** 2).sum(),
                                             (e / np.abs(act[mask])).sum()], rtol=1e-12)



def test_lin_solve_mean_averages_the_chosen_candidates_of_each_set():
    rng = np.random.default_rng(5)
    S, n, nh, F = 2, 3, 2, 4
    X = rng.normal(size=(S, n, nh, 50, F))
    X[..., 0] = 1.0
    y = rng.normal(size=(S, n, nh, 50))
    G = np.einsum("snhpf,snhpg->snhfg", X, X)
    b = np.einsum("snhpf,snhp->snhf", X, y)
    m = np.full((S, n, nh), 50.0)
    m[1, 2, 1] = 0.0  # no pairs: the prior
    masks = np.array([[True, True, False, True], [True, True, True, True]] * S)
    priors = np.tile(np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0]]), (S, 1))
    lams = np.array([0.1, 1.0] * S)
    choice = rng.integers(0, 2 * S, (n, nh, 3))
    got = KL.lin_solve_mean(G, b, m, masks, priors, lams, choice)
    alone = [KL.lin_solve(G[s], b[s], m[s], masks[:2], priors[:2], lams[:2]) for s in range(S)]
    for i in range(n):
        for c in range(nh):
            want = np.mean([alone[k // 2][i, c, k % 2] for k in choice[i, c]], axis=0)
            np.testing.assert_allclose(got[i, c], want, rtol=1e-10, atol=1e-12)


def _pivot_ref(rows, steps, values, n, n_time, fill):
    """The NumPy bincount pivot the kernel replaced (sums in record order)."""
    key = rows.astype(np.int64) * n_time + steps.astype(np.int64)
    ok = ~np.isnan(values) & (steps >= 0) & (steps < n_time)
    sums = np.bincount(key[ok], weights=values[ok], minlength=n * n_time)
    cnt = np.bincount(key[ok], minlength=n * n_time)
    with np.errstate(invalid="ignore"):
        return np.where(cnt > 0, sums / np.maximum(cnt, 1), fill).reshape(n, n_time)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(0, 400), fill=st.sampled_from([np.nan, 0.0]))
def test_pivot_mean_matches_bincount_reference(seed, m, fill):
    from uda.kernels.grid import pivot_mean

    rng = np.random.default_rng(seed)
    n, n_time = 5, 17
    rows = rng.integers(0, n, m)
    steps = rng.integers(-3, n_time + 3, m)  # some outside the grid: ignored
    values = rng.normal(size=m) * 1e3
    values[rng.random(m) < 0.1] = np.nan
    got = pivot_mean(rows, steps, values, n, n_time, fill)
    np.testing.assert_array_equal(got, _pivot_ref(rows, steps, values, n, n_time, fill))


def test_lin_gram_active_rows_equal_a_fit_on_those_rows_alone():
    Z, P, opan, olag, tpan, cal = _lin_setup(seed=5)
    T = Z.shape[1]
    horizons = np.array([1, 3], dtype=np.int64)
    F = 1 + len(opan) + len(tpan) + 1
    edges = np.array([0, T], dtype=np.int64)
    wcoef = np.random.default_rng(2).normal(0, 0.3, (Z.shape[0], 2, F))
    active = np.zeros(Z.shape[0], bool)
    active[[0, 2]] = True
    got = KL.lin_gram(P, Z, opan, olag, tpan, cal.weekend, horizons, edges, 1, wcoef, active=active)
    sub = KL.lin_gram(np.ascontiguousarray(P[:, active]), Z[active], opan, olag, tpan, cal.weekend, horizons,
                     edges, 1, wcoef[active])
    for g, s in zip(got, sub, strict=True):
        np.testing.assert_array_equal(g[active], s)
        assert not g[~active].any()


def test_pivot_drops_rows_whose_time_step_is_missing():
    # Polars reads a null time as a NaN step (float); such rows are left out, as the bincount pivot did
    from uda.tasks.flow import pivot

    rows = np.array([0, 0, 1])
    steps = np.array([0.0, np.nan, 1.0])
    values = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(pivot(rows, steps, values, 2, 4),
                                  _pivot_ref(rows, np.array([0, -1, 1]), values, 2, 4, np.nan))
