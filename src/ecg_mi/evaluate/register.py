"""Package a finished fold sweep of one model as one ensemble and register it.

``python evaluate.py experiment_name=<exp> register=ecg-mi model_name=resnet [alias=champion]``:
the packaged models of ``model_name``'s k fold runs become one MLflow Model predicting the mean
of their probabilities (threshold: the mean of the fold models' validation-chosen
thresholds, see :func:`ecg_mi.packaging.ensemble`). It is logged as ``<model>-ensemble`` in its
own run of the experiment, tagged ``kind=ensemble`` (the report reads only ``kind=fold`` runs),
registered under ``register`` and given the alias ``alias`` (aliases, not the deprecated
stages), so ``models:/<register>@<alias>`` names it for ``predict.py`` and ``mlflow models serve``.

The new version carries its model card (:mod:`ecg_mi.evaluate.model_card`) as its description
and as the artifact ``model_card.md`` of the ensemble run, and tags a reviewer filters on (data
hash, commit, model, representation, validation AUC, test AUC with its CI, calibration ECE); the
ensemble run logs the same figures as metrics, linked to its logged model.

``model_name=resnet+random_forest+xgboost`` registers the models' ensemble instead: each model's
fold ensemble as above, averaged with equal weight (:func:`ecg_mi.packaging.ensemble` again) — the
packaged form of the report's ``ensembles=[resnet+random_forest+xgboost]`` row.

``allow_incomplete=true`` registers a model from the folds it has (tagged ``incomplete``, its
card says which folds are missing); without it, missing folds are an error naming the train
command that adds them.

Store once: the registered model refers to its members — the fold runs' logged models, by
``models:/<model id>`` (listed in its metadata as ``member_models``) — instead of copying their
files, so it stores only its own state (members' representations, calibrations and weights,
threshold, input contract, model card). Loading it (``predict.py``, ``serve.py``,
``mlflow.pyfunc.load_model``, ``mlflow models serve``) fetches the members from the tracking
store it is loaded with (``MLFLOW_TRACKING_URI``, or the CLI's ``tracking.uri``): that store must
be reachable, and the fold runs' models kept; a member it cannot find is one InputError naming
the member and the store. ``self_contained=true`` copies the members' files into the registered
model instead, for a model that must load without the store (``mlflow models build-docker``, a
folder taken elsewhere); same probabilities either way.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
from hydra.utils import get_class
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf

from ecg_mi.errors import ConfigError
from ecg_mi.evaluate.ensembles import add_ensembles
from ecg_mi.evaluate.model_card import (
    Card,
    calibration_ece,
    description,
    model_card,
    val_auc,
    version_tags,
)
from ecg_mi.evaluate.report import Settings, report_tables
from ecg_mi.evaluate.runs import Sweep, collect, fetch
from ecg_mi.models.registry import is_ensemble, members_of
from ecg_mi.packaging import contained, download_package, ensemble, log_package
from ecg_mi.tracking import (
    FOLD_HASH_PARAM,
    log_metrics_at,
    logged_model_uri,
    mlflow_run,
    tracking_client,
)

log = logging.getLogger(__name__)

#: The registered model's description, set when it has none.
REGISTERED_DESCRIPTION = ("MI detection from resting 12-lead ECGs (ecg-mi). Each version is a fold ensemble "
                          "with its model card as description; see its tags for data hash, commit and AUCs.")  # fmt: skip


def model_uri(name: str, alias: str) -> str:
    """``models:/<name>@<alias>``."""
    return f"models:/{name}@{alias}"


def only(sweep: Sweep, model: str) -> Sweep:
    """``sweep`` reduced to ``model``'s rows (its runs, test and validation predictions)."""
    val = sweep.val_predictions
    return replace(sweep, runs=sweep.runs[sweep.runs["model"] == model],
                   predictions=sweep.predictions[sweep.predictions["model"] == model],
                   val_predictions=val[val["model"] == model] if not val.empty else val)  # fmt: skip


def register_ensemble(experiment: str, model: str, name: str, alias: str, uri: str,
                      allow_incomplete: bool = False, settings: Settings | None = None,
                      self_contained: bool = False) -> str:  # fmt: skip
    """Log ``model``'s fold ensemble of ``experiment`` in a ``kind=ensemble`` run, register
    it as a new version of ``name`` with its model card and tags, point ``alias`` at that
    version; return its URI. ``settings``: the bootstrap and subgroups of the card's figures.
    The ensemble refers to the fold runs' logged models in the store ``uri``; with
    ``self_contained`` it holds copies of their files (module docstring)."""
    if not model:
        raise ConfigError(f"register={name} needs model_name=<the model whose fold runs to register>")
    members = members_of(model)
    sweep = collect(experiment, uri, allow_incomplete, models=members)
    if is_ensemble(model):
        sweep = add_ensembles(sweep, [model])
    fold_runs = sweep.runs[sweep.runs["model"].isin(members)].sort_values(["model", "fold"])
    mlflow.set_tracking_uri(uri)  # the models:/ URIs below resolve in this store, not the default
    with tempfile.TemporaryDirectory(prefix="ecg_mi_ensemble_") as tmp:
        parts = [
            ensemble([download_package(logged_model_uri(run_id, uri), str(Path(tmp) / run_id))
                      for run_id in fold_runs.loc[fold_runs["model"] == m, "run_id"]])
            for m in members
        ]  # fmt: skip
        packaged = parts[0] if len(parts) == 1 else ensemble(parts)
        if self_contained:
            packaged = contained(packaged, str(Path(tmp) / "members"))
        tables = report_tables(only(sweep, model), settings or Settings())
        client = tracking_client(uri)
        source = [client.get_run(run_id) for run_id in fold_runs["run_id"]]
        config = OmegaConf.load(fetch(uri, source[0].info.run_id, "config.yaml"))
        card = Card(
            name=name, model=model, display=sweep.display(model), experiment=experiment,
            run_ids=list(fold_runs["run_id"]), folds=sorted(set(fold_runs["fold"])),
            n_folds=int(fold_runs["n_folds"].iloc[0]), config=config,
            outcome=get_class(config.data.source._target_).outcome, info=packaged.info,
            members=[m.representation for m in packaged.python_model.members], tables=tables,
            commit=",".join(sorted({r.data.tags.get("mlflow.source.git.commit", "unknown") for r in source})),
            data_hash=str(fold_runs["fold_hash"].iloc[0]),
        )  # fmt: skip
        text = model_card(card)  # before anything is logged: a card that fails registers nothing
        tags = {"kind": "ensemble", "model": model, "registered_model": name}
        with mlflow_run(experiment, f"{model}-ensemble", uri, tags) as active:
            mlflow.log_params({
                "model": model, "n_models": packaged.info["n_models"], "folds": ",".join(map(str, card.folds)),
                FOLD_HASH_PARAM: card.data_hash, "source_runs": ",".join(card.run_ids),
            })  # fmt: skip
            logged = log_package(packaged, f"{model}-ensemble", tags={"model": model, "registered_model": name})
            row = card.row  # the card's figures, also as the run's (and its model's) metrics
            metrics = {"threshold": packaged.info["threshold"], "val_auc": val_auc(card), "test_auc": row.pooled_auc,
                       "test_auc_low": row.pooled_auc_low, "test_auc_high": row.pooled_auc_high,
                       "test_f1": row.f1_mean, "test_ece_calibrated": calibration_ece(card)}  # fmt: skip
            finite = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
            log_metrics_at(client, active.info.run_id, finite, 0, logged.model_id)
            mlflow.log_text(text, "model_card.md")
            mlflow.set_tag("mlflow.note.content", text)  # the run page's description
            version = mlflow.register_model(logged.model_uri, name, tags=version_tags(card)).version
    client.update_model_version(name, version, description=description(text, active.info.run_id))
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=REGISTERED_DESCRIPTION)
    try:
        client.set_registered_model_alias(name, alias, version)
    except MlflowException as exc:  # e.g. a reserved alias ("latest", "v3")
        raise ConfigError(f"alias={alias!r}: {str(exc).splitlines()[0]}") from None
    target = model_uri(name, alias)
    log.info("registered %s version %s as %s (model card: run %s, model_card.md)", name, version, target,
             active.info.run_id)  # fmt: skip
    return target
