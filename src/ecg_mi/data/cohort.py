"""The cohort rule and the fold file every method of an experiment shares.

Cohort: every MI record plus controls drawn (seeded) at ``ratio`` controls per MI record
from ``non_mi`` (all non-MI records, as the paper) or ``norm`` (non-MI records whose codes
include NORM). Folds: ``StratifiedGroupKFold`` — stratified by label, grouped by
``patient_id`` so a patient's ECGs never straddle folds. The fold file is a CSV
``record_id, patient_id, label, fold``; the sha256 of its bytes is the ``fold_hash``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from ecg_mi.data.columns import text_ids
from ecg_mi.errors import ConfigError, DataError, InputError
from ecg_mi.utils.io import atomic_path, read_csv_table, sha256_file, sha256_text

log = logging.getLogger(__name__)

FOLD_COLUMNS = ["record_id", "patient_id", "label", "fold"]
CONTROL_POOLS = ("non_mi", "norm")


@dataclass(frozen=True)
class FoldFile:
    """A persisted fold assignment and its hash."""

    path: Path
    table: pd.DataFrame  # FOLD_COLUMNS, record_id/patient_id as str
    sha256: str
    n_folds: int


def select_cohort(
    index: pd.DataFrame,
    ratio: float | None = 2,
    controls: str = "non_mi",
    seed: int = 0,
    max_cases: int | None = None,
) -> pd.DataFrame:
    """All MI records (or a seeded ``max_cases`` of them: a small real subset for smoke
    runs) plus ``ratio`` × as many seeded controls (all controls when ``ratio`` is ``None``)."""
    if max_cases is not None and max_cases < 1:
        raise ConfigError(f"data.cohort.max_cases={max_cases!r} must be a positive count or null")
    if controls not in CONTROL_POOLS:
        raise ConfigError(f"data.cohort.controls={controls!r}; choose one of {list(CONTROL_POOLS)}")
    if ratio is not None and ratio <= 0:
        raise ConfigError(
            f"data.cohort.ratio={ratio!r} must be positive (or null for all controls)"
        )
    cases = index[index["label"] == 1]
    pool = index[index["label"] == 0]
    if controls == "norm":
        if "is_norm" not in index.columns:
            raise ConfigError(
                "data.cohort.controls=norm needs a data set with a NORM flag (PTB-XL)"
            )
        pool = pool[pool["is_norm"] == 1]
    if cases.empty or pool.empty:
        raise DataError(
            f"empty cohort: {len(cases)} MI records and {len(pool)} '{controls}' controls after filtering"
        )
    if max_cases is not None and max_cases < len(cases):
        cases = cases.sample(n=max_cases, random_state=np.random.RandomState(seed))
    n_controls = len(pool) if ratio is None else min(len(pool), int(round(ratio * len(cases))))
    if n_controls < len(pool):
        pool = pool.sample(n=n_controls, random_state=np.random.RandomState(seed))
    cohort = pd.concat([cases, pool])
    return cohort.sort_values("record_id", key=_natural_key).reset_index(drop=True)


def assign_folds(cohort: pd.DataFrame, n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Patient-grouped, label-stratified fold numbers 0..n_folds-1 (FOLD_COLUMNS)."""
    if n_folds < 2:
        raise ConfigError(f"data.n_folds={n_folds} must be at least 2")
    n_patients = cohort["patient_id"].nunique()
    if n_patients < n_folds or cohort["label"].sum() < n_folds:
        raise DataError(
            f"cohort too small for {n_folds} folds: {n_patients} patients, {int(cohort['label'].sum())} MI records"
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.empty(len(cohort), dtype=int)
    for k, (_, test) in enumerate(splitter.split(cohort, cohort["label"], cohort["patient_id"])):
        fold[test] = k
    table = cohort[["record_id", "patient_id", "label"]].astype(
        {"record_id": str, "patient_id": str}
    )
    return table.assign(label=table["label"].astype(int), fold=fold).reset_index(drop=True)


def train_val_split(
    train: pd.DataFrame, val_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carve a patient-grouped, stratified validation part out of the training folds."""
    if not 0 < val_fraction < 0.5:
        raise ConfigError(f"data.val_fraction={val_fraction} must be in (0, 0.5)")
    n_splits = max(2, int(round(1 / val_fraction)))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    fit_idx, val_idx = next(splitter.split(train, train["label"], train["patient_id"]))
    return train.iloc[fit_idx].reset_index(drop=True), train.iloc[val_idx].reset_index(drop=True)


def fold_file_for(
    index: pd.DataFrame,
    source_fingerprint: str,
    folds_dir: str | Path,
    ratio: float | None = 2,
    controls: str = "non_mi",
    n_folds: int = 5,
    seed: int = 0,
    path: str | Path | None = None,
    max_cases: int | None = None,
) -> FoldFile:
    """Load the fold file (``path`` if given) or create it once, atomically.

    The default name encodes a hash of the rule and the source, so two experiments with the
    same rule share one file, and a changed rule never reuses a stale one.
    """
    if path is not None:
        return read_fold_file(path, index, n_folds)
    rule = f"{source_fingerprint}|ratio={ratio}|controls={controls}|k={n_folds}|seed={seed}"
    if max_cases is not None:  # only named when set, so existing fold files keep their names
        rule += f"|max_cases={max_cases}"
    target = Path(folds_dir) / f"folds-{sha256_text(rule)[:16]}.csv"
    if not target.is_file():
        cohort = select_cohort(index, ratio, controls, seed, max_cases)
        table = assign_folds(cohort, n_folds, seed)
        with atomic_path(target) as tmp:
            table.to_csv(tmp, index=False, lineterminator="\n")
        log.info("wrote fold file %s (%d records)", target, len(table))
    return read_fold_file(target, index, n_folds)


def read_fold_file(path: str | Path, index: pd.DataFrame, n_folds: int) -> FoldFile:
    """Read and validate a fold CSV against the data set's index."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"fold file {path} not found")
    table = read_csv_table(path, "fold file", dtype={"record_id": str, "patient_id": str})
    missing = [c for c in FOLD_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"fold file {path}: missing column(s) {missing}")
    # A blank id would match no record, or drop out of the per-patient check below.
    for column in ("record_id", "patient_id"):
        table[column] = text_ids(table[column], path, column)
    if table["record_id"].duplicated().any():
        raise InputError(
            f"fold file {path}: duplicated record_id(s) {table.loc[table['record_id'].duplicated(), 'record_id'].tolist()[:5]}"
        )
    if not table["label"].isin([0, 1]).all():
        raise InputError(f"fold file {path}: labels must be 0/1")
    folds = set(table["fold"].unique())
    if folds != set(range(n_folds)):
        raise InputError(
            f"fold file {path}: folds {sorted(folds)} do not match data.n_folds={n_folds}"
        )
    unknown = set(table["record_id"]) - set(index["record_id"].astype(str))
    if unknown:
        raise InputError(
            f"fold file {path}: {len(unknown)} record_id(s) not in the data set, e.g. {sorted(unknown)[:3]}"
        )
    truth = index.astype({"record_id": str}).set_index("record_id")["label"]
    disagree = table["label"].to_numpy() != truth.loc[table["record_id"]].to_numpy()
    if disagree.any():
        raise InputError(
            f"fold file {path}: labels disagree with the data set for {int(disagree.sum())} record(s), e.g. {table.loc[disagree, 'record_id'].tolist()[:3]}"
        )
    straddling = table.groupby("patient_id")["fold"].nunique()
    if (straddling > 1).any():
        raise InputError(
            f"fold file {path}: patient(s) {straddling[straddling > 1].index.tolist()[:3]} span several folds"
        )
    return FoldFile(path=path, table=table[FOLD_COLUMNS], sha256=sha256_file(path), n_folds=n_folds)


def _natural_key(ids: pd.Series) -> pd.Series:
    """Sort numeric ids numerically ('2' < '10'), others as text."""
    numeric = pd.to_numeric(ids, errors="coerce")
    return numeric if numeric.notna().all() else ids.astype(str)
