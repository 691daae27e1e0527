"""External validation (evaluate.py external=true): a packaged model scored on a labelled data
set it never saw — AUC [patient-bootstrap CI], F1 at the packaged threshold, calibration,
subgroups. Stand-in models (conftest.standin_model) stand for packaged ones until
``ecg_mi.packaging`` lands; the PTB-XL train/validate split needs it and the shared data."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY_TRAINING, compose_config
from ecg_mi.errors import ConfigError
from ecg_mi.evaluate.external import (
    brier_score,
    expected_calibration_error,
    reliability_table,
    threshold_metrics,
)
from ecg_mi.evaluate.main import run as evaluate

REPORT_FILES = {"metrics.csv", "predictions.csv", "reliability.csv", "subgroups.csv", "skipped.csv",
                "reliability.png", "subgroups.png", "README.md"}  # fmt: skip


def external(model: str, out: Path, *overrides: str) -> dict[str, Path]:
    """The external route in-process, with a small bootstrap and no MLflow run."""
    cfg = compose_config("evaluate", "external=true", f"model_uri={model}", f"external_dir={out}",
                         "n_bootstrap=200", "external_experiment=null", *overrides)  # fmt: skip
    return evaluate(cfg)


def test_calibration_figures_match_their_definitions():
    labels = np.array([0, 0, 1, 1, 1, 0])
    probs = np.array([0.05, 0.15, 0.12, 0.95, 0.85, 0.9])
    curve = reliability_table(labels, probs, n_bins=2)
    assert curve["n"].tolist() == [3, 3]
    assert curve["mean_prob"].tolist() == pytest.approx([0.32 / 3, 2.7 / 3])
    assert curve["frac_mi"].tolist() == pytest.approx([1 / 3, 2 / 3])
    ece = 0.5 * abs(0.32 / 3 - 1 / 3) + 0.5 * abs(2.7 / 3 - 2 / 3)
    assert expected_calibration_error(curve) == pytest.approx(ece)
    assert brier_score(labels, probs) == pytest.approx(np.mean((probs - labels) ** 2))


def test_threshold_metrics_count_at_or_above_the_threshold():
    m = threshold_metrics(np.array([1, 1, 0, 0]), np.array([0.5, 0.2, 0.5, 0.1]), threshold=0.5)
    assert (m["sensitivity"], m["specificity"], m["ppv"], m["f1"]) == pytest.approx((0.5, 0.5, 0.5, 0.5))


def test_external_report_on_unseen_synthetic_data(tmp_path, standin_model):
    out = tmp_path / "external"
    files = external(standin_model(threshold=0.5), out, "data=synthetic",
                     "data.source.n_records=120", "data.source.seed=7")  # fmt: skip
    assert set(files) == REPORT_FILES and all(p.is_file() for p in files.values())
    m = pd.read_csv(out / "metrics.csv").iloc[0]
    assert m["auc_low"] <= m["auc"] <= m["auc_high"]
    assert 0 <= m["brier"] <= 1 and 0 <= m["ece"] <= 1 and m["threshold"] == 0.5
    predictions = pd.read_csv(out / "predictions.csv")
    assert m["n_records"] == len(predictions) and set(predictions["label"]) == {0, 1}
    assert (predictions["pred"] == (predictions["prob"] >= 0.5)).all()
    assert set(pd.read_csv(out / "subgroups.csv")["variable"]) == {"sex", "age"}


@pytest.mark.slow
def test_cli_logs_an_external_run_and_prints_the_table(run_cli, tmp_path, standin_model):
    done = run_cli("evaluate.py", "external=true", f"model_uri={standin_model()}", "data=synthetic",
                   "data.source.n_records=60", "n_bootstrap=20", f"external_dir={tmp_path / 'ext'}",
                   f"hydra.run.dir={tmp_path}/hydra")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "External validation:" in done.stdout and "| sex: female |" in done.stdout
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("ecg-mi-external")
    [logged] = client.search_runs([experiment.experiment_id], "tags.kind = 'external'")
    assert logged.info.status == "FINISHED" and "auc" in logged.data.metrics


def test_external_without_a_model_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model_uri: missing; pass model_uri=<MLflow model URI>"):
        evaluate(compose_config("evaluate", "external=true", "data=synthetic"))


def test_cli_unloadable_model_is_one_line_exit_2(run_cli, tmp_path):
    """``model_uri=`` reaches the external route and fails in one line."""
    done = run_cli("evaluate.py", "external=true", f"model_uri={tmp_path / 'none'}", "data=synthetic",
                   f"hydra.run.dir={tmp_path}/hydra")  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'none'}: cannot load the MLflow model")


def ptbxl_patient_split(shared: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two PTB-XL-layout roots holding disjoint halves of the shared patients; both link the
    shared ``records100`` (nothing is written into the shared folder)."""
    table = pd.read_csv(shared / "ptbxl_database.csv")
    patients = np.sort(table["patient_id"].unique())
    held_out = set(np.random.default_rng(0).permutation(patients)[: len(patients) // 2])
    roots = []
    for name, keep in (("train", ~table["patient_id"].isin(held_out)), ("external", table["patient_id"].isin(held_out))):
        root = tmp_path / name
        root.mkdir()
        table[keep].to_csv(root / "ptbxl_database.csv", index=False)
        shutil.copy(shared / "scp_statements.csv", root / "scp_statements.csv")
        (root / "records100").symlink_to(shared / "records100", target_is_directory=True)
        roots.append(root)
    return roots[0], roots[1]


def test_external_scores_held_out_ptbxl_patients(tmp_path, standin_model, shared_ptbxl):
    """The stand-in on real records of patients held out by the split (cohort subsampled)."""
    train_root, external_root = ptbxl_patient_split(shared_ptbxl, tmp_path)
    out = tmp_path / "report"
    external(standin_model(), out, "data=ptbxl", f"data.root={external_root}", "data.cohort.max_cases=30")
    scored = pd.read_csv(out / "predictions.csv", dtype={"record_id": str})
    trained_on = set(pd.read_csv(train_root / "ptbxl_database.csv")["patient_id"].astype(int))
    assert len(scored) == 90 and not set(scored["patient_id"].astype(int)) & trained_on
    m = pd.read_csv(out / "metrics.csv").iloc[0]
    assert m["auc_low"] <= m["auc"] <= m["auc_high"] and m["n_skipped"] == 0


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ecg_mi.packaging") is None,
                    reason="ecg_mi.packaging (the packaged pyfunc model) is not in this tree yet")  # fmt: skip
def test_train_on_some_ptbxl_patients_validate_on_the_others(tmp_path, shared_ptbxl):
    """End to end: a tiny CNN trained on half the shared patients, externally validated on
    the other half through its run's packaged model (runs:/<id>)."""
    from test_predict import trained_model_uri

    train_root, external_root = ptbxl_patient_split(shared_ptbxl, tmp_path)
    uri = trained_model_uri(compose_config("train", *TINY_TRAINING, "model=cnn", "data=ptbxl", f"data.root={train_root}",
                                           "explain.enabled=false", "trainer.max_epochs=3"))  # fmt: skip
    out = tmp_path / "report"
    external(uri, out, "data=ptbxl", f"data.root={external_root}")
    m = pd.read_csv(out / "metrics.csv").iloc[0]
    print(m.to_string())  # the figures, for the record (-s)
    assert m["auc_low"] <= m["auc"] <= m["auc_high"] and m["n_records"] > 300
    assert 0 <= m["f1"] <= 1 and 0 <= m["brier"] <= 1 and 0 <= m["ece"] <= 1


@pytest.mark.slow  # trains a model, scores 120 records, logs and registers a version (~1 min)
def test_recalibration_registers_a_new_version_that_applies_it(tmp_path, compose_train):
    import mlflow

    from ecg_mi.calibration import apply_calibration
    from ecg_mi.packaging import input_example
    from ecg_mi.tracking import logged_model_uri
    from ecg_mi.train import run as train

    train(compose_train("model=logistic_regression"))
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    [trained] = client.search_runs([client.get_experiment_by_name("ecg-mi-synthetic").experiment_id])
    uri = f"runs:/{trained.info.run_id}"  # the model that run logged
    out = tmp_path / "site"
    external(uri, out, "data=synthetic", "data.source.n_records=120", "data.source.seed=7", "recalibrate=true",
             "register=site", "external_experiment=site-check")  # fmt: skip
    info = mlflow.models.get_model_info("models:/site/1").metadata["ecg_mi"]
    assert info["site_calibration"]["method"] in ("platt", "isotonic", "none") and 0 < info["prevalence"] < 1
    x = np.concatenate([input_example(100), input_example(100) * 1.5])
    logged = logged_model_uri(trained.info.run_id, os.environ["MLFLOW_TRACKING_URI"])
    before, after = (mlflow.pyfunc.load_model(u).predict(x) for u in (logged, "models:/site/1"))
    np.testing.assert_allclose(after, apply_calibration(info["site_calibration"], before))
    metrics = pd.read_csv(out / "metrics.csv").iloc[0]
    assert 0 <= metrics["ece_recalibrated"] <= 1 and "prob_recalibrated" in pd.read_csv(out / "predictions.csv")


def test_recalibration_needs_a_registered_name(tmp_path, standin_model):
    with pytest.raises(ConfigError, match="register=<name>"):
        external(standin_model(), tmp_path / "x", "data=synthetic", "recalibrate=true", "external_experiment=e")


def test_a_record_the_gate_refuses_is_left_out_with_its_reason(standin_model):
    import dataclasses

    from ecg_mi.data.sources import SyntheticSource
    from ecg_mi.evaluate.external import score_source
    from ecg_mi.predict import load_for_scoring

    class OneInMicrovolts(SyntheticSource):
        """Synthetic records, the first one's samples in µV though read as mV."""

        def read(self, row, native_rate):
            record = super().read(row, native_rate)
            first = row["record_id"] == self.index()["record_id"].iloc[0]
            return dataclasses.replace(record, signal=record.signal * 1000) if first else record

    source = OneInMicrovolts(n_records=12)
    table, skipped = score_source(source, source.index(), load_for_scoring(standin_model(sample_rate=500)), 500)
    assert len(table) == 11 and skipped["status"].tolist() == ["refused"]
    assert skipped["error"].iloc[0].startswith("amplitude: lead ")
