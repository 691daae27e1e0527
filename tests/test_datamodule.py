"""FoldDataModule and prepare_fold: fold splits, missing files, the representation, batches."""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import AuxSyntheticSource, model_config
from ecg_mi.data.sources import PtbxlSource, SyntheticSource
from ecg_mi.datamodule import OUTSIDE_COHORT, FoldDataModule, prepare_fold
from ecg_mi.errors import ConfigError, DataError, InputError
from ecg_mi.representation import Representation, fit_scaling
from ecg_mi.targets import Targets

BEAT = Representation("median_beat", "median_beat")
HYBRID = Representation("median_beat+features", "median_beat", "scaled")


@pytest.fixture
def synthetic_dm(tmp_path) -> FoldDataModule:
    dm = FoldDataModule(
        SyntheticSource(n_records=120, seed=0),
        sample_rate=100,
        fold=1,
        batch_size=16,
        cache_dir=tmp_path,
    )
    dm.setup()
    return dm


def test_batches_are_float_tensors_b_12_l(synthetic_dm):
    x, y, row = next(iter(synthetic_dm.train_dataloader()))
    assert x.shape == (16, 12, 1000) and x.dtype == torch.float32
    assert y.dtype == torch.float32 and set(y.tolist()) <= {0.0, 1.0}
    assert row.shape == (16,)


def test_parts_are_disjoint_by_patient_and_test_is_the_fold(synthetic_dm):
    split = synthetic_dm.split
    assert (
        (split.test["fold"] == 1).all()
        and (split.train["fold"] != 1).all()
        and (split.val["fold"] != 1).all()
    )
    patients = [set(p["patient_id"]) for p in (split.train, split.val, split.test)]
    assert (
        patients[0].isdisjoint(patients[1])
        and patients[0].isdisjoint(patients[2])
        and patients[1].isdisjoint(patients[2])
    )


def test_standardisation_is_fitted_on_training_part_only(synthetic_dm):
    train_x = torch.cat([x for x, _, _ in synthetic_dm.train_dataloader()])
    assert train_x.mean(dim=(0, 2)).abs().max() < 1e-3
    assert (train_x.std(dim=(0, 2)) - 1).abs().max() < 1e-2
    test_x = torch.cat([x for x, _, _ in synthetic_dm.test_dataloader()])
    assert test_x.mean(dim=(0, 2)).abs().max() > 1e-4  # not refitted on the test fold


def test_test_metadata_follows_loader_order(synthetic_dm):
    meta = synthetic_dm.metadata("test")
    labels = torch.cat([y for _, y, _ in synthetic_dm.test_dataloader()]).numpy()
    np.testing.assert_array_equal(meta["label"].to_numpy(), labels)
    assert list(meta.columns) == ["record_id", "patient_id", "age", "sex", "label", "fold"]


def test_every_fold_of_one_cohort_shares_the_fold_file(tmp_path):
    source = SyntheticSource(n_records=120, seed=0)
    splits = [prepare_fold(source, k, 100, cache_dir=tmp_path) for k in range(5)]
    assert len({s.fold_hash for s in splits}) == 1
    tested = sorted(r for s in splits for r in s.test["record_id"])
    assert tested == sorted(splits[0].fold_file.table["record_id"])


@pytest.mark.parametrize("fold", [-1, 5, 7])
def test_fold_out_of_range_is_a_config_error(tmp_path, fold):
    with pytest.raises(ConfigError, match=f"fold={fold} is outside 0..4"):
        prepare_fold(SyntheticSource(n_records=120), fold, 100, cache_dir=tmp_path)


def test_missing_record_file_fails_by_default(tiny_ptbxl, tmp_path):
    root = tiny_ptbxl(n_records=40, n_mi=12)
    (root / "records100" / "00000" / "00001_lr.dat").unlink()
    (root / "records100" / "00000" / "00001_lr.hea").unlink()
    with pytest.raises(
        InputError,
        match=r"1 of 36 cohort records have no 100 Hz file .*00001_lr.*data.skip_missing=true",
    ):
        prepare_fold(PtbxlSource(root), 0, 100, skip_missing=False, cache_dir=tmp_path)


def test_missing_record_file_skipped_with_count(tiny_ptbxl, tmp_path):
    root = tiny_ptbxl(n_records=40, n_mi=12)
    (root / "records100" / "00000" / "00001_lr.hea").unlink()
    split = prepare_fold(PtbxlSource(root), 0, 100, skip_missing=True, cache_dir=tmp_path)
    assert split.n_missing == 1 and split.summary()["n_missing_skipped"] == 1
    assert "1" not in set(split.train["record_id"]) | set(split.val["record_id"]) | set(
        split.test["record_id"]
    )


def test_auto_skips_only_at_partial_rates(tiny_ptbxl, tmp_path):
    root = tiny_ptbxl(n_records=40, n_mi=12, with_500=False)
    with pytest.raises(InputError, match="no 500 Hz file"):
        prepare_fold(
            PtbxlSource(root, partial_rates=()), 0, 500, skip_missing="auto", cache_dir=tmp_path
        )
    with pytest.raises(DataError, match="hold 0 records"):  # every 500 Hz file absent: nothing left
        prepare_fold(
            PtbxlSource(root, partial_rates=(500,)), 0, 500, skip_missing="auto", cache_dir=tmp_path
        )


def test_also_at_rate_keeps_the_same_records_at_either_rate(tiny_ptbxl, tmp_path):
    """data.also_at_rate=500: a 100 Hz fold holds exactly the records a 500 Hz fold holds."""
    root = tiny_ptbxl(n_records=40, n_mi=12)
    for i in (2, 5):  # two records without a 500 Hz file
        (root / "records500" / "00000" / f"{i:05d}_hr.hea").unlink()
    source = PtbxlSource(root, partial_rates=(500,))

    def records(split):
        return set(pd.concat([split.train, split.val, split.test, split.pool])["record_id"])

    at_100 = prepare_fold(source, 0, 100, cache_dir=tmp_path, train_pool="all", also_at_rate=500)
    at_500 = prepare_fold(source, 0, 500, cache_dir=tmp_path, train_pool="all")
    assert records(at_100) == records(at_500) and not {"2", "5"} & records(at_100)
    assert at_100.n_missing == at_500.n_missing == 2
    assert {"2", "5"} <= records(prepare_fold(source, 0, 100, cache_dir=tmp_path, train_pool="all"))


def test_unsupported_sample_rate_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.sample_rate=200"):
        FoldDataModule(SyntheticSource(n_records=120), sample_rate=200, cache_dir=tmp_path)


@pytest.mark.integration
def test_shared_ptbxl_500hz_leaves_out_records_without_files(shared_ptbxl, tmp_path):
    split = prepare_fold(PtbxlSource(shared_ptbxl), 0, 500, cache_dir=tmp_path)
    kept = len(split.train) + len(split.val) + len(split.test)
    assert split.n_missing > 0 and kept + split.n_missing == len(split.fold_file.table)
    assert all(int(r) <= 500 for r in split.test["record_id"])


def _first_batch_rows(tmp_path, seed: int, fold: int = 1) -> list[int]:
    dm = FoldDataModule(SyntheticSource(n_records=120, seed=0), sample_rate=100, fold=fold,
                          batch_size=16, cache_dir=tmp_path, seed=seed)  # fmt: skip
    dm.setup()
    return next(iter(dm.train_dataloader()))[2].tolist()


def test_the_seed_changes_the_batch_order(tmp_path):
    assert _first_batch_rows(tmp_path, seed=1) != _first_batch_rows(tmp_path, seed=2)


def test_the_same_seed_and_fold_give_the_same_batch_order(tmp_path):
    assert _first_batch_rows(tmp_path, seed=3) == _first_batch_rows(tmp_path, seed=3)


def test_the_features_representation_serves_feature_matrices_of_the_same_parts(tmp_path):
    dm = FoldDataModule(SyntheticSource(n_records=120), Representation("features", None, "raw"), fold=1, cache_dir=tmp_path)
    dm.setup()
    X, y = dm.arrays("test")
    assert X.shape == (len(dm.split.test), 408) and (y == dm.split.test["label"].to_numpy()).all()
    assert dm.store is None and dm.fitted.lead_mean is None  # no signal input to fit


# ---- data.train_pool=all: more training records, the same validation and test parts


def test_train_pool_all_adds_only_records_of_training_patients(tmp_path):
    source = SyntheticSource(n_records=120, seed=0)
    cohort = prepare_fold(source, 1, 100, cache_dir=tmp_path)
    every = prepare_fold(source, 1, 100, cache_dir=tmp_path, train_pool="all")
    extra = every.train[every.train["fold"] == OUTSIDE_COHORT]
    assert len(extra) == every.n_outside_cohort > 0 and cohort.n_outside_cohort == 0
    held_out = set(every.test["patient_id"]) | set(every.val["patient_id"])
    assert held_out.isdisjoint(extra["patient_id"])
    assert set(extra["record_id"]).isdisjoint(every.fold_file.table["record_id"])
    for part in ("val", "test"):  # scored on the same records as the paper's protocol
        assert getattr(every, part)["record_id"].tolist() == getattr(cohort, part)["record_id"].tolist()
    assert every.summary()["n_train_outside_cohort"] == len(extra)


def test_train_pool_all_caches_the_same_records_for_every_fold(tmp_path):
    source = SyntheticSource(n_records=120, seed=0)
    rows = [FoldDataModule(source, fold=k, cache_dir=tmp_path, train_pool="all").cohort_rows()["record_id"].tolist()
            for k in range(5)]  # fmt: skip
    assert all(r == rows[0] for r in rows) and len(rows[0]) == 120


def test_unknown_train_pool_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.train_pool='everything'; choose one of"):
        prepare_fold(SyntheticSource(n_records=120), 0, 100, cache_dir=tmp_path, train_pool="everything")


# ---- auxiliary targets: training batches only


def test_aux_targets_reach_training_batches_only(tmp_path):
    dm = FoldDataModule(AuxSyntheticSource(n_records=120), targets=Targets(["FEMALE"]), fold=1, batch_size=16,
                        cache_dir=tmp_path)  # fmt: skip
    _, y, rows = next(iter(dm.train_dataloader()))
    assert y.shape == (16, 2)
    expected = dm.split.train[["label", "aux_FEMALE"]].to_numpy()[rows.numpy()]
    np.testing.assert_array_equal(y.numpy(), expected)
    assert next(iter(dm.val_dataloader()))[1].ndim == 1 and next(iter(dm.test_dataloader()))[1].ndim == 1


def test_teacher_softens_the_training_targets_only(tmp_path):
    targets = Targets(["FEMALE"], {"estimator": model_config("random_forest"), "weight": 0.5})
    dm = FoldDataModule(AuxSyntheticSource(n_records=120), targets=targets, fold=1, batch_size=16, cache_dir=tmp_path)
    labels = dm.split.train["label"].to_numpy()
    soft = targets.training(dm.split.train, lambda: dm.feature_matrix(dm.split.train))[:, 0]
    # Weight 0.5: each target stays within 0.5 of its label, and the teacher moved some of them.
    assert soft.shape == labels.shape and (np.abs(soft - labels) <= 0.5).all() and (soft != labels).any()
    _, y, rows = next(iter(dm.train_dataloader()))
    np.testing.assert_allclose(y[:, 0].numpy(), soft[rows.numpy()], rtol=1e-6)
    np.testing.assert_array_equal(y[:, 1].numpy(), dm.split.train["aux_FEMALE"].to_numpy()[rows.numpy()])
    _, y_val, _ = next(iter(dm.val_dataloader()))
    assert set(y_val.unique().tolist()) <= {0.0, 1.0}


def test_aux_target_the_source_lacks_is_a_config_error_naming_what_it_offers(tmp_path):
    with pytest.raises(ConfigError, match=r"\['HYP'\] not offered .* \(it offers \['FEMALE'\]"):
        FoldDataModule(AuxSyntheticSource(n_records=120), targets=Targets(["HYP"]), cache_dir=tmp_path)


def test_ptbxl_offers_its_other_diagnostic_classes_as_aux_targets(shared_ptbxl):
    index = PtbxlSource(shared_ptbxl).index()
    assert [c for c in index.columns if c.startswith("aux_")][:4] == ["aux_CD", "aux_HYP", "aux_NORM", "aux_STTC"]
    assert (index["aux_NORM"] == index["is_norm"]).mean() > 0.99


def test_ptbxl_offers_every_scp_statement_as_an_aux_target(shared_ptbxl):
    statements = pd.read_csv(shared_ptbxl / "scp_statements.csv", index_col=0)
    index = PtbxlSource(shared_ptbxl).index()
    offered = [c.removeprefix("aux_") for c in index.columns if c.startswith("aux_")]
    assert sorted(set(offered)) == sorted(offered)  # NORM (class and statement) once
    assert set(statements.index) <= set(offered)
    mi_statements = statements.index[statements["diagnostic_class"] == "MI"]
    # The MI label is the union of the MI statements, each its own column.
    assert (index[[f"aux_{code}" for code in mi_statements]].max(axis=1) == index["label"]).all()
    table = pd.read_csv(shared_ptbxl / "ptbxl_database.csv")
    for code in ("IMI", "QWAVE", "AFIB"):  # diagnostic, form, rhythm
        carries = table["scp_codes"].map(lambda text, c=code: f"'{c}'" in text).to_numpy()
        assert (index[f"aux_{code}"].to_numpy() == carries).all() and carries.any()


def test_median_beat_input_serves_beats_and_counts_strips_without_beats(tmp_path):
    dm = FoldDataModule(SyntheticSource(n_records=120), BEAT, fold=1, batch_size=16, cache_dir=tmp_path)
    x, y, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 12, dm.input_length) == (16, 12, 80) and torch.isfinite(x).all()
    assert dm.quality()["n_records_without_beats"] == 0
    rows = dm.store.rows(dm.split.train["record_id"].tolist())  # standardised on the training part's beats
    np.testing.assert_allclose(dm.fitted.lead_mean, dm.signal_inputs[rows].mean(axis=(0, 2)), atol=1e-6)


def test_clinical_features_reach_every_batch_scaled_on_the_training_part(tmp_path):
    dm = FoldDataModule(SyntheticSource(n_records=120), HYBRID, fold=1, batch_size=16, cache_dir=tmp_path)
    (beats, features), _, rows = next(iter(dm.train_dataloader()))
    assert beats.shape == (16, 12, 80) and features.shape == (16, 408) and features.dtype == torch.float32
    center, _ = fit_scaling(dm.feature_matrix(dm.split.train))
    np.testing.assert_array_equal(dm.fitted.feature_center, center)  # fitted on the training part only
    expected = dm.fitted.scale_features(dm.feature_matrix(dm.split.train))[rows.numpy()]
    np.testing.assert_array_equal(features.numpy(), expected)
    (_, test_features), _, _ = next(iter(dm.test_dataloader()))
    np.testing.assert_array_equal(test_features.numpy(), dm.model_inputs("test")[1][:16])


def test_without_clinical_features_batches_carry_the_signal_alone(synthetic_dm):
    x, _, _ = next(iter(synthetic_dm.train_dataloader()))
    assert isinstance(x, torch.Tensor) and len(synthetic_dm.model_inputs("train")) == 1


@pytest.mark.parametrize("representation", [Representation("window"), BEAT, HYBRID], ids=lambda r: r.name)
def test_model_inputs_are_the_batches_inputs(representation, tmp_path):
    """Grad-CAM reads model_inputs(); the network trained and was scored on the batches."""
    dm = FoldDataModule(SyntheticSource(n_records=120), representation, fold=1, batch_size=16, cache_dir=tmp_path)
    batches = [x if isinstance(x, list) else [x] for x, _, _ in dm.test_dataloader()]
    for k, inputs in enumerate(dm.model_inputs("test")):
        np.testing.assert_array_equal(torch.cat([b[k] for b in batches]).numpy(), inputs)


def test_median_beats_are_computed_once_per_record_set(tmp_path):
    first = FoldDataModule(SyntheticSource(n_records=120), BEAT, fold=1, cache_dir=tmp_path)
    first.setup()
    [cached] = (tmp_path / "beats").glob("*.npy")
    second = FoldDataModule(SyntheticSource(n_records=120), BEAT, fold=2, cache_dir=tmp_path)
    second.setup()
    np.testing.assert_array_equal(second.signal_inputs, first.signal_inputs)
    assert second.n_without_beats == first.n_without_beats and list((tmp_path / "beats").glob("*.npy")) == [cached]
