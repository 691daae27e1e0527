"""Cohort rule, patient-grouped stratified folds, the fold file and its hash."""

import numpy as np
import pandas as pd
import pytest

from ecg_mi.data.cohort import (
    assign_folds,
    fold_file_for,
    read_fold_file,
    select_cohort,
    train_val_split,
)
from ecg_mi.errors import ConfigError, DataError, InputError


@pytest.fixture
def index() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    patients = rng.integers(0, 280, size=n)  # many patients with several ECGs
    label = (rng.random(n) < 0.2).astype(int)
    return pd.DataFrame({
        "record_id": [str(i) for i in range(n)], "patient_id": [f"p{p}" for p in patients],
        "age": 60.0, "sex": 0, "label": label, "is_norm": (rng.random(n) < 0.5).astype(int) * (1 - label),
    })  # fmt: skip


def test_cohort_has_all_cases_and_ratio_controls(index):
    cohort = select_cohort(index, ratio=2, seed=0)
    n_mi = int(index["label"].sum())
    assert int(cohort["label"].sum()) == n_mi
    assert (cohort["label"] == 0).sum() == 2 * n_mi


def test_cohort_norm_controls_come_from_norm_records(index):
    cohort = select_cohort(index, ratio=1, controls="norm", seed=0)
    assert (cohort.loc[cohort["label"] == 0, "is_norm"] == 1).all()


def test_cohort_max_cases_draws_a_seeded_subset_with_its_controls(index):
    cohort = select_cohort(index, ratio=2, seed=0, max_cases=10)
    assert int(cohort["label"].sum()) == 10 and (cohort["label"] == 0).sum() == 20
    assert set(cohort["record_id"]) <= set(index["record_id"])
    pd.testing.assert_frame_equal(cohort, select_cohort(index, ratio=2, seed=0, max_cases=10))


def test_cohort_max_cases_must_be_positive(index):
    with pytest.raises(ConfigError, match="max_cases"):
        select_cohort(index, max_cases=0)


def test_cohort_is_seeded(index):
    pd.testing.assert_frame_equal(select_cohort(index, seed=3), select_cohort(index, seed=3))
    assert not select_cohort(index, seed=3).equals(select_cohort(index, seed=4))


def test_empty_cohort_is_a_data_error(index):
    with pytest.raises(DataError, match="empty cohort: 0 MI records"):
        select_cohort(index.assign(label=0))


def test_unknown_control_pool_is_a_config_error(index):
    with pytest.raises(ConfigError, match="controls='healthy'"):
        select_cohort(index, controls="healthy")


def test_folds_never_split_a_patient(index):
    folds = assign_folds(select_cohort(index), n_folds=5, seed=0)
    assert folds.groupby("patient_id")["fold"].nunique().max() == 1


def test_folds_are_stratified(index):
    folds = assign_folds(select_cohort(index), n_folds=5, seed=0)
    rates = folds.groupby("fold")["label"].mean()
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    assert rates.max() - rates.min() < 0.1


def test_folds_identical_for_same_seed(index):
    cohort = select_cohort(index)
    pd.testing.assert_frame_equal(assign_folds(cohort, seed=1), assign_folds(cohort, seed=1))


def test_fold_file_is_written_once_with_stable_hash(index, tmp_path):
    first = fold_file_for(index, "src", tmp_path)
    mtime = first.path.stat().st_mtime_ns
    second = fold_file_for(index, "src", tmp_path)
    assert first.sha256 == second.sha256 and second.path.stat().st_mtime_ns == mtime
    assert list(first.table.columns) == ["record_id", "patient_id", "label", "fold"]
    assert not list(tmp_path.glob(".*tmp*"))  # no temp file left behind


def test_fold_file_name_changes_with_the_rule(index, tmp_path):
    assert (
        fold_file_for(index, "src", tmp_path, ratio=2).path
        != fold_file_for(index, "src", tmp_path, ratio=1).path
    )


def test_explicit_fold_file_with_split_patient_is_rejected(index, tmp_path):
    table = fold_file_for(index, "src", tmp_path).table.copy()
    shared = table["patient_id"].value_counts().index[0]
    rows = table.index[table["patient_id"] == shared]
    if len(rows) < 2:
        pytest.skip("no patient with two records in the cohort")
    table.loc[rows[0], "fold"] = (table.loc[rows[1], "fold"] + 1) % 5
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    with pytest.raises(InputError, match="span several folds"):
        read_fold_file(path, index, 5)


def test_explicit_fold_file_with_wrong_labels_is_rejected(index, tmp_path):
    table = fold_file_for(index, "src", tmp_path).table.copy()
    table.loc[0, "label"] = 1 - table.loc[0, "label"]
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    with pytest.raises(InputError, match="labels disagree"):
        read_fold_file(path, index, 5)


def test_validation_split_is_grouped_and_has_both_classes(index):
    folds = assign_folds(select_cohort(index))
    train = folds[folds["fold"] != 0].reset_index(drop=True)
    fit, val = train_val_split(train, 0.2, seed=0)
    assert set(fit["patient_id"]).isdisjoint(val["patient_id"])
    assert len(fit) + len(val) == len(train)
    assert val["label"].nunique() == 2 and 0.1 < len(val) / len(train) < 0.3
