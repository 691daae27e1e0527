"""XGBoost search benchmark: the project's halving vs scikit-learn's, and the exhaustive grid.

On the real PTB-XL cohort (100 Hz features), for each outer fold's training part, with the
project's default search (``model.search=halving``: the full Table 1 grid, 3 patient-grouped
inner folds, trees as the budget from ``min_resources`` to 200, factor 3, aggressive
elimination, 2 jobs):

* **measured**: ``TreeBudgetHalving`` end to end (binning, all rounds, refit of the winner);
* **scikit-learn's HalvingGridSearchCV**, which scores the same candidates identically
  (``tests/test_halving.py``): estimated as Σ over its rounds of candidates × 3 inner folds ×
  the mean time of an ``XGBClassifier.fit`` at that round's trees (``--samples`` random grid
  points, on an inner-training-sized subset) ÷ 2 jobs — it re-runs the repeated rounds;
* **the exhaustive grid** (11,664 points × 3 inner folds) estimated the same way at each
  point's own ``n_estimators``.

Target: halving ≤ 10 min per outer fold on 2 cores (the worst fold is reported).
Usage: ``python benchmarks/xgb_search.py [--folds 0,1,2,3,4] [--samples 12]``.
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

from ecg_mi.data.datamodule import FeatureDataModule
from ecg_mi.data.sources import PtbxlSource
from ecg_mi.models import create_model
from ecg_mi.models.halving import RESOURCE, halving_schedule
from ecg_mi.paths import repo_root

TARGET_S = 600.0
INNER_FOLDS, JOBS = 3, 2


def timed_fit(X: np.ndarray, y: np.ndarray, params: dict) -> float:
    """Seconds of one scikit-learn-API XGBoost fit (what each search candidate costs there)."""
    model = create_model("xgboost", params=params, search="none", n_jobs=1, seed=0)
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def scikit_learn_estimates(X, y, grid: dict, min_resources: int, samples: int, seed: int) -> dict:
    """Timed single fits → estimated seconds of scikit-learn's halving and of the full grid."""
    rng = np.random.default_rng(seed)
    inner = rng.permutation(len(y))[: len(y) * (INNER_FOLDS - 1) // INNER_FOLDS]
    X_in, y_in = X[inner], y[inner]
    points = [dict(zip(grid, p, strict=True)) for p in itertools.product(*grid.values())]
    no_trees = {k: v for k, v in grid.items() if k != RESOURCE}
    n_candidates = int(np.prod([len(v) for v in no_trees.values()]))
    schedule = halving_schedule(n_candidates, min_resources, int(max(grid[RESOURCE])))
    fit_s = {}
    for trees in sorted({t for _, t in schedule}):
        picks = rng.choice(len(points), samples, replace=False)
        fit_s[trees] = float(
            np.mean([timed_fit(X_in, y_in, {**points[i], RESOURCE: trees}) for i in picks])
        )
    picks = rng.choice(len(points), samples, replace=False)
    grid_fit = float(np.mean([timed_fit(X_in, y_in, points[i]) for i in picks]))
    return {
        "grid_points": len(points),
        "schedule_candidates_trees": schedule,
        "sklearn_mean_fit_s_by_trees": fit_s,
        "sklearn_halving_estimate_s": sum(c * INNER_FOLDS * fit_s[t] for c, t in schedule) / JOBS,
        "exhaustive_estimate_s": len(points) * INNER_FOLDS * grid_fit / JOBS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", default="0,1,2,3,4", help="outer folds to time, comma-separated")
    parser.add_argument("--samples", type=int, default=12, help="timed fits per tree count")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "xgb_search.json"
    )
    args = parser.parse_args()
    os.environ.setdefault("ECG_MI_NO_PROGRESS", "1")
    warnings.filterwarnings("ignore")
    conf = OmegaConf.load(repo_root() / "conf" / "model" / "xgboost.yaml")
    grid, min_resources = OmegaConf.to_container(conf.grid), int(conf.min_resources)
    folds = [int(f) for f in args.folds.split(",")]
    result: dict = {"folds": {}}
    for fold in folds:
        data = FeatureDataModule(PtbxlSource(), sample_rate=100, fold=fold)
        data.setup()
        X, y = data.arrays("train")
        model = create_model("xgboost", grid=grid, search="halving", n_jobs=JOBS, seed=0,
                             min_resources=min_resources)  # fmt: skip
        start = time.perf_counter()
        model.fit(X, y, groups=data.groups("train"))
        seconds = time.perf_counter() - start
        summary = model.search_summary_
        result["folds"][fold] = {"train_records": int(len(y)), "halving_measured_s": seconds,
                                 "inner_cv_auc": summary["inner_cv_auc"], "best_params": summary["best_params"]}  # fmt: skip
        print(f"fold {fold}: {len(y)} training records, halving {seconds:.0f} s, "
              f"inner AUC {summary['inner_cv_auc']:.3f}, best {summary['best_params']}")  # fmt: skip
        if fold == folds[0]:
            result.update(scikit_learn_estimates(X, y, grid, min_resources, args.samples, fold))
    worst = max(f["halving_measured_s"] for f in result["folds"].values())
    sk, full = result["sklearn_halving_estimate_s"], result["exhaustive_estimate_s"]
    result.update(worst_fold_s=worst, sklearn_ratio=sk / worst, exhaustive_ratio=full / worst)
    schedule = ", ".join(f"{c}x{t}" for c, t in result["schedule_candidates_trees"])
    print(f"halving schedule (candidates x trees): {schedule}")
    print(f"per outer fold: ecg-mi halving {worst:.0f} s (worst of folds {folds}) vs scikit-learn "
          f"HalvingGridSearchCV ~{sk / 60:.0f} min ({sk / worst:.1f}x) vs exhaustive grid ~{full / 3600:.1f} h "
          f"({full / worst:.0f}x); {INNER_FOLDS} inner folds, {JOBS} jobs")  # fmt: skip
    met = worst <= TARGET_S
    print(
        f"target halving <= {TARGET_S / 60:.0f} min per outer fold: {'met' if met else 'NOT met'}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
