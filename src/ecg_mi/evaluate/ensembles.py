"""Ensembles across models in the report: ``ensembles=[resnet+random_forest+xgboost]``.

An ensemble's P(MI) for a record is the mean of its members' *calibrated* P(MI) (each
member's calibrator was fitted on its own fold's validation part, so the members share one
probability scale) — :func:`ecg_mi.packaging.weighted_mean`, the rule of the packaged ensemble. Its rows then go through the same Table 2, comparisons, subgroups and
calibration code as any model: fold AUCs from each test fold's records, the pooled AUC with
its patient-bootstrap CI, DeLong against the best. The F1 threshold of a fold is the mean of
the members' validation-chosen thresholds on the calibrated scale, so no test record chooses
it. The same ensemble as one packaged model: ``register=<name> model_name=resnet+random_forest+xgboost``
(:mod:`ecg_mi.evaluate.register`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from ecg_mi import metrics
from ecg_mi.errors import ConfigError
from ecg_mi.evaluate.reliability import calibrated_probs
from ecg_mi.evaluate.runs import Sweep
from ecg_mi.learners import ENSEMBLE_ARM
from ecg_mi.models.registry import ENSEMBLE_SEPARATOR, members_of
from ecg_mi.packaging import weighted_mean

_RECORD = ["record_id", "patient_id", "age", "sex", "label", "fold"]


def _member_predictions(predictions: pd.DataFrame, model: str) -> pd.DataFrame:
    pooled = predictions[predictions["model"] == model]
    probs, _ = calibrated_probs(pooled)
    return pooled[_RECORD].assign(prob=probs).sort_values(["fold", "record_id"]).reset_index(drop=True)


def _mean_of_members(predictions: pd.DataFrame, name: str, members: Sequence[str]) -> pd.DataFrame:
    """The records ``members`` all scored, with the mean of their calibrated P(MI) as ``prob``
    (and ``prob_calibrated``); ConfigError when the members scored different records."""
    parts = [_member_predictions(predictions, m) for m in members]
    for model, part in zip(members[1:], parts[1:], strict=True):
        if not part[["fold", "record_id"]].equals(parts[0][["fold", "record_id"]]):
            raise ConfigError(f"ensembles: {members[0]!r} and {model!r} scored different records")
    pooled = parts[0][_RECORD].assign(prob=weighted_mean([p["prob"].to_numpy() for p in parts], [1.0] * len(parts)))
    return pooled.assign(prob_calibrated=pooled["prob"], model=name)


def _threshold(runs: pd.DataFrame) -> pd.Series:
    """Each run's validation-chosen threshold on the calibrated scale (raw when not logged)."""
    if "test_threshold_calibrated" not in runs:
        return runs["test_threshold"]
    return runs["test_threshold_calibrated"].fillna(runs["test_threshold"])


def ensemble_rows(sweep: Sweep, name: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(fold rows, pooled test predictions, validation predictions) of ensemble ``name`` built
    from ``sweep``'s models; the validation predictions (and each fold row's ``val_auc``) come
    from the members' logged ones and are empty (NaN) when a member's runs logged none."""
    members = members_of(name)
    known = sorted(set(sweep.runs["model"]))
    absent = [m for m in members if m not in known or m in sweep.incomplete]
    if len(members) < 2 or absent:
        raise ConfigError(f"ensembles: {name!r} needs two or more complete models of the sweep joined by "
                          f"{ENSEMBLE_SEPARATOR!r}; {absent or name} not among {known}")  # fmt: skip
    pooled = _mean_of_members(sweep.predictions, name, members)
    logged = sweep.val_predictions
    val = (_mean_of_members(logged, name, members) if not logged.empty and set(members) <= set(logged["model"])
           else pd.DataFrame(columns=[*_RECORD, "prob"]))  # fmt: skip
    runs = sweep.runs[sweep.runs["model"].isin(members)].assign(threshold=lambda t: _threshold(t))
    rows = []
    for fold, group in runs.groupby("fold"):
        test = pooled[pooled["fold"] == fold]
        threshold = float(group["threshold"].mean())
        labels, probs = test["label"].to_numpy(), test["prob"].to_numpy()
        rows.append({**group.iloc[0][["fold_hash", "n_folds", "data", "sample_rate"]].to_dict(),
                     "model": name, "fold": int(fold), "run_id": None, "calibration": "members", "arm": ENSEMBLE_ARM,
                     "display": " + ".join(sweep.display(m) for m in members),
                     "test_auc": metrics.auc(probs, labels), "test_f1": metrics.f1_at(probs, labels, threshold),
                     "val_auc": _auc(val[val["fold"] == fold]), "test_threshold": threshold,
                     # an ensemble costs what training its members cost
                     "seconds": group["seconds"].sum(min_count=len(group)) if "seconds" in group else np.nan})  # fmt: skip
    return pd.DataFrame(rows), pooled, val


def _auc(part: pd.DataFrame) -> float:
    return metrics.auc(part["prob"].to_numpy(), part["label"].to_numpy()) if len(part) else np.nan


def add_ensembles(sweep: Sweep, names: Sequence[str]) -> Sweep:
    """``sweep`` with a model row set for each ensemble of ``names`` (see module docstring)."""
    if not names:
        return sweep
    runs, predictions, val = [sweep.runs], [sweep.predictions], [sweep.val_predictions]
    for name in names:
        fold_rows, pooled, pooled_val = ensemble_rows(sweep, name)
        runs.append(fold_rows)
        predictions.append(pooled)
        val.append(pooled_val)
    return replace(sweep, runs=pd.concat(runs, ignore_index=True), predictions=pd.concat(predictions, ignore_index=True),
                   val_predictions=pd.concat([v for v in val if not v.empty] or [pd.DataFrame()], ignore_index=True))  # fmt: skip


__all__ = ["add_ensembles", "ensemble_rows"]
