"""Ensembles across models in the report: ``ensembles=[resnet+random_forest+xgboost]``.

An ensemble's P(MI) for a record is the mean of its members' *calibrated* P(MI) (each
member's calibrator was fitted on its own fold's validation part, so the members share one
probability scale). Its rows then go through the same Table 2, comparisons, subgroups and
calibration code as any model: fold AUCs from each test fold's records, the pooled AUC with
its patient-bootstrap CI, DeLong against the best. The F1 threshold of a fold is the mean of
the members' validation-chosen thresholds on the calibrated scale, so no test record chooses
it. The same ensemble as one packaged model: ``register=<name> model=resnet+random_forest+xgboost``
(:mod:`ecg_mi.evaluate.register`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from ecg_mi import metrics
from ecg_mi.errors import ConfigError
from ecg_mi.evaluate.calibration import calibrated_probs
from ecg_mi.evaluate.runs import Sweep
from ecg_mi.models.registry import ENSEMBLE_SEPARATOR, members_of

_RECORD = ["record_id", "patient_id", "age", "sex", "label", "fold"]


def _member_predictions(sweep: Sweep, model: str) -> pd.DataFrame:
    pooled = sweep.predictions[sweep.predictions["model"] == model]
    probs, _ = calibrated_probs(pooled)
    return pooled[_RECORD].assign(prob=probs).sort_values("record_id").reset_index(drop=True)


def _threshold(runs: pd.DataFrame) -> pd.Series:
    """Each run's validation-chosen threshold on the calibrated scale (raw when not logged)."""
    if "test_threshold_calibrated" not in runs:
        return runs["test_threshold"]
    return runs["test_threshold_calibrated"].fillna(runs["test_threshold"])


def ensemble_rows(sweep: Sweep, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fold rows, pooled predictions) of ensemble ``name`` built from ``sweep``'s models."""
    members = members_of(name)
    known = sorted(set(sweep.runs["model"]))
    absent = [m for m in members if m not in known or m in sweep.incomplete]
    if len(members) < 2 or absent:
        raise ConfigError(f"ensembles: {name!r} needs two or more complete models of the sweep joined by "
                          f"{ENSEMBLE_SEPARATOR!r}; {absent or name} not among {known}")  # fmt: skip
    parts = [_member_predictions(sweep, m) for m in members]
    for model, part in zip(members[1:], parts[1:], strict=True):
        if not part["record_id"].equals(parts[0]["record_id"]):
            raise ConfigError(f"ensembles: {members[0]!r} and {model!r} scored different records")
    pooled = parts[0][_RECORD].assign(prob=np.mean([p["prob"].to_numpy() for p in parts], axis=0))
    pooled = pooled.assign(prob_calibrated=pooled["prob"], model=name)
    runs = sweep.runs[sweep.runs["model"].isin(members)].assign(threshold=lambda t: _threshold(t))
    rows = []
    for fold, group in runs.groupby("fold"):
        test = pooled[pooled["fold"] == fold]
        threshold = float(group["threshold"].mean())
        labels, probs = test["label"].to_numpy(), test["prob"].to_numpy()
        rows.append({**group.iloc[0][["fold_hash", "n_folds", "data", "sample_rate"]].to_dict(),
                     "model": name, "fold": int(fold), "run_id": None, "calibration": "members",
                     "test_auc": metrics.auc(probs, labels), "test_f1": metrics.f1_at(probs, labels, threshold),
                     "val_auc": np.nan, "test_threshold": threshold})  # fmt: skip
    return pd.DataFrame(rows), pooled


def add_ensembles(sweep: Sweep, names: Sequence[str]) -> Sweep:
    """``sweep`` with a model row set for each ensemble of ``names`` (see module docstring)."""
    if not names:
        return sweep
    runs, predictions = [sweep.runs], [sweep.predictions]
    for name in names:
        fold_rows, pooled = ensemble_rows(sweep, name)
        runs.append(fold_rows)
        predictions.append(pooled)
    return replace(sweep, runs=pd.concat(runs, ignore_index=True),
                   predictions=pd.concat(predictions, ignore_index=True))  # fmt: skip


__all__ = ["add_ensembles", "ensemble_rows"]
