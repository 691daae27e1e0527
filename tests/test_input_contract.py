"""One input contract: for every model × representation in conf/, the packaged model scores the
test fold exactly as the training run did (its ``predictions.csv``), and what it and Grad-CAM feed
the model is what the training batches fed it. The proof that training, scoring and explaining
share one implementation (:mod:`ecg_mi.representation`)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import REPO, TINY_RUN, compose_config
from ecg_mi.datamodule import FoldDataModule
from ecg_mi.errors import ConfigError
from ecg_mi.learners import architecture, build_model, fold_settings, learner_for, representation_of
from ecg_mi.models import get_model_class
from ecg_mi.tracking import logged_model_uri


def _cases() -> list[tuple[str, str]]:
    """(model config, representation) of every pair conf/ offers that the model can read."""
    cases = []
    for model in sorted(p.stem for p in (REPO / "conf/model").glob("*.yaml")):
        for representation in sorted(p.stem for p in (REPO / "conf/representation").glob("*.yaml")):
            cfg = compose_config("train", f"model={model}", f"representation={representation}", *_smoke(model))
            try:
                representation_of(cfg)
                build_model(cfg)
            except ConfigError:  # a feature model on a signal, a network that cannot read features...
                continue
            cases.append((model, representation))
    return cases


def _smoke(model: str) -> list[str]:
    """Overrides giving ``model`` its architecture's tiny test settings."""
    settings = getattr(get_model_class(architecture(compose_config("train", f"model={model}").model)), "smoke_settings", {})
    return [f"++model.{k}={v}".replace(" ", "") for k, v in settings.items()]


CASES = _cases()
# The default suite checks one model per representation; make test-slow checks them all.
QUICK = {("resnet", "window"), ("resnet_beat", "median_beat"), ("resnet", "window+features"),
         ("resnet_hybrid", "median_beat+features"), ("logistic_regression", "features")}  # fmt: skip


def test_every_representation_is_read_by_some_model():
    assert {r for _, r in CASES} == {p.stem for p in (REPO / "conf/representation").glob("*.yaml")}
    assert QUICK <= set(CASES)


def _check(model: str, representation: str, tmp_path) -> None:
    from ecg_mi.train import run

    cfg = compose_config("train", *TINY_RUN, f"model={model}", f"representation={representation}", *_smoke(model),
                         "explain.enabled=false", "experiment_name=contract", "data.n_folds=3", "fold=1")  # fmt: skip
    run(cfg)
    client = MlflowClient()
    [logged] = client.search_runs([client.get_experiment_by_name("contract").experiment_id])
    predictions = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=logged.info.run_id, artifact_path="predictions.csv",
                                                                  dst_path=str(tmp_path)), dtype={"record_id": str})  # fmt: skip
    pyfunc = mlflow.pyfunc.load_model(logged_model_uri(logged.info.run_id, mlflow.get_tracking_uri()))
    data = learner_for(architecture(cfg.model)).datamodule(cfg)
    data.setup()
    assert predictions["record_id"].tolist() == data.metadata("test")["record_id"].tolist()
    window = FoldDataModule(**fold_settings(cfg))
    window.setup()  # the test records' 10 s windows in mV, as an export would bring them
    x = np.asarray(window.store.signals[window.store.rows(predictions["record_id"].tolist())], dtype=np.float32)

    # 1. The packaged model scores the test fold as the training run did.
    np.testing.assert_allclose(pyfunc.predict(x), predictions["prob_calibrated"], rtol=0, atol=1e-6)
    # 2. What it (and its Grad-CAM) feeds the model is what the training pipeline fed it.
    [(_, packaged, _)] = pyfunc.unwrap_python_model().loaded
    assert packaged.state() == data.fitted.state()
    scored = packaged.transform(x)
    if data.fitted.for_networks:
        batches = [b if isinstance(b, list) else [b] for b, _, _ in data.test_dataloader()]
        for k, inputs in enumerate(data.model_inputs("test")):  # Grad-CAM's (explain_network) input
            np.testing.assert_array_equal(inputs, torch.cat([b[k] for b in batches]).numpy())
            np.testing.assert_allclose(scored[k], inputs, rtol=0, atol=1e-6)
    else:
        np.testing.assert_allclose(scored[0], data.arrays("test")[0], rtol=0, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize(("model", "representation"), sorted(QUICK))
def test_package_and_explanation_read_what_training_read(model, representation, tmp_path):
    _check(model, representation, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "representation"), sorted(set(CASES) - QUICK))
def test_package_and_explanation_read_what_training_read_for_every_model(model, representation, tmp_path):
    _check(model, representation, tmp_path)
