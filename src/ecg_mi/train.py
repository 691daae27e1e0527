"""``run(cfg)``: the one route every model takes — data → fit → predict → metrics → MLflow.

The model's family (:mod:`ecg_mi.learners`) supplies the DataModule, fit, predict, explain
and the saved model; this route never branches on the kind of model.

For each (model, fold): build the fold's DataModule from the shared fold file, fit on the
training folds (model selection on the validation part), predict the validation and test
parts with the selected model, choose the F1 threshold on validation, score the test fold,
calibrate P(MI) on the validation part (:mod:`ecg_mi.calibration`; the packaged model applies
it, ``predictions.csv`` keeps the raw ``prob`` beside ``prob_calibrated``), and log everything
to one MLflow run named ``{model}-fold{fold}``: its params (the config as the model's family ran
it, each setting once), per-epoch curves (networks: ``train_loss``, ``val_loss``,
``val_auc_epoch`` at step = epoch), the packaged model logged as ``{model}-fold{fold}`` at the
selected epoch's step, and the selected model's metrics (``val_auc``, ``test_auc``, ``test_f1``,
calibration, explanation) at that step, linked to the logged model so its page shows them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from ecg_mi import metrics
from ecg_mi.calibration import (
    Calibrator,
    apply_calibration,
    calibration_scores,
    cross_fitted,
    fit_calibration,
)
from ecg_mi.config_checks import check_train_config
from ecg_mi.console import RunSummary, print_summary
from ecg_mi.errors import ConfigError, EcgMiError
from ecg_mi.learners import architecture, build_model, check_fit_keys, describe, learner_for
from ecg_mi.packaging import calibrated_package, log_package
from ecg_mi.search import trial_tags
from ecg_mi.tracking import (
    close_stale_runs,
    config_hash,
    find_finished_run,
    log_metrics_at,
    logged_model_uri,
    mlflow_run,
    redact,
    resolve_tracking_uri,
    sweep_parent_tags,
)
from ecg_mi.utils.io import atomic_write_text, write_probabilities_csv

log = logging.getLogger(__name__)

REQUIRED_METRICS = ("val_auc", "test_auc", "test_f1", "test_threshold")


def process_rank() -> int:
    """This process's global rank as DDP/SLURM launchers set it (0 when not distributed)."""
    for variable in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0


def score(probs: dict[str, np.ndarray], data: Any) -> dict[str, float]:
    """``val_auc``, ``test_auc``, ``test_f1`` at the validation-chosen ``test_threshold``."""
    val_labels = data.metadata("val")["label"].to_numpy()
    test_labels = data.metadata("test")["label"].to_numpy()
    threshold = metrics.max_f1_threshold(probs["val"], val_labels)
    return {
        "val_auc": metrics.auc(probs["val"], val_labels),
        "test_auc": metrics.auc(probs["test"], test_labels),
        "test_f1": metrics.f1_at(probs["test"], test_labels, threshold),
        "test_threshold": threshold,
    }


def calibrate(probs: dict[str, np.ndarray], data: Any, cfg: DictConfig,
              threshold: float) -> tuple[Calibrator, dict, dict]:  # fmt: skip
    """The calibrator of ``cfg.calibration`` fitted on the *validation* part alone (see
    :mod:`ecg_mi.calibration`), the calibrated P(MI) of every part, and the metrics to log:
    out-of-fold Brier of each candidate (``auto``), Brier/ECE of the raw and calibrated P(MI)
    of both parts, and the raw ``threshold`` mapped onto the calibrated scale with the test
    F1 there (equal to ``test_f1``: the map is strictly increasing).

    The validation part's calibrated P(MI) is cross-fitted (each record calibrated by the
    chosen method fitted on the other patients of the part): applied in-sample, an isotonic
    map would have seen the labels it is scored against."""
    val = data.metadata("val")
    labels = {part: data.metadata(part)["label"].to_numpy() for part in probs}
    groups = val["patient_id"].to_numpy()
    calibrator, briers = fit_calibration(probs["val"], labels["val"], groups,
                                         str(cfg.get("calibration", "auto")), int(cfg.seed))  # fmt: skip
    calibrated = {part: apply_calibration(calibrator, p) for part, p in probs.items()}
    held_out = cross_fitted(probs["val"], labels["val"], groups, [calibrator["method"]], int(cfg.seed))
    calibrated["val"] = held_out.get(calibrator["method"], calibrated["val"])  # in-sample when too few records
    scores = calibration_scores(labels, probs, calibrated)
    mapped = float(apply_calibration(calibrator, np.array([threshold]))[0])
    scores.update(test_threshold_calibrated=mapped,
                  test_f1_calibrated=metrics.f1_at(calibrated["test"], labels["test"], mapped))  # fmt: skip
    return calibrator, calibrated, {**scores, **{f"val_crossfit_brier_{m}": b for m, b in briers.items()}}


PREDICTION_FILES = {"test": "predictions.csv", "val": "val_predictions.csv"}


def write_predictions(data: Any, part: str, probs: np.ndarray, calibrated: np.ndarray, run_dir: Path) -> Path:
    """``predictions.csv`` (test part) or ``val_predictions.csv`` (validation part): record_id,
    patient_id, age, sex, label, prob, fold, prob_calibrated, atomically; ``prob`` is the raw
    model's P(MI); the validation part's ``prob_calibrated`` is cross-fitted (:func:`calibrate`),
    so an ensemble of calibrated models can be scored on validation like a model."""
    table = data.metadata(part).assign(prob=probs, prob_calibrated=calibrated)
    table = table[["record_id", "patient_id", "age", "sex", "label", "prob", "fold", "prob_calibrated"]]
    target = run_dir / PREDICTION_FILES[part]
    write_probabilities_csv(table, target)
    return target


def _run_dir() -> AbstractContextManager[str]:
    """Hydra's output folder of the job; outside a Hydra app (tests, notebooks) a temporary
    folder removed when the run ends — its files are in MLflow by then."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return nullcontext(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return tempfile.TemporaryDirectory(prefix="ecg_mi_run_")


def run(cfg: DictConfig) -> dict[str, float]:
    """Train and evaluate ``cfg.model`` on ``cfg.fold`` of ``cfg.data``; return the metrics
    (empty in an extra DDP process, which only helps fitting)."""
    check_train_config(cfg)
    if cfg.get("optimized_metric", "val_auc") not in REQUIRED_METRICS:
        raise ConfigError(f"optimized_metric={cfg.optimized_metric!r}; choose one of {list(REQUIRED_METRICS)}")
    with _run_dir() as run_dir:
        return _run(cfg, Path(run_dir))


def _run(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """:func:`run` with its files written to ``run_dir``."""
    pl.seed_everything(cfg.seed, workers=True)
    learner_cls = learner_for(architecture(cfg.model))
    check_fit_keys(cfg, learner_cls)
    data = learner_cls.datamodule(cfg)
    uri = resolve_tracking_uri(cfg.tracking.uri)
    if process_rank() > 0:  # an extra DDP process (ddp/SLURM launchers): it fits, rank 0 reports
        learner_cls(cfg, run_dir).fit(build_model(cfg), data)
        return {}
    names = describe(cfg)
    run_name = f"{names['model']}-fold{cfg.fold}"
    # Runs of ecg-mi before the allow-listed hash carry the older digest: found as well.
    digests = (config_hash(learner_cls.hashed_config(cfg)), config_hash(learner_cls.legacy_hashed_config(cfg)))
    close_stale_runs(cfg.experiment_name, uri, digests, data.split.fold_hash)  # dead owners' runs
    if cfg.get("skip_finished"):
        previous = find_finished_run(cfg.experiment_name, uri, digests, data.split.fold_hash)
        if previous is not None:
            log.info("%s: skipped, run %s already finished with this config and fold hash",
                     run_name, previous.info.run_id)  # fmt: skip
            results = {k: previous.data.metrics[k] for k in REQUIRED_METRICS}
            model_uri = logged_model_uri(previous.info.run_id, uri) if cfg.tracking.log_model else None
            report(RunSummary(run_name, results, cfg.experiment_name, previous.info.run_id, redact(uri),
                              model_uri, skipped=True), run_dir)  # fmt: skip
            return results
    tags = {**names, "fold": str(cfg.fold), "data": cfg.data.name, "kind": "fold",
            "family": learner_cls.family, "config_hash": digests[0], **sweep_parent_tags(), **trial_tags()}  # fmt: skip
    with mlflow_run(cfg.experiment_name, run_name, uri, tags) as active:
        model = build_model(cfg)
        params = learner_cls.params(cfg)
        params.update({"model": names["model"], "tracking.uri": redact(uri)})
        if getattr(model, "n_params", None):  # networks: their trainable weights
            params["n_params"] = str(model.n_params)
        params.update({f"data.{k}": str(v) for k, v in data.split.summary().items()})
        mlflow.log_params(params)
        mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")  # to rebuild the run later
        learner = learner_cls(cfg, run_dir, active.info.run_id, uri)
        fit_info = learner.fit(model, data)
        mlflow.log_params({f"data.{k}": v for k, v in data.quality().items()})
        probs = {part: learner.predict(data, part) for part in ("val", "test")}
        results = score(probs, data)
        calibrator, calibrated, calibration_metrics = calibrate(probs, data, cfg, results["test_threshold"])
        mlflow.set_tag("calibration_method", calibrator["method"])  # what calibration=auto chose
        for part in PREDICTION_FILES:
            mlflow.log_artifact(str(write_predictions(data, part, probs[part], calibrated[part], run_dir)))
        explained: dict[str, float] = {}
        if cfg.explain.enabled:
            explained, artifacts = learner.explain(data, probs["test"])
            for path, folder in artifacts:
                mlflow.log_artifact(str(path), artifact_path=folder)
        missing = [k for k in REQUIRED_METRICS if not np.isfinite(results.get(k, np.nan))]
        if missing:
            raise EcgMiError(f"run {run_name}: metric(s) {missing} could not be computed")
        # Everything below describes the selected model, logged at its epoch (0: classical).
        step = int(fit_info.get("best_epoch", 0))
        model_id = None
        if cfg.tracking.log_model:  # calibrated, threshold mapped onto its scale
            raw = results["test_threshold"]
            packaged = calibrated_package(learner.package(data, raw), calibrator, raw)
            model_id = log_package(packaged, run_name, step=step, tags={**names, "fold": str(cfg.fold)}).model_id
        metrics = {**fit_info, **calibration_metrics, **explained, **results}
        log_metrics_at(mlflow.MlflowClient(uri), active.info.run_id,
                       {k: v for k, v in metrics.items() if np.isfinite(v)}, step, model_id)  # fmt: skip
        rounded = {k: round(v, 4) for k, v in results.items()}
        log.info("%s: %s (MLflow run %s in %s)", run_name, rounded, active.info.run_id, redact(uri))
    model_uri = f"runs:/{active.info.run_id}/{run_name}" if model_id else None
    report(RunSummary(run_name, results, cfg.experiment_name, active.info.run_id, redact(uri), model_uri), run_dir)
    return results


#: The file in a job's output folder that says which run it made or reused (read by the sweep's
#: parent run, :mod:`ecg_mi.sweep`, to list skipped runs of other sweeps in its summary).
RUN_FILE = "run.json"


def report(summary: RunSummary, run_dir: Path) -> None:
    """Print the run's summary and write it to ``run_dir/run.json``."""
    atomic_write_text(run_dir / RUN_FILE, json.dumps(dataclasses.asdict(summary), indent=1, default=float))
    print_summary(summary)


__all__ = ["PREDICTION_FILES", "REQUIRED_METRICS", "RUN_FILE", "run", "score"]
