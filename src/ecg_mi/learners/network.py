"""The network family: LightningModules on fold-split signals ``[B, 12, L]``."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, TQDMProgressBar, WeightAveraging
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm

from ecg_mi.cli import stop_signals_held
from ecg_mi.console import progress_enabled
from ecg_mi.datamodule import FoldDataModule
from ecg_mi.errors import ConfigError, EcgMiError
from ecg_mi.learners.base import Artifact, Learner, register_family
from ecg_mi.packaging import EcgMiPackage
from ecg_mi.representation import Representation
from ecg_mi.targets import Targets
from ecg_mi.tracking import log_metrics_at
from ecg_mi.utils.config import build

log = logging.getLogger(__name__)

CHECKPOINT = "best.ckpt"


class MlflowEpochMetrics(Callback):
    """Log the epoch's ``train_loss``, ``val_loss`` and ``val_auc`` (as ``val_auc_epoch``) to an
    MLflow run at step = epoch (rank 0): one point per epoch. The run's ``val_auc`` is the
    selected checkpoint's alone, logged by the train route.

    Holds only the run id and store URI, so it pickles into spawned DDP workers.
    """

    #: Lightning's name of each per-epoch metric → the run's.
    KEYS = {"train_loss": "train_loss", "val_loss": "val_loss", "val_auc": "val_auc_epoch"}

    def __init__(self, run_id: str, tracking_uri: str) -> None:
        self.run_id = run_id
        self.tracking_uri = tracking_uri

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        values = {self.KEYS[k]: float(v) for k, v in trainer.callback_metrics.items() if k in self.KEYS}
        if values and trainer.is_global_zero:
            with stop_signals_held():  # opening the store too: a signal stops the fit after this epoch's write
                client = mlflow.MlflowClient(self.tracking_uri)
                log_metrics_at(client, self.run_id, values, step=trainer.current_epoch)


class LateWeightAveraging(WeightAveraging):
    """Stochastic weight averaging over the last ``fraction`` of the training steps: the
    equal-weight mean of the weights (and BatchNorm statistics) after every step from there
    on replaces the network for validation, the checkpoint and prediction.

    Before the first averaged step the network itself is validated and checkpointed
    (Lightning's callback would show the untrained copy it starts from). Use with
    ``callbacks=last`` semantics (no best-epoch pick): ``conf/callbacks/swa.yaml``.
    """

    def __init__(self, fraction: float = 0.5) -> None:
        if not 0 < fraction <= 1:
            raise ConfigError(f"callbacks.weight_averaging.fraction={fraction} must be in (0, 1]")
        super().__init__(use_buffers=True)
        self.fraction = fraction
        self.first_step = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit":
            total = int(trainer.estimated_stepping_batches)
            self.first_step = min(total - 1, int(round((1 - self.fraction) * total)))

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.first_step

    def averaging(self) -> bool:
        """Whether at least one step has been averaged."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaging():
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaging():  # no step runs during validation: swapped at its start too
            self._swap_models(pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if self.averaging():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)


def build_callbacks(cfg: DictConfig, checkpoint_dir: Path) -> tuple[ModelCheckpoint, list[Callback]]:
    """The ``callbacks`` group instantiated; the ``model_checkpoint`` entry (the selected
    model is its best) is required, writes ``best.ckpt`` under ``checkpoint_dir``."""
    nodes = cfg.get("callbacks") or {}
    if "_target_" not in (nodes.get("model_checkpoint") or {}):
        raise ConfigError("callbacks.model_checkpoint is required: the selected model is its best checkpoint")
    callbacks = []
    for name, node in nodes.items():
        if node is None:  # switched off, e.g. callbacks.early_stopping=null
            continue
        if "_target_" not in node:
            # Settings an experiment gives a callback that another option switched off, e.g.
            # cpu_fast's early_stopping.patience under callbacks=last: the callback stays off.
            log.info("callbacks.%s has settings but no _target_: off", name)
            continue
        extra = {"dirpath": str(checkpoint_dir), "filename": Path(CHECKPOINT).stem} if name == "model_checkpoint" else {}
        callbacks.append(build(node, f"callbacks.{name}", **extra))
    checkpoint = next(c for c in callbacks if isinstance(c, ModelCheckpoint))
    return checkpoint, callbacks


def trainer_settings(cfg: DictConfig) -> DictConfig:
    """``cfg.trainer``, with the network's own epoch budget (``model.max_epochs``) when it
    sets one — capped by ``trainer.max_epochs``, which stays the sweep's limit (a smoke run's
    ``trainer.max_epochs=1`` holds for every network) — and SyncBatchNorm switched off (and
    logged) on CPU, where PyTorch cannot run it: ``trainer=ddp trainer.accelerator=cpu`` then
    trains with per-process batch statistics instead of failing after the processes started."""
    trainer = cfg.trainer.copy()
    own_epochs = (cfg.get("model") or {}).get("max_epochs")
    if own_epochs:
        limit = trainer.get("max_epochs")  # None or -1: Lightning's default or no limit
        with open_dict(trainer):
            trainer.max_epochs = int(own_epochs) if limit in (None, -1) else min(int(own_epochs), int(limit))
    if trainer.get("sync_batchnorm") and trainer.get("accelerator") == "cpu":
        log.warning("trainer.sync_batchnorm=true needs GPUs; training on CPU without it")
        with open_dict(trainer):
            trainer.sync_batchnorm = False
    return trainer


# Set in this process by Lightning's DDP launcher; left behind, they tell the next job of a
# multirun that its processes were started externally, so it waits for ranks that never come.
LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextlib.contextmanager
def ddp_job_scope() -> Iterator[None]:
    """One fit's DDP life, so that a Hydra multirun can fit job after job with
    ``trainer=ddp`` (lightning-hydra-template #226 reports it crashing):

    * Lightning's launcher starts the extra processes with ``sys.argv`` plus
      ``hydra.run.dir=<hydra.run.dir>``; in a multirun that is ``-m`` and every sweep
      value (each child would start a sweep of its own), and ``hydra.run.dir`` may
      interpolate task keys the hydra node cannot resolve. For the fit, argv holds this
      job's overrides and ``hydra.run.dir`` its output directory.
    * Afterwards the launcher's environment variables are put back as they were and the
      process group is destroyed, so the next job launches its own processes.
    """
    saved_env = {k: os.environ.get(k) for k in LAUNCHER_VARIABLES}
    saved_argv = sys.argv
    hydra_cfg = _multirun_hydra_config()
    saved_dir = hydra_cfg.run.dir if hydra_cfg is not None else None
    if hydra_cfg is not None:
        sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
        with read_write(hydra_cfg):
            hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = saved_argv
        if hydra_cfg is not None:
            with read_write(hydra_cfg):
                hydra_cfg.run.dir = saved_dir
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class EpochBar(TQDMProgressBar):
    """Lightning's progress bar on one line for the whole fit: the epoch's training bar, with
    the validation metrics in its postfix, and no second bar for each validation pass (which
    leaves a line per epoch wherever the output is not a terminal: a log file, a pipe, CI)."""

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)


def _multirun_hydra_config() -> DictConfig | None:
    """The ``hydra`` node when this process runs a job of a Hydra multirun, else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):  # not under Hydra
        return None
    return hydra_cfg if hydra_cfg.mode == RunMode.MULTIRUN else None


@register_family
class NetworkLearner(Learner):
    """Fits a network through Lightning and predicts with the best-``val_auc`` checkpoint.

    Works unchanged on CPU, one GPU and DDP: every DDP process fits; prediction then runs
    in the rank-0 process on one device, so outputs are in DataModule order.
    """

    family = "network"
    arm = "raw ECG"
    explanation = "gradcam"
    representation = "window"
    model_file = "weights.pt"  # state dict + constructor arguments (models.base.save_weights)
    hashed = ("data.batch_size", "data.aux_targets", "data.teacher", "augment", "callbacks",
              *(f"trainer.{key}" for key in ("accelerator", "devices", "num_nodes", "strategy", "precision",
                                             "max_epochs", "min_epochs", "max_steps", "deterministic", "benchmark",
                                             "sync_batchnorm", "accumulate_grad_batches", "gradient_clip_val",
                                             "gradient_clip_algorithm", "limit_train_batches", "limit_val_batches",
                                             "val_check_interval", "check_val_every_n_epoch")))  # fmt: skip
    legacy_unhashed = ("data.num_workers", "data.pin_memory", "trainer.enable_progress_bar",
                       "trainer.enable_model_summary", "trainer.log_every_n_steps")  # fmt: skip
    unused = ("explain.permutation_repeats",)  # a feature model's explanation

    @classmethod
    def run_config(cls, cfg: DictConfig) -> DictConfig:
        """``cfg`` with the trainer settings the fit uses (:func:`trainer_settings`: the epoch
        budget of ``model.max_epochs`` folded into ``trainer.max_epochs``)."""
        config = copy.deepcopy(cfg)
        with open_dict(config), read_write(config):
            config.trainer = trainer_settings(cfg)
            config.model.pop("max_epochs", None)
        return config

    @classmethod
    def targets(cls, cfg: DictConfig) -> Targets:
        teacher = cfg.data.get("teacher")
        return Targets(list(cfg.model.get("aux_targets") or []),
                       OmegaConf.to_container(teacher, resolve=True) if teacher else None)  # fmt: skip

    @classmethod
    def check_representation(cls, representation: Representation) -> None:
        if not representation.for_networks:
            raise ConfigError(f"representation={representation.name}: a network reads a signal "
                              "(window or median_beat, optionally + features)")  # fmt: skip

    def fit(self, model: pl.LightningModule, data: FoldDataModule) -> dict[str, float]:
        checkpoint, callbacks = build_callbacks(self.cfg, self.run_dir / "checkpoints")
        if self.run_id:
            callbacks.append(MlflowEpochMetrics(self.run_id, self.uri))
        settings = trainer_settings(self.cfg)
        bar = progress_enabled(settings.get("enable_progress_bar", True))
        if bar:
            callbacks.append(EpochBar())
        trainer: pl.Trainer = build(
            settings, "trainer", callbacks=callbacks, logger=False, enable_progress_bar=bar,
            default_root_dir=str(self.run_dir),
        )  # fmt: skip
        with ddp_job_scope():
            trainer.fit(model, datamodule=data)
        if not trainer.is_global_zero:  # an extra DDP process: rank 0 selects and reports
            return {}
        if not checkpoint.best_model_path:
            raise EcgMiError(f"{type(model).__name__}: training ended without a checkpoint")
        self.model = type(model).load_from_checkpoint(checkpoint.best_model_path, map_location="cpu")
        state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
        return {"epochs_trained": trainer.current_epoch, "best_epoch": int(state["epoch"])}

    def predict(self, data: FoldDataModule, part: str) -> np.ndarray:
        trainer_cfg = self.cfg.trainer
        predictor = pl.Trainer(
            accelerator=trainer_cfg.accelerator, devices=1, precision=trainer_cfg.precision,
            logger=False, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        loader = getattr(data, f"{part}_dataloader")()
        return torch.cat(predictor.predict(self.model, dataloaders=loader)).float().numpy()

    def explain(self, data: FoldDataModule, probs: np.ndarray) -> tuple[dict[str, float], list[Artifact]]:
        """Grad-CAM on the test fold (see :func:`ecg_mi.explain.gradcam.explain_network`)."""
        from ecg_mi.explain.gradcam import explain_network

        return explain_network(self.model, data, probs, self.run_dir,
                               int(self.cfg.explain.n_examples), int(self.cfg.seed))  # fmt: skip

    def write_model(self, path: Path) -> None:
        self.model.save_weights(path)


# Format-1 packages (before the representation) pickled this class; they load as EcgMiPackage.
NetworkPackage = EcgMiPackage
