"""Issue 18's multi-window test-time averaging, measured on finished strip-network runs.

The strip networks train on random crops (``augment.crop``: 5 s of the 10 s strip in
``experiment=cpu_fast``) and, by default, score the whole strip at once (they pool over time).
``model.test_windows=K`` instead averages P(MI) over K evenly spaced windows of the crop's
length (:meth:`ecg_mi.models.base.ECGClassifier.window_logits`). Averaging changes no weight,
so it is measured on the *same* trained networks: every fold run of an ablation arm
(``benchmarks/ablation.py``) is loaded from its MLflow checkpoint and its validation and test
parts are scored with each K. Per (arm, seed, K): mean validation AUC over the 5 folds (how K
would be chosen), mean ± sd of the test-fold AUCs, pooled out-of-fold test AUC with its 95 %
patient-bootstrap CI, and the paired DeLong p against K = 1 on the same records.

Caveat, stated in the table: arms that pick their best epoch on validation AUC picked it with
K = 1; training with ``model.test_windows=K`` would select with K too.

Usage::

    python benchmarks/tta.py [--arms resnet,xresnet1d,resnet1d_wang] [--seeds 42] [--windows 1,2,3,5] [--publish]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from ablation import (  # benchmarks/ is this script's folder
    ARMS,
    experiment_name,
    pooled_auc,
)
from sklearn.metrics import roc_auc_score

from ecg_mi.evaluate.main import rebuild_run
from ecg_mi.evaluate.publish import commit, machine, replace_section
from ecg_mi.evaluate.runs import model_fold_runs
from ecg_mi.paths import repo_root
from ecg_mi.stats import delong_test
from ecg_mi.tracking import resolve_tracking_uri
from ecg_mi.utils.reporting import markdown_table

STRIP_ARMS = ("resnet", "xresnet1d", "resnet1d_wang")


def score_run(uri: str, run_id: str, windows: list[int], scratch: Path) -> dict[int, dict[str, pd.DataFrame]]:
    """{K: {"val": table, "test": table}} of one fold run: META_COLUMNS plus ``prob``."""
    learner, data = rebuild_run(uri, run_id, scratch / run_id)
    if not learner.model.augment.crop:
        raise SystemExit(f"[tta] run {run_id} ({learner.cfg.model.name}) trained without crops: nothing to average")
    scored = {}
    for k in windows:
        learner.model.hparams.test_windows = k
        scored[k] = {part: data.metadata(part).assign(prob=learner.predict(data, part)) for part in ("val", "test")}
    return scored


def rows_for(arm: str, seed: int, windows: list[int], uri: str, scratch: Path) -> list[dict]:
    runs = model_fold_runs(experiment_name(arm, seed), uri, ARMS[arm].model)
    folds = [score_run(uri, run.info.run_id, windows, scratch) for run in runs]
    pooled = {k: pd.concat([f[k]["test"] for f in folds]).sort_values("record_id").reset_index(drop=True)
              for k in windows}  # fmt: skip
    labels, reference = pooled[windows[0]]["label"].to_numpy(), pooled[windows[0]]["prob"].to_numpy()
    rows = []
    for k in windows:
        val = [roc_auc_score(f[k]["val"]["label"], f[k]["val"]["prob"]) for f in folds]
        test = [roc_auc_score(f[k]["test"]["label"], f[k]["test"]["prob"]) for f in folds]
        p = f"{delong_test(labels, pooled[k]['prob'].to_numpy(), reference)[2]:.3g}" if k != windows[0] else ""
        rows.append({"arm": arm, "seed": seed, "windows": k, "val AUC": f"{np.mean(val):.3f}",
                     "test AUC (5 folds)": f"{np.mean(test):.3f} ± {np.std(test, ddof=1):.3f}",
                     "pooled AUC": pooled_auc(pooled[k], "prob"), f"p vs {windows[0]} window": p})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", default=",".join(STRIP_ARMS), help="comma-separated strip arms (finished runs)")
    parser.add_argument("--seeds", default="42", help="comma-separated seeds")
    parser.add_argument("--windows", default="1,2,3,5", help="comma-separated K; the first is the reference")
    parser.add_argument("--publish", action="store_true", help="write the table into BENCHMARKS.md (section tta)")
    args = parser.parse_args()
    arms, seeds = args.arms.split(","), [int(s) for s in args.seeds.split(",")]
    windows = [int(k) for k in args.windows.split(",")]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
    uri = resolve_tracking_uri(None)
    with tempfile.TemporaryDirectory() as scratch:
        rows = [row for arm in arms for seed in seeds for row in rows_for(arm, seed, windows, uri, Path(scratch))]
    text = markdown_table(pd.DataFrame(rows))
    print(text.rstrip())
    if args.publish:
        header = (f"`python benchmarks/tta.py --arms {args.arms} --seeds {args.seeds} --windows {args.windows}` · "
                  f"commit `{commit()}` · machine: {machine()}.\n\n")  # fmt: skip
        replace_section(repo_root() / "BENCHMARKS.md", "tta", header + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
