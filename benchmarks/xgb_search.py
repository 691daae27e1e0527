"""XGBoost search benchmark: the default search vs the same search through scikit-learn.

On the real PTB-XL cohort (100 Hz features), for each outer fold's training part, with the
project's default search (``model.search=sampled``, ``conf/model/xgboost.yaml``: ``n_iter``
seeded points of the paper's Table 1 grid, the paper's own point among them, patient-grouped
inner folds, every point scored at each ``n_estimators`` of the grid, 2 jobs):

* **measured**: ``TreeCountSearch`` end to end (binning, one booster per candidate and inner
  fold grown to the largest tree count and read at every count, refit of the winner);
* **scikit-learn** (``RandomizedSearchCV``/``GridSearchCV`` over the same points, which fits
  each ``n_estimators`` value as its own model): estimated as candidates × tree counts × inner
  folds × the mean time of an ``XGBClassifier.fit`` at that count (``--samples`` random grid
  points, on an inner-training-sized subset) ÷ 2 jobs.

Target: the default search ≤ 10 min per outer fold on 2 cores (the worst fold is reported).
Usage: ``python benchmarks/xgb_search.py [--folds 0,1,2,3,4] [--samples 12]``.

``--compare-early-stopping`` (issue 37): on each fold, the search as configured
(``early_stopping_rounds``, ``n_jobs: -1`` = the cores available) and the same search without
early stopping (every booster grown to 200 trees and read at 50/100/200, the search before),
back to back: wall and CPU seconds, inner-CV AUC and the validation part's AUC of the fitted
model (the search never sees the validation part).
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

from ecg_mi.data.sources import PtbxlSource
from ecg_mi.datamodule import FoldDataModule
from ecg_mi.metrics import auc
from ecg_mi.models import create_model
from ecg_mi.models.halving import RESOURCE
from ecg_mi.models.tabular import available_cores
from ecg_mi.paths import repo_root
from ecg_mi.representation import Representation

TARGET_S = 600.0
JOBS = 2


def timed_fit(X: np.ndarray, y: np.ndarray, params: dict) -> float:
    """Seconds of one scikit-learn-API XGBoost fit (what each search candidate costs there)."""
    model = create_model("xgboost", params=params, search="none", n_jobs=1, seed=0)
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def scikit_learn_estimate(X, y, grid: dict, n_candidates: int, inner_folds: int, samples: int, seed: int) -> dict:
    """Timed single fits → estimated seconds of scikit-learn's search over the same points."""
    rng = np.random.default_rng(seed)
    inner = rng.permutation(len(y))[: len(y) * (inner_folds - 1) // inner_folds]
    X_in, y_in = X[inner], y[inner]
    points = [dict(zip(grid, p, strict=True)) for p in itertools.product(*grid.values())]
    fit_s = {}
    for trees in sorted(grid[RESOURCE]):
        picks = rng.choice(len(points), samples, replace=False)
        fit_s[trees] = float(np.mean([timed_fit(X_in, y_in, {**points[i], RESOURCE: trees}) for i in picks]))
    return {"sklearn_mean_fit_s_by_trees": fit_s,
            "sklearn_estimate_s": n_candidates * inner_folds * sum(fit_s.values()) / JOBS}  # fmt: skip


def search_arm(data: FoldDataModule, conf, early_stopping_rounds: int | None, seed: int = 0) -> dict:
    """Fit the configured search on the fold's training part; time it, score it on validation."""
    X, y = data.arrays("train")
    model = create_model("xgboost", grid=OmegaConf.to_container(conf.grid), params=OmegaConf.to_container(conf.params),
                         search=str(conf.search), n_iter=int(conf.n_iter), inner_folds=int(conf.inner_folds),
                         average_top=int(conf.average_top), n_jobs=int(conf.n_jobs), seed=seed,
                         early_stopping_rounds=early_stopping_rounds)  # fmt: skip
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(X, y, groups=data.groups("train"))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    X_val, y_val = data.arrays("val")
    summary = model.search_summary_
    return {"early_stopping_rounds": early_stopping_rounds, "wall_s": wall, "cpu_s": cpu,
            "inner_cv_auc": summary["inner_cv_auc"], "val_auc": auc(model.predict_proba(X_val)[:, 1], y_val),
            "best_params": summary["best_params"]}  # fmt: skip


def compare_early_stopping(folds: list[int], conf, path: Path, seed: int) -> int:
    """The configured search vs the same without early stopping, per fold (see the docstring)."""
    rounds = conf.get("early_stopping_rounds")
    result: dict = {"cores": available_cores(), "n_jobs": int(conf.n_jobs), "seed": seed, "folds": {}}
    for fold in folds:
        data = FoldDataModule(PtbxlSource(), Representation("features", None, "raw"), sample_rate=100, fold=fold)
        data.setup()
        arms = {"before": search_arm(data, conf, None, seed), "after": search_arm(data, conf, rounds, seed)}
        result["folds"][fold] = arms
        for name, arm in arms.items():
            print(f"fold {fold} {name} (early_stopping_rounds={arm['early_stopping_rounds']}): {arm['wall_s']:.0f} s "
                  f"wall, {arm['cpu_s']:.0f} s CPU, inner AUC {arm['inner_cv_auc']:.3f}, validation AUC "
                  f"{arm['val_auc']:.3f}, best {arm['best_params']}")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    slower = [f for f, a in result["folds"].items() if a["after"]["wall_s"] > a["before"]["wall_s"]]
    worse = [f for f, a in result["folds"].items() if a["after"]["val_auc"] < a["before"]["val_auc"]]
    print(f"early stopping: slower on folds {slower or 'none'}, lower validation AUC on folds {worse or 'none'}")
    return 0 if not slower and not worse else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", default="0,1,2,3,4", help="outer folds to time, comma-separated")
    parser.add_argument("--samples", type=int, default=12, help="timed fits per tree count")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "xgb_search.json"
    )
    parser.add_argument("--compare-early-stopping", action="store_true",
                        help="the configured search with and without early stopping, validation AUC")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="--compare-early-stopping: the search's seed (train.py: 42)")
    args = parser.parse_args()
    os.environ.setdefault("ECG_MI_NO_PROGRESS", "1")
    warnings.filterwarnings("ignore")
    conf = OmegaConf.load(repo_root() / "conf" / "model" / "xgboost.yaml")
    if args.compare_early_stopping:
        folds = [int(f) for f in args.folds.split(",")]
        return compare_early_stopping(folds, conf, args.json.with_name("xgb_search_early_stopping.json"), args.seed)
    grid, params = OmegaConf.to_container(conf.grid), OmegaConf.to_container(conf.params)
    n_candidates, inner_folds = int(conf.n_iter), int(conf.inner_folds)
    folds = [int(f) for f in args.folds.split(",")]
    result: dict = {"folds": {}, "search": str(conf.search), "candidates": n_candidates, "inner_folds": inner_folds}
    for fold in folds:
        data = FoldDataModule(PtbxlSource(), Representation("features", None, "raw"), sample_rate=100, fold=fold)
        data.setup()
        X, y = data.arrays("train")
        model = create_model("xgboost", grid=grid, params=params, search=str(conf.search), n_iter=n_candidates,
                             inner_folds=inner_folds, n_jobs=int(conf.n_jobs), seed=0,
                             early_stopping_rounds=conf.get("early_stopping_rounds"))  # fmt: skip
        start = time.perf_counter()
        model.fit(X, y, groups=data.groups("train"))
        seconds = time.perf_counter() - start
        summary = model.search_summary_
        result["folds"][fold] = {"train_records": int(len(y)), "measured_s": seconds,
                                 "inner_cv_auc": summary["inner_cv_auc"], "best_params": summary["best_params"]}  # fmt: skip
        print(f"fold {fold}: {len(y)} training records, {conf.search} search {seconds:.0f} s, "
              f"inner AUC {summary['inner_cv_auc']:.3f}, best {summary['best_params']}")  # fmt: skip
        if fold == folds[0]:
            result.update(scikit_learn_estimate(X, y, grid, n_candidates, inner_folds, args.samples, fold))
    worst = max(f["measured_s"] for f in result["folds"].values())
    sk = result["sklearn_estimate_s"]
    result.update(worst_fold_s=worst, sklearn_ratio=sk / worst)
    print(f"per outer fold: ecg-mi {conf.search} search {worst:.0f} s (worst of folds {folds}) vs the same "
          f"points through scikit-learn ~{sk / 60:.0f} min ({sk / worst:.1f}x); {n_candidates} candidates x "
          f"{len(grid[RESOURCE])} tree counts, {inner_folds} inner folds, {JOBS} jobs")  # fmt: skip
    met = worst <= TARGET_S
    print(f"target search <= {TARGET_S / 60:.0f} min per outer fold: {'met' if met else 'NOT met'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
