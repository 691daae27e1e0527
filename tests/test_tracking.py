"""What ecg_mi.tracking logs for the MLflow UI: each setting once as a param, passwords masked,
experiments in the model-training view, a run's logged model found whatever its name."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import compose_config
from ecg_mi.learners import learner_for
from ecg_mi.tracking import (
    EXPERIMENT_KIND,
    config_params,
    ensure_experiment,
    logged_model_uri,
    redact,
)


def test_config_params_drop_references_class_paths_and_left_out_keys():
    cfg = OmegaConf.create({"seed": 1, "augment": {"crop": 0.1}, "model": {"_target_": "x.Y", "augment": "${augment}",
                            "seed": "${seed}", "lr": 0.1}, "name": "run-${seed}", "trainer": {"max_epochs": 2}})  # fmt: skip
    assert config_params(cfg, leave_out=("trainer",)) == {"seed": "1", "augment.crop": "0.1", "model.lr": "0.1",
                                                          "name": "run-1"}  # fmt: skip


@pytest.mark.parametrize("model", ["resnet", "logistic_regression"])
def test_every_param_of_a_run_is_logged_once_with_the_value_used(model):
    cfg = compose_config("train", f"model={model}", "trainer.max_epochs=3")
    params = learner_for(model).params(cfg)
    assert not [k for k in params if k.endswith("_target_") or k.startswith("model.augment")]
    assert "model.name" not in params and "model.representation" not in params
    if model == "resnet":
        assert params["trainer.max_epochs"] == "3" and "model.max_epochs" not in params
        assert "explain.permutation_repeats" not in params
    else:  # nothing of the network trainer reaches a feature model
        assert not [k for k in params if k.startswith(("trainer.", "callbacks.", "augment.", "data.batch_size"))]


def test_a_networks_own_epoch_budget_is_logged_as_the_trainers():
    cfg = compose_config("train", "model=resnet", "model.max_epochs=2", "trainer.max_epochs=5")
    assert learner_for("resnet").params(cfg)["trainer.max_epochs"] == "2"


@pytest.mark.parametrize(("uri", "shown"), [
    ("postgresql://mlflow:s3cret@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"), ("http://127.0.0.1:5001", "http://127.0.0.1:5001"),
])  # fmt: skip
def test_redact_masks_only_a_password(uri, shown):
    assert redact(uri) == shown


def test_experiments_open_in_the_model_training_view():
    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(uri)
    made = client.create_experiment("older")  # as ecg-mi made them before the tag
    assert ensure_experiment("older", uri) == made
    for name in ("older", "new"):
        tags = client.get_experiment(ensure_experiment(name, uri)).tags
        assert EXPERIMENT_KIND.items() <= tags.items()


def test_logged_model_uri_finds_a_runs_model_whatever_its_name():
    uri = os.environ["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=ensure_experiment("named", uri))
    with mlflow.start_run() as active:
        info = mlflow.pyfunc.log_model(name="resnet-fold3", python_model=_Echo(), pip_requirements=["numpy"])
    assert logged_model_uri(active.info.run_id, uri) == f"runs:/{active.info.run_id}/resnet-fold3"
    assert mlflow.models.get_model_info(logged_model_uri(active.info.run_id, uri)).model_id == info.model_id
    with mlflow.start_run() as bare:  # a run of an MLflow 2 store kept its model as the artifact "model"
        pass
    assert logged_model_uri(bare.info.run_id, uri) == f"runs:/{bare.info.run_id}/model"


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        return model_input
