"""End to end: train.py → Lightning → MLflow, determinism, multirun and CLI errors."""

import json
import os
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from conftest import TINY_RUN, TINY_TRAINING, compose_config, load_script
from ecg_mi.errors import ConfigError
from ecg_mi.models import list_models
from ecg_mi.train import REQUIRED_METRICS, run


def _logged_predictions(run_id: str) -> pd.DataFrame:
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="predictions.csv",
                                                tracking_uri=os.environ["MLFLOW_TRACKING_URI"])  # fmt: skip
    return pd.read_csv(local, float_precision="round_trip")


def _runs(experiment: str) -> list:
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_run_logs_metrics_params_and_predictions(compose_train):
    results = run(compose_train("fold=2"))
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.info.status == "FINISHED" and logged.info.run_name == "resnet-fold2"
    for key in REQUIRED_METRICS:
        assert logged.data.metrics[key] == pytest.approx(results[key])
    assert 0.0 <= results["test_auc"] <= 1.0
    params = logged.data.params
    assert params["model"] == "resnet" and params["fold"] == "2" and len(params["data.fold_hash"]) == 64
    assert params["data.sample_rate"] == "100" and int(params["n_params"]) > 0
    local = mlflow.artifacts.download_artifacts(run_id=logged.info.run_id, artifact_path="predictions.csv",
                                                tracking_uri=os.environ["MLFLOW_TRACKING_URI"])  # fmt: skip
    predictions = pd.read_csv(local)
    assert list(predictions.columns) == [
        "record_id",
        "patient_id",
        "age",
        "sex",
        "label",
        "prob",
        "fold",
        "prob_calibrated",
    ]
    assert (predictions["fold"] == 2).all() and predictions["prob"].between(0, 1).all()
    assert predictions["prob_calibrated"].between(0, 1).all()
    assert params["calibration"] == "auto" and logged.data.tags["calibration_method"] in {"none", "platt", "isotonic"}
    for key in ("val_brier", "test_brier", "test_ece", "test_brier_calibrated", "test_ece_calibrated"):
        assert 0 <= logged.data.metrics[key] <= 1
    curve = MlflowClient().get_metric_history(logged.info.run_id, "val_auc_epoch")
    assert [m.step for m in curve] == [0, 1]  # one point per epoch
    [selected] = MlflowClient().get_metric_history(logged.info.run_id, "val_auc")  # the selected checkpoint's alone
    assert selected.step == logged.data.metrics["best_epoch"] and selected.value == pytest.approx(results["val_auc"])


def test_run_logs_the_validation_parts_predictions(compose_train):
    from ecg_mi.learners import learner_for

    cfg = compose_train("fold=1")
    results = run(cfg)
    [logged] = _runs("ecg-mi-synthetic")
    local = mlflow.artifacts.download_artifacts(run_id=logged.info.run_id, artifact_path="val_predictions.csv",
                                                tracking_uri=os.environ["MLFLOW_TRACKING_URI"])  # fmt: skip
    val = pd.read_csv(local, dtype={"record_id": str})
    expected = learner_for(cfg.model.name).datamodule(cfg).metadata("val")
    assert list(val["record_id"]) == list(expected["record_id"])
    assert (val["fold"] != 1).all()  # carved from the training folds: the records' own folds
    assert roc_auc_score(val["label"], val["prob"]) == pytest.approx(results["val_auc"], abs=1e-4)


def test_a_run_outside_hydra_removes_its_temporary_folder(compose_train):
    run(compose_train())
    assert not list(Path(tempfile.gettempdir()).glob("ecg_mi_run_*"))  # its files are in MLflow
    [logged] = _runs("ecg-mi-synthetic")
    assert {a.path for a in MlflowClient().list_artifacts(logged.info.run_id)} >= {"predictions.csv"}


# The ResNet in the default suite, every other network in the slow one (≈ 5 s each).
@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n == "resnet" else pytest.mark.slow)
                                  for n in list_models("network")])  # fmt: skip
def test_every_network_trains_end_to_end(compose_train, name):
    from test_models import SMALL

    small = [f"model.{k}={v}".replace(" ", "") for k, v in SMALL[name].items()]
    results = run(compose_train(f"model={name}", *small))
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.info.run_name == f"{name}-fold0" and logged.info.status == "FINISHED"
    assert logged.data.metrics["test_auc"] == pytest.approx(results["test_auc"])
    assert int(logged.data.params["n_params"]) > 0


def test_callbacks_last_keeps_the_final_epoch(compose_train):
    run(compose_train("callbacks=last", "trainer.max_epochs=3"))
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.data.metrics["best_epoch"] == 2 and logged.data.metrics["epochs_trained"] == 3


def test_callbacks_swa_trains_and_keeps_the_final_epochs_average(compose_train):
    results = run(compose_train("callbacks=swa", "trainer.max_epochs=2"))
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.info.status == "FINISHED" and logged.data.metrics["best_epoch"] == 1
    assert logged.data.metrics["test_auc"] == pytest.approx(results["test_auc"])


def test_a_networks_own_epoch_budget_overrides_the_trainers(compose_train):
    run(compose_train("model.max_epochs=1", "trainer.max_epochs=3"))
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.data.metrics["epochs_trained"] == 1


def test_the_trainers_epoch_limit_caps_a_networks_own_budget(compose_train):
    run(compose_train("model.max_epochs=3", "trainer.max_epochs=1"))
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.data.metrics["epochs_trained"] == 1


def test_train_pool_all_is_logged_with_its_extra_records(compose_train):
    run(compose_train("data.train_pool=all"))
    [logged] = _runs("ecg-mi-synthetic")
    assert int(logged.data.params["data.n_train_outside_cohort"]) > 0


@pytest.mark.slow
def test_network_trains_with_a_teacher_logged_with_its_run(compose_train):
    results = run(compose_train("teacher=random_forest"))
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.info.status == "FINISHED" and 0.0 <= results["test_auc"] <= 1.0
    assert logged.data.params["data.teacher.estimator.name"] == "random_forest"


def _fitted_sizes(monkeypatch) -> list[int]:
    """The number of records of every ClassicalModel.fit call from now on."""
    from ecg_mi.models.tabular import ClassicalModel

    sizes, fit = [], ClassicalModel.fit
    monkeypatch.setattr(ClassicalModel, "fit", lambda self, X, y, groups=None: sizes.append(len(y)) or fit(self, X, y, groups))
    return sizes


def test_refit_on_val_fits_again_on_the_training_and_validation_parts(compose_train, monkeypatch):
    from ecg_mi.learners import learner_for

    sizes = _fitted_sizes(monkeypatch)
    cfg = compose_train("model=logistic_regression", "+model.refit_on_val=true", "explain.enabled=false")
    run(cfg)
    split = learner_for(cfg.model.name).datamodule(cfg).split
    assert sizes == [len(split.train), len(split.train) + len(split.val)]
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.data.metrics["n_refit"] == len(split.train) + len(split.val)


def test_refit_on_val_keeps_the_first_fits_validation_predictions(compose_train):
    plain = run(compose_train("model=logistic_regression", "explain.enabled=false"))
    refitted = run(compose_train("model=logistic_regression", "+model.refit_on_val=true", "explain.enabled=false"))
    # Threshold and val_auc come from the model that never saw the validation part; the test
    # part is scored by the refitted one.
    assert refitted["val_auc"] == plain["val_auc"] and refitted["test_threshold"] == plain["test_threshold"]
    tests = [_logged_predictions(r.info.run_id)["prob"] for r in _runs("ecg-mi-synthetic")]
    assert not np.allclose(*tests)


def test_refit_on_val_is_refused_for_a_network_before_any_run(compose_train):
    with pytest.raises(ConfigError, match="model.refit_on_val=true: the network models do not support it"):
        run(compose_train("+model.refit_on_val=true"))
    assert _runs("ecg-mi-synthetic") == []


def test_refit_on_val_must_be_a_boolean(compose_train):
    with pytest.raises(ConfigError, match="model.refit_on_val='yes': must be true or false"):
        run(compose_train("model=logistic_regression", "+model.refit_on_val=yes"))


def test_config_hash_follows_refit_on_val():
    assert _hash("classical", "+model.refit_on_val=true") != _hash("classical")


@pytest.mark.parametrize("model", ["resnet", "random_forest"])  # one per family: seeded torch, a seeded forest
def test_same_config_twice_gives_the_same_test_auc(compose_train, model):
    first = run(compose_train("fold=0", f"model={model}"))
    second = run(compose_train("fold=0", f"model={model}"))
    assert first["test_auc"] == second["test_auc"] and first["test_f1"] == second["test_f1"]


def test_a_failing_run_is_marked_failed(compose_train, monkeypatch):
    from ecg_mi.learners.network import NetworkLearner

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(NetworkLearner, "predict", explode)
    with pytest.raises(RuntimeError, match="boom"):
        run(compose_train("fold=1"))
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.info.status == "FAILED" and "test_auc" not in logged.data.metrics


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_is_fitted_on_the_validation_predictions_only(compose_train, monkeypatch, method):
    import ecg_mi.train as route
    from ecg_mi.learners.network import NetworkLearner

    predicted, fitted = {}, []
    original_predict, original_fit = NetworkLearner.predict, route.fit_calibration

    def predict(self, data, part):
        predicted[part] = original_predict(self, data, part)
        return predicted[part]

    def fit(probs, labels, groups, *args):
        fitted.append((np.array(probs), np.array(labels)))
        return original_fit(probs, labels, groups, *args)

    monkeypatch.setattr(NetworkLearner, "predict", predict)
    monkeypatch.setattr(route, "fit_calibration", fit)
    results = run(compose_train(f"calibration={method}", "explain.enabled=false"))
    [(probs, labels)] = fitted
    np.testing.assert_array_equal(probs, predicted["val"])
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.data.tags["calibration_method"] in {method, "none"}  # none: Platt slope <= 0
    # A strictly increasing map with the mapped threshold takes the same decisions.
    assert logged.data.metrics["test_f1_calibrated"] == pytest.approx(results["test_f1"], abs=0)


def test_logged_calibrated_probabilities_keep_the_raw_ranking(compose_train):
    from scipy.stats import rankdata

    run(compose_train("calibration=isotonic", "explain.enabled=false"))
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.data.tags["calibration_method"] == "isotonic"
    local = mlflow.artifacts.download_artifacts(run_id=logged.info.run_id, artifact_path="predictions.csv",
                                                tracking_uri=os.environ["MLFLOW_TRACKING_URI"])  # fmt: skip
    test = pd.read_csv(local, float_precision="round_trip")
    # The map is strictly increasing: read back, the calibrated column orders records as the raw
    # one — though on an isotonic plateau only its last digits tell them apart (six would not).
    assert (rankdata(test["prob_calibrated"]) == rankdata(test["prob"])).all()
    assert (rankdata(test["prob_calibrated"].round(6)) != rankdata(test["prob"])).any()


def test_config_hash_follows_the_calibration_setting():
    assert _hash("network", "calibration=platt") != _hash("network", "calibration=none")


def test_skip_finished_reuses_a_finished_run_with_the_same_config(compose_train):
    first = run(compose_train("model=logistic_regression", "skip_finished=true"))
    again = run(compose_train("model=logistic_regression", "skip_finished=true"))
    [logged] = _runs("ecg-mi-synthetic")
    assert logged.info.status == "FINISHED" and again == {k: first[k] for k in REQUIRED_METRICS}


def test_skip_finished_reruns_a_changed_config(compose_train):
    run(compose_train("model=logistic_regression", "skip_finished=true"))
    run(compose_train("model=logistic_regression", "skip_finished=true", "model.params.C=0.5"))
    assert len(_runs("ecg-mi-synthetic")) == 2


def test_skip_finished_reruns_a_failed_run(compose_train, monkeypatch):
    from ecg_mi.learners.classical import ClassicalLearner

    with monkeypatch.context() as patched:
        patched.setattr(ClassicalLearner, "predict", lambda *a, **k: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            run(compose_train("model=logistic_regression", "skip_finished=true"))
    run(compose_train("model=logistic_regression", "skip_finished=true"))
    assert sorted(r.info.status for r in _runs("ecg-mi-synthetic")) == ["FAILED", "FINISHED"]


def _hash(family: str, *overrides: str) -> str:
    from ecg_mi.learners import learner_for
    from ecg_mi.tracking import config_hash

    model = {"network": "resnet", "classical": "random_forest"}[family]
    cfg = compose_config("train", f"model={model}", *overrides)
    return config_hash(learner_for(model).hashed_config(cfg))


@pytest.mark.parametrize("family", ["network", "classical"])
def test_config_hash_ignores_where_it_is_logged_but_not_what_is_computed(family):
    base = _hash(family)
    assert base == _hash(family, "tracking.uri=sqlite:///other.db", "skip_finished=true",
                         "explain.enabled=false", "data.num_workers=2")  # fmt: skip
    assert base != _hash(family, "seed=7") and base != _hash(family, "fold=1")


def test_classical_config_hash_ignores_the_network_training_settings():
    assert _hash("classical") == _hash("classical", "trainer=gpu", "trainer.max_epochs=3",
                                       "augment.noise=0.1", "data.batch_size=8", "callbacks=checkpoint_only",
                                       "teacher=random_forest")  # fmt: skip


@pytest.mark.parametrize("family", ["network", "classical"])
def test_config_hash_stays_when_an_option_is_added(family):
    """The hash is an allow-list: a key nobody listed (a new option) changes no existing hash."""
    assert _hash(family) == _hash(family, "+new_option=1", "+data.new_setting=x", "+trainer.new_flag=true")


def test_config_hash_follows_the_representation():
    assert _hash("network") != _hash("network", "representation=median_beat")


LEGACY = json.loads((Path(__file__).parent / "data" / "legacy_config_hashes.json").read_text())


@pytest.mark.parametrize("overrides", sorted(LEGACY))
def test_the_config_hash_of_the_release_before_is_reproduced_for_its_runs(overrides):
    """tests/data/legacy_config_hashes.json: the hashes ecg-mi computed at commit f0e5100 (the
    deny-list), for these overrides; runs tagged with them are found by skip_finished."""
    from ecg_mi.learners import architecture, learner_for
    from ecg_mi.tracking import config_hash

    cfg = compose_config("train", *overrides.split())
    assert config_hash(learner_for(architecture(cfg.model)).legacy_hashed_config(cfg)) == LEGACY[overrides]


def test_skip_finished_finds_a_run_logged_with_the_older_hash(compose_train):
    from ecg_mi.learners import learner_for
    from ecg_mi.tracking import config_hash

    first = run(compose_train("model=logistic_regression", "skip_finished=true"))
    [logged] = _runs("ecg-mi-synthetic")
    cfg = compose_train("model=logistic_regression", "skip_finished=true")
    older = config_hash(learner_for("logistic_regression").legacy_hashed_config(cfg))
    MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).set_tag(logged.info.run_id, "config_hash", older)
    assert run(cfg) == first and len(_runs("ecg-mi-synthetic")) == 1


def test_network_config_hash_follows_the_training_settings():
    assert _hash("network") != _hash("network", "trainer.max_epochs=3")
    assert _hash("network") != _hash("network", "augment.noise=0.1")
    assert _hash("network") != _hash("network", "teacher=random_forest")


def test_train_py_returns_the_validation_metric_not_the_test_one(compose_train):
    returned = load_script("train.py").main.__wrapped__(compose_train("model=logistic_regression"))
    [logged] = _runs("ecg-mi-synthetic")
    assert returned == pytest.approx(logged.data.metrics["val_auc"])
    assert returned != logged.data.metrics["test_auc"]


def test_optimized_metric_must_be_a_reported_metric(compose_train):
    with pytest.raises(ConfigError, match="optimized_metric='loss'"):
        run(compose_train("optimized_metric=loss"))


@pytest.mark.slow
def test_cli_multirun_gives_one_run_per_fold_in_one_experiment(run_cli, tmp_path):
    done = run_cli("train.py", "-m", "fold=0,1", *TINY_RUN, f"hydra.sweep.dir={tmp_path}/sweep")
    assert done.returncode == 0, done.stderr[-2000:]
    runs = [r for r in _runs("ecg-mi-synthetic") if r.data.tags["kind"] == "fold"]  # not the sweep's parent
    assert sorted(r.info.run_name for r in runs) == ["resnet-fold0", "resnet-fold1"]
    assert all(r.info.status == "FINISHED" and "test_auc" in r.data.metrics for r in runs)
    assert len({r.data.params["data.fold_hash"] for r in runs}) == 1
    assert len(list((tmp_path / "sweep").iterdir())) >= 2  # one output dir per job


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data.source.n_records=120", "fold=9"], "error: fold=9 is outside 0..4"),
        (["model.name=resnot"], "error: unknown model 'resnot'; known models: "),
        (
            ["data=ptbxl", "data.root=/nonexistent/ptbxl"],
            "error: PTB-XL root /nonexistent/ptbxl does not exist",
        ),
        (
            ["data.source.n_records=120", "data.sample_rate=360"],
            "error: data.sample_rate=360 is not supported",
        ),
        (
            ["data.source.n_records=120", "data.cohort.controls=norm"],
            "error: data.cohort.controls=norm needs a data set with a NORM flag",
        ),
    ],
)
def test_cli_bad_input_prints_one_error_line_and_exits_2(run_cli, tmp_path, args, message):
    done = run_cli("train.py", *TINY_TRAINING, *args, f"hydra.run.dir={tmp_path}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_unknown_config_group_option_lists_choices(run_cli, tmp_path):
    done = run_cli("train.py", "data=ptbxxl", f"hydra.run.dir={tmp_path}")
    assert done.returncode != 0
    assert "Could not find 'data/ptbxxl'" in done.stderr and "ptbxl" in done.stderr


@pytest.mark.slow
def test_cli_empty_cohort_is_reported(run_cli, tiny_ptbxl, tmp_path):
    root = tiny_ptbxl(n_records=20, n_mi=0)
    done = run_cli(
        "train.py", *TINY_TRAINING, "data=ptbxl", f"data.root={root}", f"hydra.run.dir={tmp_path}"
    )
    assert done.returncode == 2 and "error: empty cohort: 0 MI records" in done.stderr


def test_callbacks_swa_averages_the_weights_of_the_late_steps(tmp_path):
    """The checkpoint holds the mean of the weights after each of the last half of the steps;
    validation before the first averaged step sees the network itself, not its initial copy."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import Callback, ModelCheckpoint
    from test_models import SMALL
    from torch.utils.data import DataLoader, TensorDataset

    from ecg_mi.learners.network import LateWeightAveraging
    from ecg_mi.models import create_model

    class Snapshots(Callback):  # the weights after every step, and what each validation saw
        def __init__(self):
            self.steps, self.validated = [], []

        def on_train_batch_end(self, trainer, module, *args):
            self.steps.append({k: v.detach().clone() for k, v in module.state_dict().items()})

        def on_validation_epoch_start(self, trainer, module):
            self.validated.append({k: v.detach().clone() for k, v in module.state_dict().items()})

    torch.manual_seed(0)
    x, y = torch.randn(40, 12, 500), torch.tensor([0.0, 1.0] * 20)
    loader = DataLoader(TensorDataset(x, y, torch.arange(40)), batch_size=10)
    model = create_model("resnet", scheduler="none", **SMALL["resnet"])
    record, averaging = Snapshots(), LateWeightAveraging(fraction=0.5)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor=None, save_top_k=1)
    trainer = pl.Trainer(max_epochs=2, callbacks=[record, averaging, checkpoint], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(model, loader, loader)
    assert averaging.first_step == 4 and len(record.steps) == 8
    weight = "features.0.weight"
    saved = torch.load(checkpoint.best_model_path, weights_only=False)["state_dict"]
    late = torch.stack([s[weight] for s in record.steps[4:]]).mean(0)
    assert torch.allclose(saved[weight], late, atol=1e-6)
    assert not torch.allclose(saved[weight], record.steps[-1][weight])
    assert torch.equal(record.validated[0][weight], record.steps[3][weight])  # epoch 0: no step averaged yet


def test_callbacks_swa_refuses_a_fraction_outside_0_to_1():
    from ecg_mi.learners.network import LateWeightAveraging

    with pytest.raises(ConfigError, match="fraction=0"):
        LateWeightAveraging(fraction=0)
