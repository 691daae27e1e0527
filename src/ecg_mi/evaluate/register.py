"""Package a finished fold sweep of one model as one ensemble and register it.

``python evaluate.py experiment_name=<exp> register=ecg-mi model_name=resnet [alias=champion]``:
the packaged models of ``model_name``'s k fold runs become one MLflow Model predicting the mean
of their probabilities (threshold: the mean of the fold models' validation-chosen
thresholds, see :func:`ecg_mi.packaging.ensemble`). It is logged as ``<model>-ensemble`` in its
own run of the experiment, tagged ``kind=ensemble`` (the report reads only ``kind=fold`` runs), registered
under ``register`` and given the alias ``alias`` (aliases, not the deprecated stages), so
``models:/<register>@<alias>`` names it for ``predict.py`` and ``mlflow models serve``.

``model_name=resnet+random_forest+xgboost`` registers the models' ensemble instead: each model's
fold ensemble as above, averaged with equal weight (:func:`ecg_mi.packaging.ensemble` again) — the
packaged form of the report's ``ensembles=[resnet+random_forest+xgboost]`` row.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from ecg_mi.errors import ConfigError, DataError
from ecg_mi.evaluate.runs import model_fold_runs
from ecg_mi.models.registry import members_of
from ecg_mi.packaging import ensemble, load_package, log_package
from ecg_mi.tracking import FOLD_HASH_PARAM, logged_model_uri, mlflow_run, tracking_client

log = logging.getLogger(__name__)


def model_uri(name: str, alias: str) -> str:
    """``models:/<name>@<alias>``."""
    return f"models:/{name}@{alias}"


def register_ensemble(experiment: str, model: str, name: str, alias: str, uri: str) -> str:
    """Log ``model``'s fold ensemble of ``experiment`` in a ``kind=ensemble`` run, register
    it as a new version of ``name``, point ``alias`` at that version; return its URI."""
    if not model:
        raise ConfigError(f"register={name} needs model_name=<the model whose fold runs to register>")
    members = members_of(model)
    every_run = {m: model_fold_runs(experiment, uri, m) for m in members}
    runs = [r for m in members for r in every_run[m]]
    hashes = {r.data.params.get(FOLD_HASH_PARAM) for r in runs}
    if len(hashes) > 1:
        raise DataError(f"{model}: the models' runs come from different fold files {sorted(map(str, hashes))}")
    mlflow.set_tracking_uri(uri)  # the runs:/ URIs below resolve in this store, not the default
    with tempfile.TemporaryDirectory(prefix="ecg_mi_ensemble_") as tmp:
        parts = [
            ensemble([load_package(logged_model_uri(r.info.run_id, uri), str(Path(tmp) / r.info.run_id))
                      for r in every_run[m]])
            for m in members
        ]  # fmt: skip
        packaged = parts[0] if len(parts) == 1 else ensemble(parts)
        tags = {"kind": "ensemble", "model": model, "registered_model": name}
        with mlflow_run(experiment, f"{model}-ensemble", uri, tags):
            mlflow.log_params({
                "model": model, "n_models": packaged.info["n_models"],
                "folds": ",".join(sorted({str(r.data.params["fold"]) for r in runs}, key=int)),
                FOLD_HASH_PARAM: runs[0].data.params.get(FOLD_HASH_PARAM),
                "source_runs": ",".join(r.info.run_id for r in runs),
            })  # fmt: skip
            mlflow.log_metric("threshold", packaged.info["threshold"])
            logged = log_package(packaged, f"{model}-ensemble", registered_model_name=name)
    try:
        tracking_client(uri).set_registered_model_alias(
            name, alias, logged.registered_model_version
        )
    except MlflowException as exc:  # e.g. a reserved alias ("latest", "v3")
        raise ConfigError(f"alias={alias!r}: {str(exc).splitlines()[0]}") from None
    target = model_uri(name, alias)
    log.info("registered %s version %s as %s", name, logged.registered_model_version, target)
    return target
