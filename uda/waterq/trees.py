"""The supervised detector's model: scikit-learn's gradient-boosted trees, built, fitted on
one OpenMP thread, and copied into flat node arrays for the compiled evaluator.

scikit-learn is imported only when a model is built or fitted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from uda.waterq.settings import DetectOptions


def pack_trees(model: Any) -> dict[str, Any]:
    """The trees of a fitted binary ``HistGradientBoostingClassifier`` as flat node arrays.

    Returns
    -------
    dict
        ``roots`` (first node of each tree), per node ``feature``, ``threshold``,
        ``left``, ``right`` (global node indices), ``missing_left``, ``leaf``, ``value``,
        and ``base`` (the raw score before the first tree): the arguments of
        :func:`uda.kernels.residuals.detector_rows`, which evaluates them as scikit-learn's
        ``predict_proba`` does on raw features (tested equal).
    """
    if getattr(model, "n_trees_per_iteration_", 1) != 1:
        msg = "only binary classifiers can be packed"
        raise ValueError(msg)
    nodes = [pred[0].nodes for pred in model._predictors]
    if any(n["is_categorical"].any() for n in nodes):
        msg = "categorical splits are not supported by the compiled tree evaluator"
        raise ValueError(msg)
    sizes = np.array([n.shape[0] for n in nodes], dtype=np.int64)
    roots = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    shift = np.repeat(roots, sizes)
    allnodes = np.concatenate(nodes)
    return {"roots": roots,
            "feature": allnodes["feature_idx"].astype(np.int64),
            "threshold": allnodes["num_threshold"].astype(np.float64),
            "left": allnodes["left"].astype(np.int64) + shift,
            "right": allnodes["right"].astype(np.int64) + shift,
            "missing_left": allnodes["missing_go_to_left"].astype(np.bool_),
            "leaf": allnodes["is_leaf"].astype(np.bool_),
            "value": allnodes["value"].astype(np.float64),
            "base": float(np.asarray(model._baseline_prediction).ravel()[0])}


NO_TREES: dict[str, Any] = {"roots": np.zeros(0, np.int64), "feature": np.zeros(0, np.int64),
                             "threshold": np.zeros(0), "left": np.zeros(0, np.int64),
                             "right": np.zeros(0, np.int64), "missing_left": np.zeros(0, np.bool_),
                             "leaf": np.zeros(0, np.bool_), "value": np.zeros(0), "base": 0.0}


def one_thread():
    """Run scikit-learn's OpenMP loops on one thread: on small data (and a busy machine) the
    thread start-up per tree node costs more than it saves (measured: 5 ms per split on 2 busy cores)."""
    import sklearn.ensemble  # noqa: F401  (load its OpenMP runtime first: only loaded ones are limited)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def new_model(opts: DetectOptions):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=opts.trees, learning_rate=opts.learning_rate,
                                          max_leaf_nodes=opts.max_leaf_nodes, max_depth=opts.max_depth,
                                          min_samples_leaf=40, l2_regularization=1.0,
                                          early_stopping=False, random_state=opts.seed)
