"""Feature importance of the classical models on the 408 clinical features.

* XGBoost: the booster's ``gain`` (mean loss reduction of the splits on a feature) and
  ``weight`` (number of splits on it — likely what the paper's Fig. 5 shows), per fold (the
  report averages folds: :mod:`ecg_mi.evaluate.importance`).
* Every classical model: permutation importance on the test fold (drop in ROC AUC when a
  feature's column is shuffled; scikit-learn's numbers, scored in batches, seeded). SHAP is not
  used: gain/weight and permutation importance answer the paper's question without another
  dependency.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ecg_mi.features import feature_names
from ecg_mi.utils.reporting import write_csv

Artifact = tuple[Path, str | None]


def booster_importance(estimator, names: list[str] | None = None) -> pd.DataFrame | None:
    """``feature, gain, weight`` for every input column (0 when never split on; ``names``
    default: the 408 features), or None for a model without a booster."""
    if not hasattr(estimator, "get_booster"):
        return None
    booster = estimator.get_booster()
    names = names or feature_names()
    frame = pd.DataFrame({"feature": names})
    for kind in ("gain", "weight"):
        scores = booster.get_score(importance_type=kind)  # keys f0, f1, … (no names were given)
        frame[kind] = [float(scores.get(f"f{i}", 0.0)) for i in range(len(names))]
    return frame.sort_values("gain", ascending=False).reset_index(drop=True)


def permutation(
    estimator, X: np.ndarray, y: np.ndarray, repeats: int = 3, seed: int = 0, rows_per_call: int = 20_000,
    names: list[str] | None = None,
) -> pd.DataFrame:
    """Mean and sd of the test-fold AUC drop per column of ``X`` (``names``; default the 408
    features), sorted (largest first).

    The numbers of scikit-learn's ``permutation_importance(scoring="roc_auc", n_repeats=repeats,
    random_state=seed)`` — the same shuffles, the same scores — but the permuted copies of many
    features are scored in one call of ``rows_per_call`` rows or fewer: a forest of 1,000 trees
    pays its per-call cost once per batch instead of once per feature and repeat (Extra Trees on
    a PTB-XL test fold: 14 s instead of 4.7 min, ``benchmarks/permutation.py``)."""
    X = np.asarray(X)
    n_rows, n_features = X.shape
    orders = _shuffled_orders(n_rows, repeats, np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1))
    baseline = roc_auc_score(y, _ranking_scores(estimator, X))
    per_call = max(1, rows_per_call // (n_rows * repeats))
    drops = np.empty((n_features, repeats))
    for start in range(0, n_features, per_call):
        columns = range(start, min(n_features, start + per_call))
        copies = np.repeat(X[None], len(columns) * repeats, axis=0)  # [copy, row, feature]
        for i, column in enumerate(columns):
            for r, order in enumerate(orders):
                copies[i * repeats + r, :, column] = X[order, column]
        scores = _ranking_scores(estimator, copies.reshape(-1, n_features)).reshape(len(columns), repeats, n_rows)
        drops[start:start + len(columns)] = [[baseline - roc_auc_score(y, s) for s in per_column]
                                             for per_column in scores]  # fmt: skip
    frame = pd.DataFrame({"feature": names or feature_names(), "auc_drop_mean": drops.mean(axis=1),
                          "auc_drop_sd": drops.std(axis=1)})  # fmt: skip
    return frame.sort_values("auc_drop_mean", ascending=False).reset_index(drop=True)


def _shuffled_orders(n_rows: int, repeats: int, random_seed: int) -> list[np.ndarray]:
    """Row order of a feature's column at each repeat, as scikit-learn draws them: one
    ``RandomState(random_seed)`` per feature, its index array shuffled in place at every repeat
    and applied to the column as already permuted (so the orders compose)."""
    random_state = np.random.RandomState(random_seed)
    shuffling, order, orders = np.arange(n_rows), np.arange(n_rows), []
    for _ in range(repeats):
        random_state.shuffle(shuffling)
        order = order[shuffling]
        orders.append(order)
    return orders


def _ranking_scores(estimator, X: np.ndarray) -> np.ndarray:
    """What scikit-learn's ``roc_auc`` scorer ranks by: the decision function when the
    estimator has one (linear models, SVM), else P(class 1)."""
    if hasattr(estimator, "decision_function"):
        return estimator.decision_function(X)
    return estimator.predict_proba(X)[:, 1]


def explain_classical(
    model, data, out_dir: Path, repeats: int = 3, seed: int = 0
) -> tuple[dict[str, float], list[Artifact]]:
    """Importance CSVs of one fitted classical model on its test fold (``importance/``)."""
    X, y = data.arrays("test")
    names = model.input_names()  # the estimator's own columns (the 408, + any ratios)
    tables = {"permutation.csv": permutation(model.estimator_, model.inputs(X), y, repeats, seed, names=names)}
    booster = booster_importance(model.estimator_, names)
    if booster is not None:
        tables["xgboost_gain_weight.csv"] = booster
    return {}, [(write_csv(table, out_dir / "importance" / name), "importance") for name, table in tables.items()]
