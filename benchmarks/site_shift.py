"""Issue 35's site shift: a packaged model's calibration at a site where MI is rarer.

The site set is built from the shared PTB-XL data, from patients none of the models was trained
on for the records it scores: every control is a record *outside* the sweep's cohort whose
patient has no record in the cohort, and the MI cases are test-fold records, each scored by the
fold model that never saw it (its logged ``prob_calibrated``, which the packaged model
reproduces to ≤ 1e-6, tests/test_input_contract.py). MI cases are drawn (seeded) so that they
make ``--prevalence`` of the set; each control is scored by one fold's packaged model
(``predict.py``'s route: read, 10 s windows, mean P(MI)), folds assigned round robin.

Printed, for the packaged fold models: ECE and Brier of P(MI) as packaged, after
``prevalence=<p>`` (:func:`ecg_mi.calibration.prior_shift` from each fold's validation-part
prevalence), and after a recalibration fitted on half of the set's patients (Platt / isotonic /
none by cross-fitted Brier, as ``evaluate.py external=true recalibrate=true`` does), scored on
the other half — both halves in turn (2-fold), each figure the mean of the two.

Usage::

    python benchmarks/site_shift.py --experiment ecg-mi-best_cpu --model extra_trees [--prevalence 0.15]
"""

from __future__ import annotations

import argparse
import functools
import sys

import numpy as np
import pandas as pd
from mlflow.artifacts import download_artifacts

from ecg_mi.calibration import apply_calibration, brier_score, ece, fit_calibration, prior_shift
from ecg_mi.data.sources import PtbxlSource
from ecg_mi.evaluate.runs import collect
from ecg_mi.predict import load_for_scoring, score_records
from ecg_mi.tracking import resolve_tracking_uri


def fold_tables(experiment: str, model: str, uri: str) -> tuple[pd.DataFrame, dict[int, str], dict[int, float]]:
    """The model's pooled test predictions, its run id per fold and each fold's validation-part
    MI prevalence (what its calibration assumed)."""
    sweep = collect(experiment, uri, allow_incomplete=True)  # other models of the sweep may still run
    runs = sweep.runs[sweep.runs["model"] == model].set_index("fold")["run_id"].to_dict()
    predictions = sweep.predictions[sweep.predictions["model"] == model]
    prevalence = {}
    for fold, run_id in runs.items():
        local = download_artifacts(run_id=run_id, artifact_path="val_predictions.csv", tracking_uri=uri)
        prevalence[int(fold)] = float(pd.read_csv(local)["label"].mean())
    return predictions, {int(k): v for k, v in runs.items()}, prevalence


def site_set(predictions: pd.DataFrame, index: pd.DataFrame, prevalence: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(mi, controls)``: test-fold MI cases drawn to make ``prevalence`` of the set, and every
    record outside the cohort whose patient has none in it."""
    cohort_patients = set(predictions["patient_id"].astype(str))
    index = index.assign(patient_id=index["patient_id"].astype(str), record_id=index["record_id"].astype(str))
    outside = index[~index["record_id"].isin(set(predictions["record_id"].astype(str)))]
    controls = outside[(outside["label"] == 0) & ~outside["patient_id"].isin(cohort_patients)]
    n_mi = int(round(prevalence / (1 - prevalence) * len(controls)))
    mi = predictions[predictions["label"] == 1].sample(n=n_mi, random_state=seed)
    return mi, controls.reset_index(drop=True)


def score_controls(controls: pd.DataFrame, runs: dict[int, str], source: PtbxlSource, uri: str) -> pd.DataFrame:
    """Each control scored by one fold's packaged model (round robin over the folds)."""
    folds = sorted(runs)
    controls = controls.assign(fold=[folds[i % len(folds)] for i in range(len(controls))])
    scored = []
    for fold, part in controls.groupby("fold"):
        model = load_for_scoring(f"runs:/{runs[fold]}", uri)
        rows = part.reset_index(drop=True)
        read = functools.partial(lambda part, i: source.read(part.iloc[i], 100), rows)
        for s in score_records(range(len(rows)), read, model):
            if s.error:
                raise SystemExit(f"error: {rows.iloc[s.key]['record_id']}: {s.error}")
            scored.append({"record_id": rows.iloc[s.key]["record_id"], "patient_id": rows.iloc[s.key]["patient_id"],
                           "label": 0, "fold": int(fold), "prob": s.prob})  # fmt: skip
    return pd.DataFrame(scored)


def halves_recalibrated(table: pd.DataFrame, seed: int) -> tuple[np.ndarray, list[str]]:
    """P(MI) of every record recalibrated by a map fitted on the other half of the patients."""
    patients = table["patient_id"].unique()
    rng = np.random.default_rng(seed)
    half = set(rng.permutation(patients)[: len(patients) // 2])
    in_a = table["patient_id"].isin(half).to_numpy()
    out, methods = np.empty(len(table)), []
    for fit, score in ((in_a, ~in_a), (~in_a, in_a)):
        part = table[fit]
        calibrator, _ = fit_calibration(part["prob"].to_numpy(), part["label"].to_numpy(),
                                        part["patient_id"].to_numpy(), "auto", seed=seed)  # fmt: skip
        out[score] = apply_calibration(calibrator, table.loc[score, "prob"].to_numpy())
        methods.append(calibrator["method"])
    return out, methods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="ecg-mi-best_cpu")
    parser.add_argument("--model", default="extra_trees")
    parser.add_argument("--prevalence", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    uri = resolve_tracking_uri(args.tracking_uri)
    predictions, runs, fold_prevalence = fold_tables(args.experiment, args.model, uri)
    source = PtbxlSource()
    mi, controls = site_set(predictions, source.index(), args.prevalence, args.seed)
    mi = mi.assign(prob=mi["prob_calibrated"], patient_id=mi["patient_id"].astype(str))
    table = pd.concat([mi[["record_id", "patient_id", "label", "fold", "prob"]],
                       score_controls(controls, runs, source, uri)], ignore_index=True)  # fmt: skip
    labels = table["label"].to_numpy().astype(int)
    source_prevalence = table["fold"].map(fold_prevalence).to_numpy()
    shifted = prior_shift(table["prob"].to_numpy(), source_prevalence, args.prevalence)
    recalibrated, methods = halves_recalibrated(table, args.seed)
    rows = [("as packaged", table["prob"].to_numpy()), (f"prevalence={args.prevalence:g}", shifted),
            (f"recalibrated on the other half ({'/'.join(methods)})", recalibrated)]  # fmt: skip
    print(f"site set: {len(table)} records, {labels.sum()} MI ({labels.mean():.3f}), {table['patient_id'].nunique()} "
          f"patients; {args.model} fold models of {args.experiment}; validation prevalence per fold "
          f"{', '.join(f'{v:.3f}' for v in fold_prevalence.values())}")  # fmt: skip
    print("| P(MI) | ECE | Brier | mean P(MI) |\n|---|---|---|---|")
    for name, probs in rows:
        print(f"| {name} | {ece(labels, probs):.3f} | {brier_score(labels, probs):.3f} | {np.mean(probs):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
