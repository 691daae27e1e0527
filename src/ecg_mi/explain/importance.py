"""Feature importance of the classical models on the 408 clinical features.

* XGBoost: the booster's ``gain`` (mean loss reduction of the splits on a feature) and
  ``weight`` (number of splits on it — likely what the paper's Fig. 5 shows), per fold;
  :func:`aggregate` averages folds with their spread.
* Every classical model: permutation importance on the test fold (drop in ROC AUC when a
  feature's column is shuffled; scikit-learn, seeded). SHAP is not used: gain/weight and
  permutation importance answer the paper's question without another dependency.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from ecg_mi.features import feature_names
from ecg_mi.utils.io import atomic_path

Artifact = tuple[Path, str | None]


def booster_importance(estimator) -> pd.DataFrame | None:
    """``feature, gain, weight`` for all 408 features (0 when never split on), or None."""
    if not hasattr(estimator, "get_booster"):
        return None
    booster = estimator.get_booster()
    names = feature_names()
    frame = pd.DataFrame({"feature": names})
    for kind in ("gain", "weight"):
        scores = booster.get_score(importance_type=kind)  # keys f0..f407 (no names were given)
        frame[kind] = [float(scores.get(f"f{i}", 0.0)) for i in range(len(names))]
    return frame.sort_values("gain", ascending=False).reset_index(drop=True)


def permutation(
    estimator, X: np.ndarray, y: np.ndarray, repeats: int = 3, seed: int = 0
) -> pd.DataFrame:
    """Mean and sd of the test-fold AUC drop per feature, sorted (largest first)."""
    result = permutation_importance(
        estimator, X, y, scoring="roc_auc", n_repeats=repeats, random_state=seed, n_jobs=1
    )
    frame = pd.DataFrame({"feature": feature_names(), "auc_drop_mean": result.importances_mean,
                          "auc_drop_sd": result.importances_std})  # fmt: skip
    return frame.sort_values("auc_drop_mean", ascending=False).reset_index(drop=True)


def explain_classical(
    model, data, out_dir: Path, repeats: int = 3, seed: int = 0
) -> tuple[dict[str, float], list[Artifact]]:
    """Importance CSVs of one fitted classical model on its test fold (``importance/``)."""
    X, y = data.arrays("test")
    tables = {"permutation.csv": permutation(model.estimator_, X, y, repeats, seed)}
    booster = booster_importance(model.estimator_)
    if booster is not None:
        tables["xgboost_gain_weight.csv"] = booster
    artifacts: list[Artifact] = []
    for name, table in tables.items():
        path = out_dir / "importance" / name
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6g")
        artifacts.append((path, "importance"))
    return {}, artifacts


def aggregate(per_fold: list[pd.DataFrame], value: str) -> pd.DataFrame:
    """Mean, sd and fold count of ``value`` per feature over folds, sorted by the mean."""
    stacked = pd.concat([t[["feature", value]].assign(fold=i) for i, t in enumerate(per_fold)])
    summary = stacked.groupby("feature")[value].agg(["mean", "std", "count"]).reset_index()
    summary.columns = ["feature", f"{value}_mean", f"{value}_sd", "folds"]
    return summary.sort_values(f"{value}_mean", ascending=False).reset_index(drop=True)
