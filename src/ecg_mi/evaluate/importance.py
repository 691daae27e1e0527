"""Feature-importance section of the report (paper Fig. 5), from the runs' CSV artifacts."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ecg_mi.evaluate.runs import Sweep, fold_tables  # noqa: E402
from ecg_mi.utils.reporting import save_figure, write_csv  # noqa: E402

TOP = 20


def _bars(ax, table: pd.DataFrame, value: str, title: str, xlabel: str) -> None:
    top = table.head(TOP).iloc[::-1]
    ax.barh(top["feature"], top[f"{value}_mean"], xerr=top[f"{value}_sd"].fillna(0), capsize=2)
    ax.set(title=title, xlabel=xlabel)
    ax.tick_params(axis="y", labelsize=8)


def importance_section(sweep: Sweep, uri: str, out_dir: Path) -> dict[str, Path]:
    """XGBoost gain/weight (mean ± sd over folds) and permutation importance per classical
    model: 408-row CSVs sorted by importance, top-20 bar charts."""
    files: dict[str, Path] = {}
    xgb = fold_tables(sweep, uri, "xgboost", "importance/xgboost_gain_weight.csv")
    if xgb:
        gain, weight = aggregate(xgb, "gain"), aggregate(xgb, "weight")
        table = gain.merge(weight.drop(columns="folds"), on="feature").sort_values(
            "gain_mean", ascending=False
        )
        files["importance_xgboost.csv"] = write_csv(table, out_dir / "importance_xgboost.csv")
        fig, axes = plt.subplots(1, 2, figsize=(13, 6.5))
        _bars(
            axes[0],
            gain,
            "gain",
            f"XGBoost top {TOP} by gain ({len(xgb)} folds)",
            "mean gain per split (± sd over folds)",
        )
        _bars(
            axes[1],
            weight,
            "weight",
            f"XGBoost top {TOP} by weight",
            "number of splits (± sd over folds)",
        )
        fig.tight_layout()
        files["importance_xgboost.png"] = save_figure(fig, out_dir / "importance_xgboost.png")
    for model in sorted(sweep.runs["model"].unique()):
        folds = fold_tables(sweep, uri, model, "importance/permutation.csv")
        if not folds:
            continue
        table = aggregate(folds, "auc_drop_mean")
        files[f"permutation_{model}.csv"] = write_csv(table, out_dir / f"permutation_{model}.csv")
        fig, ax = plt.subplots(figsize=(7, 6.5))
        _bars(ax, table, "auc_drop_mean", f"{model}: permutation importance ({len(folds)} test folds)",
              "drop in test ROC AUC when shuffled (± sd over folds)")  # fmt: skip
        fig.tight_layout()
        files[f"permutation_{model}.png"] = save_figure(fig, out_dir / f"permutation_{model}.png")
    return files


def aggregate(per_fold: list[pd.DataFrame], value: str) -> pd.DataFrame:
    """Mean, sd and fold count of ``value`` per feature over folds, sorted by the mean."""
    stacked = pd.concat([t[["feature", value]].assign(fold=i) for i, t in enumerate(per_fold)])
    summary = stacked.groupby("feature")[value].agg(["mean", "std", "count"]).reset_index()
    summary.columns = ["feature", f"{value}_mean", f"{value}_sd", "folds"]
    return summary.sort_values(f"{value}_mean", ascending=False).reset_index(drop=True)
