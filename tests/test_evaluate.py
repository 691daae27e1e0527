"""evaluate: bootstrap and DeLong against independent recomputation, run collection checks,
report files, and the train.py → evaluate.py path end to end."""

import os
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from conftest import TINY_RUN
from ecg_mi.errors import ConfigError, DataError, InputError
from ecg_mi.evaluate.report import Settings, age_band, build_report, table2
from ecg_mi.evaluate.runs import collect
from ecg_mi.stats import bootstrap_auc_ci, delong_covariance, delong_test
from ecg_mi.tracking import ensure_experiment


def _scores(n: int = 300, shift: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.33).astype(int)
    a = labels * shift + rng.normal(size=n)
    b = a + rng.normal(scale=1.5, size=n)
    return labels, a, b


def _slow_delong(labels, preds):
    """O(m·n) DeLong from its definition (placement values), for cross-checking."""
    pos, neg = preds[:, labels == 1], preds[:, labels == 0]
    psi = lambda x, y: (x > y) + 0.5 * (x == y)  # noqa: E731
    v10 = np.array(
        [
            [psi(p[i], p_neg).mean() for i in range(pos.shape[1])]
            for p, p_neg in zip(pos, neg, strict=True)
        ]
    )
    v01 = np.array(
        [
            [psi(p_pos, p[j]).mean() for j in range(neg.shape[1])]
            for p, p_pos in zip(neg, pos, strict=True)
        ]
    )
    return v10.mean(axis=1), np.cov(v10) / pos.shape[1] + np.cov(v01) / neg.shape[1]


def test_delong_matches_definition_and_sklearn():
    labels, a, b = _scores(120)
    aucs, cov = delong_covariance(labels, np.vstack([a, b]))
    ref_aucs, ref_cov = _slow_delong(labels, np.vstack([a, b]))
    np.testing.assert_allclose(aucs, [roc_auc_score(labels, a), roc_auc_score(labels, b)])
    np.testing.assert_allclose(aucs, ref_aucs)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10)
    _, _, p = delong_test(labels, a, b)
    z = (aucs[0] - aucs[1]) / np.sqrt(ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1])
    assert p == pytest.approx(2 * norm.sf(abs(z)))


def test_delong_identical_predictions_give_p_one_and_strong_difference_small_p():
    labels, a, _ = _scores(300)
    assert delong_test(labels, a, a)[2] == 1.0
    noise = np.random.default_rng(1).normal(size=len(a))
    assert delong_test(labels, a, noise)[2] < 1e-3


def test_bootstrap_ci_brackets_the_auc_and_is_seeded():
    labels, a, _ = _scores(300)
    patients = np.arange(300) // 2
    auc, low, high = bootstrap_auc_ci(labels, a, patients, 500, seed=3)
    assert auc == pytest.approx(roc_auc_score(labels, a)) and low < auc < high
    assert (auc, low, high) == bootstrap_auc_ci(labels, a, patients, 500, seed=3)


def test_bootstrap_resamples_patients_not_records():
    """Duplicating every record under the same patient must not narrow the CI."""
    labels, a, _ = _scores(150)
    _, low1, high1 = bootstrap_auc_ci(labels, a, np.arange(150), 800, seed=0)
    _, low2, high2 = bootstrap_auc_ci(
        np.r_[labels, labels], np.r_[a, a], np.r_[np.arange(150), np.arange(150)], 800, seed=0
    )
    assert (high2 - low2) == pytest.approx(high1 - low1, rel=0.25)


@pytest.mark.parametrize(
    ("age", "band"), [(40, "40–55"), (54.9, "40–55"), (55, "55–70"), (70, "other"), (30, "other")]
)
def test_age_bands_are_half_open(age, band):
    assert age_band(age, [(40, 55), (55, 70)]) == band


def _fake_sweep(
    uri: str,
    experiment: str,
    models: dict[str, float],
    folds=(0, 1),
    fold_hash="h" * 64,
    *,
    tmp: Path,
    calibrated=(),
    validation=(),
):
    """Log fold runs with known predictions: model → signal strength; models in
    ``calibrated`` also get a ``prob_calibrated`` column (the square root of ``prob``),
    the others are like runs logged before calibration; models in ``validation`` also log
    ``val_predictions.csv`` (the other folds' records, fresh noise) and its ``val_auc``."""
    mlflow.set_tracking_uri(uri)
    exp = mlflow.set_experiment(experiment_id=ensure_experiment(experiment, uri))
    rng = np.random.default_rng(0)
    n = 120
    labels = (np.arange(n) % 3 == 0).astype(int)
    truth = pd.DataFrame({"record_id": [str(i) for i in range(n)], "patient_id": [str(i // 2) for i in range(n)],
                          "age": 40 + np.arange(n) % 40, "sex": np.arange(n) % 2, "label": labels,
                          "fold": np.arange(n) % len(folds)})  # fmt: skip
    for model, strength in models.items():
        probs = 1 / (1 + np.exp(-(strength * labels + rng.normal(size=n))))
        for fold in folds:
            part = truth[truth["fold"] == fold].assign(prob=probs[truth["fold"] == fold])
            if model in calibrated:
                part = part.assign(prob_calibrated=np.sqrt(part["prob"]))
            with mlflow.start_run(
                experiment_id=exp.experiment_id,
                run_name=f"{model}-fold{fold}",
                tags={"kind": "fold"},
            ):
                mlflow.log_params({"model": model, "fold": fold, "data.fold_hash": fold_hash, "data.n_folds": len(folds),
                                   "data.name": "fake", "data.sample_rate": 100})  # fmt: skip
                mlflow.log_metrics(
                    {
                        "test_auc": roc_auc_score(part["label"], part["prob"]),
                        "test_f1": 0.5 + fold / 10,
                    }
                )
                path = tmp / f"{model}{fold}" / "predictions.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                part.to_csv(path, index=False)
                mlflow.log_artifact(str(path))
                if model in validation:
                    val = truth[truth["fold"] != fold]
                    val = val.assign(prob=1 / (1 + np.exp(-(strength * val["label"] + rng.normal(size=len(val))))))
                    val = val.assign(prob_calibrated=np.sqrt(val["prob"]))
                    val.to_csv(path.with_name("val_predictions.csv"), index=False)
                    mlflow.log_artifact(str(path.with_name("val_predictions.csv")))
                    mlflow.log_metric("val_auc", roc_auc_score(val["label"], val["prob"]))
    return truth


def test_table2_numbers_match_independent_recomputation(tmp_path):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"xgboost": 1.0, "resnet": 2.0}, tmp=tmp_path)
    sweep = collect("fake", uri)
    table = table2(sweep, Settings(n_bootstrap=200)).set_index("model")
    runs = sweep.runs.set_index(["model", "fold"])
    for model in ("xgboost", "resnet"):
        assert table.loc[model, "auc_mean"] == pytest.approx(runs.loc[model, "test_auc"].mean())
        assert table.loc[model, "f1_sd"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
        pooled = sweep.predictions[sweep.predictions["model"] == model]
        assert table.loc[model, "pooled_auc"] == pytest.approx(
            roc_auc_score(pooled["label"], pooled["prob"])
        )
    assert table.loc["resnet", "best"] and table.loc["resnet", "arm"] == "raw ECG"
    assert table.loc["xgboost", "arm"] == "clinical features"


def test_a_hybrid_is_never_the_best_raw_ecg_model(tmp_path):
    from ecg_mi.evaluate.report import comparisons

    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"xgboost": 1.0, "resnet": 1.5, "resnet_hybrid": 3.0}, tmp=tmp_path)
    sweep = collect("fake", uri)
    table = table2(sweep, Settings(n_bootstrap=100))
    assert table.set_index("model").loc["resnet_hybrid", "arm"] == "raw ECG + features"
    rows = comparisons(sweep, table).set_index("comparison")
    assert rows.loc["best raw-ECG model vs XGBoost", "model_a"] == "resnet"  # the better hybrid reads features


def test_missing_fold_is_an_error_unless_allowed(tmp_path):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"cnn": 1.0}, folds=(0, 1), tmp=tmp_path)
    client = mlflow.MlflowClient(uri)
    [dropped] = [
        r
        for r in client.search_runs([client.get_experiment_by_name("fake").experiment_id])
        if r.data.params["fold"] == "1"
    ]
    client.delete_run(dropped.info.run_id)
    with pytest.raises(DataError, match=r"model 'cnn' lacks finished fold run\(s\) \[1\] of 2 in 'fake': train them "
                       r".*python train.py -m model=cnn fold=1 experiment_name=fake .*or pass allow_incomplete=true"):
        collect("fake", uri)
    assert collect("fake", uri, allow_incomplete=True).incomplete == {"cnn"}


def test_different_fold_files_are_never_mixed(tmp_path):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"cnn": 1.0}, tmp=tmp_path)
    _fake_sweep(uri, "fake", {"lstm": 1.0}, fold_hash="x" * 64, tmp=tmp_path)
    with pytest.raises(DataError, match="mixes fold files"):
        collect("fake", uri)


def test_unknown_experiment_is_named():
    with pytest.raises(InputError, match="no MLflow experiment 'nope'"):
        collect("nope", os.environ["MLFLOW_TRACKING_URI"])


def test_report_files_are_written(tmp_path):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"xgboost": 1.0, "resnet": 2.0, "cnn": 1.5}, tmp=tmp_path)
    files = build_report(
        collect("fake", uri), tmp_path / "report", "fake", Settings(n_bootstrap=100, paper=True)
    )
    assert all(p.is_file() and p.stat().st_size > 0 for p in files.values())
    text = files["table2.md"].read_text()
    assert "0.690 ± 0.010" in text  # the paper's XGBoost AUC beside ours
    assert "best raw-ECG model vs XGBoost" in text
    subgroups = pd.read_csv(files["subgroups.csv"])
    assert set(subgroups["group"]) >= {"male", "female", "40–55", "55–70"}
    assert {"calibration.csv", "calibration.png"} <= set(files)
    assert "## Calibration" in files["README.md"].read_text()


@pytest.mark.slow
def test_evaluate_leaves_no_downloaded_artifact_behind(run_cli, tmp_path, monkeypatch):
    _fake_sweep(os.environ["MLFLOW_TRACKING_URI"], "fake", {"xgboost": 1.0, "resnet": 2.0}, tmp=tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # evaluate's temporary files
    done = run_cli("evaluate.py", "experiment_name=fake", "n_bootstrap=50", f"output_dir={tmp_path}/report",
                   f"hydra.run.dir={tmp_path}/eval")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "report" / "table2.csv").is_file() and not list(scratch.iterdir())


def test_runs_without_calibrated_predictions_report_raw_as_calibrated_and_are_flagged(tmp_path):
    from ecg_mi.evaluate.reliability import calibration_table

    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"xgboost": 1.0, "resnet": 2.0}, tmp=tmp_path)  # no prob_calibrated
    table = calibration_table(collect("fake", uri), n_bootstrap=20, seed=0).set_index("model")
    assert not table["calibrated"].any()
    assert (table["brier_calibrated"] == table["brier_raw"]).all()
    assert (table["ece_calibrated"] == table["ece_raw"]).all()


def test_calibration_table_matches_independent_recomputation(tmp_path):
    from ecg_mi.calibration import brier_score, ece
    from ecg_mi.evaluate.reliability import calibration_table

    uri = os.environ["MLFLOW_TRACKING_URI"]
    truth = _fake_sweep(uri, "fake", {"xgboost": 1.0, "resnet": 2.0}, tmp=tmp_path, calibrated=("resnet",))
    sweep = collect("fake", uri)
    table = calibration_table(sweep, n_bootstrap=50, seed=0).set_index("model")
    pooled = sweep.predictions[sweep.predictions["model"] == "resnet"]
    assert len(pooled) == len(truth)
    row = table.loc["resnet"]
    assert bool(row["calibrated"]) and not bool(table.loc["xgboost", "calibrated"])
    assert row["brier_calibrated"] == pytest.approx(brier_score(pooled["label"], np.sqrt(pooled["prob"])))
    assert row["ece_calibrated"] == pytest.approx(ece(pooled["label"], np.sqrt(pooled["prob"])))
    assert row["brier_raw_low"] <= row["brier_raw"] <= row["brier_raw_high"]


@pytest.mark.slow
def test_train_then_evaluate_end_to_end(run_cli, tmp_path):
    sweep = run_cli("train.py", "-m", "model=resnet,logistic_regression", "fold=0,1", "data.n_folds=2",
                    *TINY_RUN, f"hydra.sweep.dir={tmp_path}/sweep")  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    report = run_cli("evaluate.py", "n_bootstrap=200", f"output_dir={tmp_path}/report", "paper=true",
                     f"hydra.run.dir={tmp_path}/eval")  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    table = pd.read_csv(tmp_path / "report" / "table2.csv")
    assert (
        sorted(table["model"]) == ["logistic_regression", "resnet"] and (table["folds"] == 2).all()
    )
    assert {"roc.png", "pr.png", "subgroups.png", "README.md"} <= {
        p.name for p in (tmp_path / "report").iterdir()
    }
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("ecg-mi-synthetic")
    [summary] = client.search_runs([exp.experiment_id], "tags.kind = 'summary'")
    assert any(a.path == "report" for a in client.list_artifacts(summary.info.run_id))
    for model in ("resnet", "logistic_regression"):  # Table 2 as metrics, to compare reports in the UI
        assert summary.data.metrics[f"{model}/pooled_auc"] == pytest.approx(table.set_index("model").pooled_auc[model])
    st = pd.read_csv(tmp_path / "report" / "st_attention.csv")
    assert set(st["model"]) == {"resnet"} and set(st["lead"]) == {"all", "I", "II", "III", "aVR", "aVL", "aVF",
                                                                  "V1", "V2", "V3", "V4", "V5", "V6"}  # fmt: skip
    importance = pd.read_csv(tmp_path / "report" / "permutation_logistic_regression.csv")
    assert len(importance) == 408 and importance["feature"].is_unique
    assert importance["auc_drop_mean_mean"].is_monotonic_decreasing
    assert (tmp_path / "report" / "permutation_logistic_regression.png").is_file()

    [resnet] = client.search_runs(
        [exp.experiment_id], "params.model = 'resnet' and params.fold = '1'"
    )
    explained = run_cli("evaluate.py", "explain=gradcam", f"run_id={resnet.info.run_id}", f"output_dir={tmp_path}/explain",
                        "n_examples=2", f"hydra.run.dir={tmp_path}/eval2")  # fmt: skip
    assert explained.returncode == 0, explained.stderr[-2000:]
    figures = list(
        (tmp_path / "explain" / f"gradcam-{resnet.info.run_id}" / "gradcam").glob("*.png")
    )
    assert len(figures) == 2
    assert (tmp_path / "explain" / f"gradcam-{resnet.info.run_id}" / "st_attention.csv").is_file()
    assert {"gradcam_n_mi", "gradcam_n_non_mi"} <= set(
        client.get_run(resnet.info.run_id).data.metrics
    )  # logged back to the run


@pytest.mark.parametrize(("model", "prefix"), [("resnet", "resnet"), ("resnet+xgboost", "resnet-xgboost"),
                                               ("resnet@median_beat", "resnet-median_beat")])  # fmt: skip
def test_metric_prefix_is_a_valid_mlflow_metric_name(model, prefix):
    from mlflow.utils.validation import _validate_metric_name

    from ecg_mi.evaluate.report import metric_prefix

    assert metric_prefix(model) == prefix
    _validate_metric_name(f"{metric_prefix(model)}/pooled_auc")


def test_gradcam_on_demand_needs_a_run_id(run_cli, tmp_path):
    done = run_cli("evaluate.py", "explain=gradcam", f"hydra.run.dir={tmp_path}")
    assert done.returncode == 2 and "error: explain=gradcam needs run_id=" in done.stderr


def test_ensemble_row_averages_the_members_calibrated_probabilities(tmp_path):
    from ecg_mi.evaluate.ensembles import add_ensembles

    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"xgboost": 1.0, "resnet": 2.0}, tmp=tmp_path, calibrated=("xgboost", "resnet"))
    sweep = add_ensembles(collect("fake", uri), ["resnet+xgboost"])
    table = table2(sweep, Settings(n_bootstrap=100)).set_index("model")
    pooled = {m: sweep.predictions[sweep.predictions["model"] == m].sort_values("record_id") for m in ("resnet", "xgboost")}
    mean = (pooled["resnet"]["prob_calibrated"].to_numpy() + pooled["xgboost"]["prob_calibrated"].to_numpy()) / 2
    expected = roc_auc_score(pooled["resnet"]["label"], mean)
    assert table.loc["resnet+xgboost", "pooled_auc"] == pytest.approx(expected)
    assert table.loc["resnet+xgboost", "arm"] == "ensemble" and table.loc["resnet+xgboost", "folds"] == 2
    assert table.loc["resnet+xgboost", "name"] == "ResNet + XGBoost"
    files = build_report(sweep, tmp_path / "report", "fake", Settings(n_bootstrap=50))
    assert "ResNet + XGBoost" in files["table2.md"].read_text()


def test_ensemble_val_auc_is_the_members_mean_on_each_validation_part(tmp_path):
    from ecg_mi.evaluate.ensembles import add_ensembles

    uri = os.environ["MLFLOW_TRACKING_URI"]
    both = ("xgboost", "resnet")
    _fake_sweep(uri, "fake", {"xgboost": 1.0, "resnet": 2.0}, tmp=tmp_path, calibrated=both, validation=both)
    sweep = add_ensembles(collect("fake", uri), ["resnet+xgboost"])
    runs = sweep.runs.set_index(["model", "fold"])
    for fold in (0, 1):
        val = sweep.val_predictions[sweep.val_predictions["fold"] == fold]
        member = {m: val[val["model"] == m].sort_values("record_id") for m in both}
        assert len(member["resnet"]) == 60 and (member["resnet"]["label"] == 1).any()
        mean = (member["resnet"]["prob_calibrated"].to_numpy() + member["xgboost"]["prob_calibrated"].to_numpy()) / 2
        expected = roc_auc_score(member["resnet"]["label"], mean)
        assert runs.loc[("resnet+xgboost", fold), "val_auc"] == pytest.approx(expected)


def test_ensemble_has_no_val_auc_when_a_member_logged_no_validation_predictions(tmp_path):
    from ecg_mi.evaluate.ensembles import add_ensembles

    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"xgboost": 1.0, "resnet": 2.0}, tmp=tmp_path, calibrated=("xgboost", "resnet"),
                validation=("resnet",))  # fmt: skip
    sweep = add_ensembles(collect("fake", uri), ["resnet+xgboost"])
    assert set(sweep.val_predictions["model"]) == {"resnet"}
    assert sweep.runs.loc[sweep.runs["model"] == "resnet+xgboost", "val_auc"].isna().all()


def test_report_ranks_models_and_ensembles_by_validation_auc(tmp_path):
    from ecg_mi.evaluate.ensembles import add_ensembles

    uri = os.environ["MLFLOW_TRACKING_URI"]
    both = ("xgboost", "resnet")
    _fake_sweep(uri, "fake", {"xgboost": 0.5, "resnet": 3.0}, tmp=tmp_path, calibrated=both, validation=both)
    sweep = add_ensembles(collect("fake", uri), ["resnet+xgboost"])
    files = build_report(sweep, tmp_path / "report", "fake", Settings(n_bootstrap=50))
    validation = pd.read_csv(files["validation.csv"])
    assert list(validation["model"]) == ["resnet", "resnet+xgboost", "xgboost"]  # a weak member drags the mean down
    assert list(validation["chosen"]) == [True, False, False]
    val = sweep.val_predictions[sweep.val_predictions["model"] == "xgboost"]
    expected = np.mean([roc_auc_score(g["label"], g["prob"]) for _, g in val.groupby("fold")])
    assert validation.loc[2, "val_auc_mean"] == pytest.approx(expected)
    section = files["README.md"].read_text().split("## Chosen on validation")[1].split("## ROC")[0]
    assert "| **ResNet** |" in section


def test_a_single_model_is_ranked_by_its_raw_validation_probabilities(tmp_path):
    from ecg_mi.evaluate.validation import validation_aucs

    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"xgboost": 1.0}, tmp=tmp_path, calibrated=("xgboost",), validation=("xgboost",))
    sweep = collect("fake", uri)
    # Cross-fitted, a record's calibrated P(MI) comes from a map fitted on other patients: here
    # one that reverses half of the part, which the packaged model (one map) never does.
    val = sweep.val_predictions
    val["prob_calibrated"] = np.where(val.index % 2 == 0, val["prob"], 1 - val["prob"])
    expected = np.mean([roc_auc_score(g["label"], g["prob"]) for _, g in val.groupby("fold")])
    assert validation_aucs(sweep).loc[0, "val_auc_mean"] == pytest.approx(expected)


def test_chosen_model_is_the_best_on_validation_never_an_incomplete_one(tmp_path):
    from ecg_mi.evaluate.ensembles import add_ensembles
    from ecg_mi.evaluate.validation import chosen_model

    uri = os.environ["MLFLOW_TRACKING_URI"]
    both = ("xgboost", "resnet")
    _fake_sweep(uri, "fake", {"xgboost": 0.5, "resnet": 3.0}, tmp=tmp_path, calibrated=both, validation=both)
    sweep = add_ensembles(collect("fake", uri), ["resnet+xgboost"])
    assert chosen_model(sweep) == "resnet"
    assert chosen_model(replace(sweep, incomplete={"resnet"})) == "resnet+xgboost"


def test_chosen_model_needs_validation_predictions(tmp_path):
    from ecg_mi.evaluate.validation import chosen_model

    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"xgboost": 1.0, "resnet": 2.0}, tmp=tmp_path)
    with pytest.raises(DataError, match=r"no complete model of the sweep logged val_predictions.csv.*\['resnet', 'xgboost'\]"):
        chosen_model(collect("fake", uri))


def test_ensemble_of_a_model_outside_the_sweep_is_a_config_error(tmp_path):
    from ecg_mi.evaluate.ensembles import add_ensembles

    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"xgboost": 1.0, "resnet": 2.0}, tmp=tmp_path)
    with pytest.raises(ConfigError, match=r"\['cnn'\] not among \['resnet', 'xgboost'\]"):
        add_ensembles(collect("fake", uri), ["resnet+cnn"])


def test_aggregate_averages_folds_with_spread():
    import pandas as pd

    from ecg_mi.evaluate.importance import aggregate

    folds = [
        pd.DataFrame({"feature": ["a", "b"], "gain": [1.0, 3.0]}),
        pd.DataFrame({"feature": ["a", "b"], "gain": [3.0, 3.0]}),
    ]
    table = aggregate(folds, "gain")
    assert table["feature"].tolist() == ["b", "a"] and table["gain_mean"].tolist() == [3.0, 2.0]
    assert table.loc[table["feature"] == "a", "gain_sd"].item() == pytest.approx(np.sqrt(2))


def test_roc_figure_gives_every_arm_its_own_line_style():
    from ecg_mi.evaluate.report import ARM_LINESTYLES
    from ecg_mi.learners import ENSEMBLE_ARM, learner_for
    from ecg_mi.learners.base import HYBRID_ARM
    from ecg_mi.models.registry import list_models

    arms = {learner_for(name).arm for name in list_models()} | {ENSEMBLE_ARM, HYBRID_ARM}
    assert arms <= set(ARM_LINESTYLES)
    assert len({repr(style) for style in ARM_LINESTYLES.values()}) == len(ARM_LINESTYLES)


def test_figures_give_each_of_table_2s_rows_its_own_colour():
    from ecg_mi.evaluate.report import model_colours

    assert len(set(model_colours(21))) == 21
