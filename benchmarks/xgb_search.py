"""XGBoost search benchmark: successive halving vs the exhaustive Table 1 grid, per outer fold.

On the real PTB-XL cohort (100 Hz features, training part of outer fold ``--fold``), with the
project's default search (``model.search=halving``: 3 patient-grouped inner folds, trees as
the budget, factor 3, aggressive elimination, 2 jobs):

* the halving schedule (candidates × trees per round) is taken from scikit-learn's own
  bookkeeping on a throw-away run of a stub estimator;
* single fits are timed at each round's tree count (``--samples`` random grid points each,
  on an inner-training-sized subset) → estimated halving time = Σ candidates × 3 inner folds ×
  mean fit time ÷ 2 jobs; the exhaustive grid likewise (11,664 × 3 × mean fit at the grid's
  own ``n_estimators`` ÷ 2);
* ``--run`` also times the real halving search end to end (tens of minutes on 2 cores).

Target: halving ≤ 10 min per outer fold on 2 cores.
Usage: ``python benchmarks/xgb_search.py [--fold 0] [--samples 12] [--run]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV

from ecg_mi.data.datamodule import FeatureDataModule
from ecg_mi.data.sources import PtbxlSource
from ecg_mi.models import create_model
from ecg_mi.paths import repo_root

TARGET_S = 600.0
INNER_FOLDS, JOBS = 3, 2


class _Stub(ClassifierMixin, BaseEstimator):
    """Free estimator with XGBoost's parameter names, to read the halving schedule."""

    def __init__(self, n_estimators=1, **params):
        self.n_estimators = n_estimators
        for k, v in params.items():
            setattr(self, k, v)
        self._names = ["n_estimators", *params]

    def get_params(self, deep=True):
        return {k: getattr(self, k) for k in self._names}

    def set_params(self, **params):
        for k, v in params.items():
            setattr(self, k, v)
            if k not in self._names:
                self._names.append(k)
        return self

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.tile([0.5, 0.5], (len(X), 1))


def halving_schedule(grid: dict, min_resources: int) -> list[tuple[int, int]]:
    """(candidates, trees) per round, as scikit-learn's HalvingGridSearchCV plans them."""
    grid = dict(grid)
    max_trees = int(max(grid.pop("n_estimators")))
    stub = _Stub(**{k: v[0] for k, v in grid.items()})
    search = HalvingGridSearchCV(stub, grid, factor=3, resource="n_estimators", max_resources=max_trees,
                                 min_resources=min_resources, aggressive_elimination=True, cv=INNER_FOLDS,
                                 scoring="roc_auc")  # fmt: skip
    X, y = np.random.default_rng(0).normal(size=(60, 2)), np.arange(60) % 2
    search.fit(X, y)
    return list(zip(search.n_candidates_, search.n_resources_, strict=True))


def timed_fit(X, y, params: dict) -> float:
    model = create_model("xgboost", params=params, search="none", n_jobs=1, seed=0)
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--run", action="store_true", help="also time the real halving search")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "xgb_search.json"
    )
    args = parser.parse_args()
    os.environ.setdefault("ECG_MI_NO_PROGRESS", "1")
    warnings.filterwarnings("ignore")
    conf = OmegaConf.load(repo_root() / "conf" / "model" / "xgboost.yaml")
    grid = OmegaConf.to_container(conf.grid)
    points = [dict(zip(grid, p, strict=True)) for p in itertools.product(*grid.values())]
    data = FeatureDataModule(PtbxlSource(), sample_rate=100, fold=args.fold)
    X, y = data.arrays("train")
    rng = np.random.default_rng(args.fold)
    inner = rng.permutation(len(y))[: int(len(y) * (INNER_FOLDS - 1) / INNER_FOLDS)]
    X_in, y_in = X[inner], y[inner]

    schedule = halving_schedule(grid, int(conf.min_resources))
    fit_s: dict[int, float] = {}
    for trees in sorted({t for _, t in schedule}):
        picks = rng.choice(len(points), args.samples, replace=False)
        fit_s[trees] = float(
            np.mean([timed_fit(X_in, y_in, {**points[i], "n_estimators": trees}) for i in picks])
        )
    halving_est = sum(c * INNER_FOLDS * fit_s[t] for c, t in schedule) / JOBS
    picks = rng.choice(len(points), args.samples, replace=False)
    full_fit = float(np.mean([timed_fit(X_in, y_in, points[i]) for i in picks]))
    exhaustive_est = len(points) * INNER_FOLDS * full_fit / JOBS
    result = {"fold": args.fold, "train_records": int(len(y)), "grid_points": len(points),
              "schedule_candidates_trees": schedule, "mean_fit_s_by_trees": fit_s,
              "halving_estimate_s": halving_est, "mean_fit_s_grid": full_fit,
              "exhaustive_estimate_s": exhaustive_est}  # fmt: skip
    print(f"fold {args.fold}: {len(y)} training records, {len(points)} grid points")
    print("halving schedule (candidates x trees): " + ", ".join(f"{c}x{t}" for c, t in schedule))
    print("mean single fit: " + ", ".join(f"{t} trees {s * 1000:.0f} ms" for t, s in fit_s.items())
          + f"; grid's own n_estimators {full_fit * 1000:.0f} ms")  # fmt: skip
    print(f"estimated halving {halving_est / 60:.1f} min vs exhaustive {exhaustive_est / 3600:.1f} h "
          f"({exhaustive_est / halving_est:.0f}x), {INNER_FOLDS} inner folds, {JOBS} jobs")  # fmt: skip
    worst = halving_est
    if args.run:
        model = create_model(
            "xgboost",
            grid=grid,
            search="halving",
            n_jobs=JOBS,
            seed=0,
            min_resources=int(conf.min_resources),
        )
        start = time.perf_counter()
        model.fit(X, y, groups=data.groups("train"))
        result["halving_measured_s"] = worst = time.perf_counter() - start
        result["inner_cv_auc"] = model.search_summary_["inner_cv_auc"]
        result["best_params"] = model.search_summary_["best_params"]
        print(
            f"measured halving {worst / 60:.1f} min, inner AUC {result['inner_cv_auc']:.3f}, best {result['best_params']}"
        )
    print(
        f"target halving <= {TARGET_S / 60:.0f} min per outer fold: {'met' if worst <= TARGET_S else 'NOT met'}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if worst <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
