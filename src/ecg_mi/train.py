"""``run(cfg)``: the one route every model takes — data → fit → predict → metrics → MLflow.

For each (model, fold): build the fold's DataModule from the shared fold file, fit on the
training folds (model selection on the validation part), predict the validation and test
parts with the selected model, choose the F1 threshold on validation, score the test fold,
and log everything to one MLflow run named ``{model}-fold{fold}``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from ecg_mi import metrics
from ecg_mi.data.datamodule import SignalDataModule
from ecg_mi.errors import ConfigError, EcgMiError
from ecg_mi.models import get_model_class
from ecg_mi.tracking import flatten, log_metrics_at, mlflow_run, resolve_tracking_uri
from ecg_mi.utils.config import build
from ecg_mi.utils.io import atomic_path

log = logging.getLogger(__name__)

REQUIRED_METRICS = ("val_auc", "test_auc", "test_f1", "test_threshold")
DATAMODULES = {"signal": SignalDataModule}


class MlflowEpochMetrics(Callback):
    """Log ``train_loss``, ``val_loss``, ``val_auc`` to the active MLflow run each epoch."""

    KEYS = ("train_loss", "val_loss", "val_auc")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.client = mlflow.MlflowClient()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k in self.KEYS}
        if values:
            log_metrics_at(self.client, self.run_id, values, step=trainer.current_epoch)


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


def fit_predict_network(
    model: pl.LightningModule, data: SignalDataModule, cfg: DictConfig, run_dir: Path, run_id: str
) -> dict[str, np.ndarray]:
    """Fit with best-epoch selection on ``val_auc``; P(MI) for the val and test parts."""
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", monitor="val_auc", mode="max", filename="best"
    )
    callbacks = [checkpoint, MlflowEpochMetrics(run_id)]
    if cfg.early_stopping_patience:
        callbacks.append(
            EarlyStopping(monitor="val_auc", mode="max", patience=cfg.early_stopping_patience)
        )
    trainer: pl.Trainer = build(
        cfg.trainer, "trainer", callbacks=callbacks, logger=False, default_root_dir=str(run_dir)
    )
    trainer.fit(model, datamodule=data)
    mlflow.log_metric("epochs_trained", trainer.current_epoch)
    best = type(model).load_from_checkpoint(checkpoint.best_model_path, map_location="cpu")
    mlflow.log_metric("best_epoch", _epoch_of(checkpoint))
    if cfg.tracking.log_model:
        mlflow.log_artifact(checkpoint.best_model_path, artifact_path="model")
    return {
        part: torch.cat(trainer.predict(best, dataloaders=loader)).numpy()
        for part, loader in (("val", data.val_dataloader()), ("test", data.test_dataloader()))
    }


def _epoch_of(checkpoint: ModelCheckpoint) -> int:
    state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
    return int(state["epoch"])


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
    run_name = f"{cfg.model.name}-fold{cfg.fold}"
    tags = {"model": cfg.model.name, "fold": str(cfg.fold), "data": cfg.data.name, "kind": "fold"}
    with mlflow_run(cfg.experiment_name, run_name, uri, tags) as active:
        pl.seed_everything(cfg.seed, workers=True)
        model = build_model(cfg)
        params = flatten(OmegaConf.to_container(cfg, resolve=True))
        params.update(
            {
                "model": cfg.model.name,
                "fold": str(cfg.fold),
                "n_params": str(getattr(model, "n_params", "")),
            }
        )
        params.update({f"data.{k}": str(v) for k, v in data.split.summary().items()})
        params["fold_hash"] = data.split.fold_hash
        mlflow.log_params(params)
        probs = fit_predict_network(model, data, cfg, run_dir, active.info.run_id)
        results = score(probs, data)
        mlflow.log_artifact(str(write_predictions(data, probs["test"], run_dir)))
        missing = [k for k in REQUIRED_METRICS if not np.isfinite(results.get(k, np.nan))]
        if missing:
            raise EcgMiError(f"run {run_name}: metric(s) {missing} could not be computed")
        # Logged one step past the last epoch so the run's headline val_auc is the selected
        # checkpoint's, while the per-epoch val_auc curve stays intact before it.
        mlflow.log_metrics(
            results,
            step=int(mlflow.get_run(active.info.run_id).data.metrics.get("epochs_trained", 0)),
        )
        log.info(
            "%s: %s (MLflow run %s in %s)",
            run_name,
            {k: round(v, 4) for k, v in results.items()},
            active.info.run_id,
            uri,
        )
    return results


__all__ = ["run", "build_datamodule", "build_model", "score", "write_predictions"]
