"""Permutation importance benchmark: ecg-mi's batched scoring vs scikit-learn's, same numbers.

On the real PTB-XL cohort (100 Hz features, ``best_cpu``'s data: every labelled record of the
training patients), Extra Trees as configured (``conf/model/extra_trees.yaml``: 1,000 trees,
2 jobs) fitted on one outer fold's training part, then the permutation importance of all 408
features on its test part, ``explain.permutation_repeats`` repeats (``conf/train.yaml``):

* **measured**: :func:`ecg_mi.explain.permutation.permutation` (the permuted copies of many
  features scored in one ``predict_proba`` call);
* **scikit-learn**: ``sklearn.inspection.permutation_importance`` with the same seed (one call
  per feature and repeat) — what every classical run used before.

Both must give the same AUC drops (checked); target: ≥ 5x faster. Usage:
``python benchmarks/permutation.py [--fold 0]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
from omegaconf import OmegaConf
from sklearn.inspection import permutation_importance

from ecg_mi.data.sources import PtbxlSource
from ecg_mi.datamodule import FoldDataModule
from ecg_mi.explain.permutation import permutation
from ecg_mi.features import feature_names
from ecg_mi.models import create_model
from ecg_mi.paths import repo_root
from ecg_mi.representation import Representation

TARGET_RATIO = 5.0
SEED = 42


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fold", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("ECG_MI_NO_PROGRESS", "1")
    warnings.filterwarnings("ignore")
    conf = OmegaConf.load(repo_root() / "conf" / "model" / "extra_trees.yaml")
    repeats = int(OmegaConf.load(repo_root() / "conf" / "train.yaml").explain.permutation_repeats)
    data = FoldDataModule(PtbxlSource(), Representation("features", None, "raw"), sample_rate=100, fold=args.fold, train_pool="all")
    data.setup()
    model = create_model("extra_trees", params=OmegaConf.to_container(conf.params), n_jobs=int(conf.n_jobs),
                         seed=SEED).fit(*data.arrays("train"), groups=data.groups("train"))  # fmt: skip
    X, y = data.arrays("test")
    start = time.perf_counter()
    batched = permutation(model.estimator_, X, y, repeats, SEED).set_index("feature").loc[feature_names()]
    measured_s = time.perf_counter() - start
    start = time.perf_counter()
    reference = permutation_importance(model.estimator_, X, y, scoring="roc_auc", n_repeats=repeats,
                                       random_state=SEED, n_jobs=1)  # fmt: skip
    sklearn_s = time.perf_counter() - start
    gap = float(np.max(np.abs(batched["auc_drop_mean"].to_numpy() - reference.importances_mean)))
    ratio = sklearn_s / measured_s
    print(f"fold {args.fold}: Extra Trees ({conf.params.n_estimators} trees), {len(y)} test records x "
          f"{X.shape[1]} features x {repeats} repeats: ecg-mi {measured_s:.1f} s vs scikit-learn "
          f"{sklearn_s:.1f} s ({ratio:.1f}x); largest difference in mean AUC drop {gap:.1e}")  # fmt: skip
    same = gap <= 1e-12
    met = same and ratio >= TARGET_RATIO
    print(f"target >= {TARGET_RATIO:.0f}x with the same numbers: {'met' if met else 'NOT met'}"
          + ("" if same else " (the numbers differ)"))  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
