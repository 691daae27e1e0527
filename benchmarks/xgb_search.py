"""XGBoost search benchmark: successive halving vs the exhaustive Table 1 grid.

On the real PTB-XL cohort (100 Hz features, the training part of each requested outer
fold), time the project's default search (``model.search=halving``: 3 patient-grouped inner
folds, trees as the budget, 2 jobs) and estimate the exhaustive grid search from timed
sample fits: the mean time of ``--samples`` random grid points fitted on an inner-training
split × 11,664 points × 3 inner folds ÷ 2 jobs. Target: halving ≤ 10 min per outer fold on
2 cores. Usage: ``python benchmarks/xgb_search.py [--folds 0] [--samples 24]``.
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
from ecg_mi.paths import repo_root

TARGET_S = 600.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, nargs="+", default=[0])
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "xgb_search.json"
    )
    args = parser.parse_args()
    os.environ.setdefault("ECG_MI_NO_PROGRESS", "1")
    warnings.filterwarnings("ignore")
    conf = OmegaConf.load(repo_root() / "conf" / "model" / "xgboost.yaml")
    grid = OmegaConf.to_container(conf.grid)
    points = list(itertools.product(*grid.values()))
    results = []
    for fold in args.folds:
        data = FeatureDataModule(PtbxlSource(), sample_rate=100, fold=fold)
        X, y = data.arrays("train")
        groups = data.groups("train")
        model = create_model("xgboost", grid=grid, search="halving", n_jobs=2, seed=0,
                             min_resources=int(conf.min_resources))  # fmt: skip
        start = time.perf_counter()
        model.fit(X, y, groups=groups)
        halving_s = time.perf_counter() - start

        rng = np.random.default_rng(fold)
        inner = rng.permutation(len(y))[: int(len(y) * 2 / 3)]
        fit_times = []
        for i in rng.choice(len(points), size=args.samples, replace=False):
            params = dict(zip(grid.keys(), points[i], strict=True))
            single = create_model("xgboost", params=params, search="none", n_jobs=1, seed=0)
            t0 = time.perf_counter()
            single.fit(X[inner], y[inner])
            fit_times.append(time.perf_counter() - t0)
        exhaustive_s = float(np.mean(fit_times)) * len(points) * 3 / 2
        summary = model.search_summary_
        results.append({
            "fold": fold, "train_records": int(len(y)), "grid_points": len(points),
            "halving_s": halving_s, "halving_candidates_fitted": summary["candidates"],
            "inner_cv_auc": summary["inner_cv_auc"], "best_params": summary["best_params"],
            "mean_single_fit_s": float(np.mean(fit_times)), "exhaustive_estimate_s": exhaustive_s,
            "speedup": exhaustive_s / halving_s,
        })  # fmt: skip
        r = results[-1]
        print(f"fold {fold}: halving {halving_s / 60:.1f} min ({r['halving_candidates_fitted']} candidate fits, "
              f"inner AUC {r['inner_cv_auc']:.3f}); exhaustive grid ≈ {exhaustive_s / 3600:.1f} h "
              f"({r['mean_single_fit_s'] * 1000:.0f} ms/fit × {len(points)} × 3 ÷ 2 jobs); "
              f"{r['speedup']:.0f}x faster; best {r['best_params']}")  # fmt: skip
    worst = max(r["halving_s"] for r in results)
    print(
        f"target halving <= {TARGET_S / 60:.0f} min per outer fold: {'met' if worst <= TARGET_S else 'NOT met'}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if worst <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
