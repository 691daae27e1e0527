"""``run(cfg)``: the one route every model takes — data → fit → predict → metrics → MLflow.

For each (model, fold): build the fold's DataModule from the shared fold file, fit on the
training folds (model selection on the validation part), predict the validation and test
parts with the selected model, choose the F1 threshold on validation, score the test fold,
and log everything to one MLflow run named ``{model}-fold{fold}``.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from ecg_mi import metrics
from ecg_mi.data.datamodule import FeatureDataModule, SignalDataModule
from ecg_mi.errors import ConfigError, EcgMiError
from ecg_mi.models import get_model_class
from ecg_mi.tracking import (
    config_hash,
    find_finished_run,
    flatten,
    log_metrics_at,
    mlflow_run,
    resolve_tracking_uri,
)
from ecg_mi.utils.config import build
from ecg_mi.utils.io import atomic_path

log = logging.getLogger(__name__)

REQUIRED_METRICS = ("val_auc", "test_auc", "test_f1", "test_threshold")
DATAMODULES = {"signal": SignalDataModule, "features": FeatureDataModule}


class MlflowEpochMetrics(Callback):
    """Log ``train_loss``, ``val_loss``, ``val_auc`` to an MLflow run each epoch (rank 0).

    Holds only the run id and store URI, so it pickles into spawned DDP workers.
    """

    KEYS = ("train_loss", "val_loss", "val_auc")

    def __init__(self, run_id: str, tracking_uri: str) -> None:
        self.run_id = run_id
        self.tracking_uri = tracking_uri

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k in self.KEYS}
        if values and trainer.is_global_zero:
            client = mlflow.MlflowClient(self.tracking_uri)
            log_metrics_at(client, self.run_id, values, step=trainer.current_epoch)


def process_rank() -> int:
    """This process's global rank as DDP/SLURM launchers set it (0 when not distributed)."""
    for variable in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0


def build_datamodule(cfg: DictConfig, input_kind: str) -> pl.LightningDataModule:
    """The DataModule for ``cfg.data`` serving what the model consumes (``input_kind``)."""
    if input_kind not in DATAMODULES:
        raise ConfigError(
            f"no DataModule serves input kind {input_kind!r}; known: {sorted(DATAMODULES)}"
        )
    data = cfg.data
    source = build(data.source, "data.source")
    return DATAMODULES[input_kind](
        source=source, sample_rate=data.sample_rate, fold=cfg.fold, n_folds=data.n_folds,
        cohort=OmegaConf.to_container(data.cohort, resolve=True), val_fraction=data.val_fraction,
        skip_missing=data.skip_missing, fold_file=data.fold_file, seed=cfg.seed,
        batch_size=data.batch_size, num_workers=data.num_workers, pin_memory=data.pin_memory,
        cache_dir=data.cache_dir,
    )  # fmt: skip


def build_model(cfg: DictConfig) -> Any:
    """The registered model named by ``cfg.model.name`` (via ``_target_``)."""
    get_model_class(cfg.model.name)  # unknown names fail here, listing the known ones
    return build(cfg.model, "model", _convert_="all")


class NetworkLearner:
    """Fits a network through Lightning and predicts with the best-``val_auc`` checkpoint.

    Works unchanged on CPU, one GPU and DDP: every DDP process fits; prediction then runs
    in this process on one device, so outputs are in DataModule order.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, run_id: str | None, uri: str) -> None:
        self.cfg, self.run_dir, self.run_id, self.uri = cfg, run_dir, run_id, uri
        self.best: pl.LightningModule | None = None

    def fit(self, model: pl.LightningModule, data: pl.LightningDataModule) -> dict[str, float]:
        cfg = self.cfg
        checkpoint = ModelCheckpoint(
            dirpath=self.run_dir / "checkpoints", monitor="val_auc", mode="max", filename="best"
        )
        callbacks: list[Callback] = [checkpoint]
        if self.run_id:
            callbacks.append(MlflowEpochMetrics(self.run_id, self.uri))
        if cfg.early_stopping_patience:
            patience = cfg.early_stopping_patience
            callbacks.append(EarlyStopping(monitor="val_auc", mode="max", patience=patience))
        trainer: pl.Trainer = build(
            cfg.trainer,
            "trainer",
            callbacks=callbacks,
            logger=False,
            default_root_dir=str(self.run_dir),
        )
        trainer.fit(model, datamodule=data)
        if not checkpoint.best_model_path:
            raise EcgMiError(f"{type(model).__name__}: training ended without a checkpoint")
        self.best = type(model).load_from_checkpoint(checkpoint.best_model_path, map_location="cpu")
        if self.run_id and cfg.tracking.log_model:
            mlflow.log_artifact(checkpoint.best_model_path, artifact_path="model")
        state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
        return {"epochs_trained": trainer.current_epoch, "best_epoch": int(state["epoch"])}

    def explain(self, data: SignalDataModule, probs: np.ndarray) -> tuple[dict[str, float], list]:
        """Grad-CAM on the test fold (see :func:`ecg_mi.explain.network.explain_network`)."""
        from ecg_mi.explain.network import explain_network

        return explain_network(
            self.best,
            data,
            probs,
            self.run_dir,
            int(self.cfg.explain.n_examples),
            int(self.cfg.seed),
        )

    def predict(self, data: pl.LightningDataModule, part: str) -> np.ndarray:
        trainer_cfg = self.cfg.trainer
        predictor = pl.Trainer(
            accelerator=trainer_cfg.accelerator, devices=1, precision=trainer_cfg.precision,
            logger=False, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        loader = getattr(data, f"{part}_dataloader")()
        return torch.cat(predictor.predict(self.best, dataloaders=loader)).float().numpy()


class ClassicalLearner:
    """Fits a feature-based estimator (``fit``/``predict_proba``) on the training part.

    Any hyper-parameter search runs inside ``fit`` on the training part only (grouped by
    patient); its best parameters and inner-CV AUC are logged to the run.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, run_id: str | None, uri: str) -> None:
        self.cfg, self.run_dir, self.run_id = cfg, run_dir, run_id
        self.model: Any = None

    def fit(self, model: Any, data: FeatureDataModule) -> dict[str, float]:
        X, y = data.arrays("train")
        started = time.perf_counter()
        self.model = model.fit(X, y, groups=data.groups("train"))
        info = {
            "fit_seconds": time.perf_counter() - started,
            "n_failed_features": data.table.n_failed,
        }
        summary = getattr(model, "search_summary_", {})
        if summary:
            info["inner_cv_auc"] = summary["inner_cv_auc"]
            info["search_candidates"] = summary["candidates"]
            if self.run_id:
                mlflow.log_params(
                    {f"search.best.{k}": v for k, v in summary["best_params"].items()}
                )
        if self.run_id and self.cfg.tracking.log_model:
            target = self.run_dir / "model.pkl"
            with atomic_path(target) as tmp:
                tmp.write_bytes(pickle.dumps(model))
            mlflow.log_artifact(str(target), artifact_path="model")
        return info

    def explain(self, data: FeatureDataModule, probs: np.ndarray) -> tuple[dict[str, float], list]:
        """Permutation importance on the test fold (+ XGBoost gain/weight)."""
        from ecg_mi.explain.importance import explain_classical

        repeats = int(self.cfg.explain.permutation_repeats)
        return explain_classical(self.model, data, self.run_dir, repeats, int(self.cfg.seed))

    def predict(self, data: FeatureDataModule, part: str) -> np.ndarray:
        X, _ = data.arrays(part)
        return self.model.predict_proba(X)[:, 1].astype(np.float64)


LEARNERS = {"signal": NetworkLearner, "features": ClassicalLearner}


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


def write_predictions(data: Any, probs: np.ndarray, run_dir: Path) -> Path:
    """``predictions.csv`` (record_id, patient_id, age, sex, label, prob, fold), atomically."""
    table = data.metadata("test").assign(prob=probs)
    table = table[["record_id", "patient_id", "age", "sex", "label", "prob", "fold"]]
    target = run_dir / "predictions.csv"
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6g")
    return target


def _run_dir() -> Path:
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # called outside a Hydra app (tests, notebooks)
        return Path(tempfile.mkdtemp(prefix="ecg_mi_run_"))


def run(cfg: DictConfig) -> dict[str, float]:
    """Train and evaluate ``cfg.model`` on ``cfg.fold`` of ``cfg.data``; return the test metrics."""
    pl.seed_everything(cfg.seed, workers=True)
    model_cls = get_model_class(cfg.model.name)
    data = build_datamodule(cfg, model_cls.input_kind)
    run_dir = _run_dir()
    uri = resolve_tracking_uri(cfg.tracking.uri)
    learner_cls = LEARNERS[model_cls.input_kind]
    if process_rank() > 0:  # an extra DDP process (ddp/SLURM launchers): it fits, rank 0 reports
        pl.seed_everything(cfg.seed, workers=True)
        learner_cls(cfg, run_dir, None, uri).fit(build_model(cfg), data)
        return {}
    run_name = f"{cfg.model.name}-fold{cfg.fold}"
    digest = config_hash(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("skip_finished"):
        previous = find_finished_run(cfg.experiment_name, uri, digest, data.split.fold_hash)
        if previous is not None:
            log.info("%s: skipped, run %s already finished with this config and fold hash",
                     run_name, previous.info.run_id)  # fmt: skip
            return {k: previous.data.metrics[k] for k in REQUIRED_METRICS}
    tags = {"model": cfg.model.name, "fold": str(cfg.fold), "data": cfg.data.name, "kind": "fold",
            "config_hash": digest}  # fmt: skip
    with mlflow_run(cfg.experiment_name, run_name, uri, tags) as active:
        pl.seed_everything(cfg.seed, workers=True)
        model = build_model(cfg)
        params = flatten(OmegaConf.to_container(cfg, resolve=True))
        params.update({"model": cfg.model.name, "fold": str(cfg.fold)})
        params["n_params"] = str(getattr(model, "n_params", ""))
        params.update({f"data.{k}": str(v) for k, v in data.split.summary().items()})
        params["fold_hash"] = data.split.fold_hash
        mlflow.log_params(params)
        mlflow.log_text(
            OmegaConf.to_yaml(cfg, resolve=True), "config.yaml"
        )  # to rebuild the run later
        learner = learner_cls(cfg, run_dir, active.info.run_id, uri)
        fit_info = learner.fit(model, data)
        mlflow.log_metrics(fit_info)
        probs = {part: learner.predict(data, part) for part in ("val", "test")}
        results = score(probs, data)
        mlflow.log_artifact(str(write_predictions(data, probs["test"], run_dir)))
        if cfg.explain.enabled:
            explained, artifacts = learner.explain(data, probs["test"])
            mlflow.log_metrics({k: v for k, v in explained.items() if np.isfinite(v)})
            for path, folder in artifacts:
                mlflow.log_artifact(str(path), artifact_path=folder)
        missing = [k for k in REQUIRED_METRICS if not np.isfinite(results.get(k, np.nan))]
        if missing:
            raise EcgMiError(f"run {run_name}: metric(s) {missing} could not be computed")
        # Logged one step past the last epoch so the run's headline val_auc is the selected
        # checkpoint's, while the per-epoch val_auc curve stays intact before it.
        mlflow.log_metrics(results, step=int(fit_info.get("epochs_trained", 0)))
        rounded = {k: round(v, 4) for k, v in results.items()}
        log.info("%s: %s (MLflow run %s in %s)", run_name, rounded, active.info.run_id, uri)
    return results


__all__ = ["LEARNERS", "NetworkLearner", "build_datamodule", "build_model", "run", "score"]
