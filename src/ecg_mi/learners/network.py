"""The network family: LightningModules on fold-split signals ``[B, 12, L]``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, WeightAveraging

from ecg_mi.cli import stop_signals_held
from ecg_mi.data.beats import maps_on_strips, median_beats
from ecg_mi.data.datamodule import SignalDataModule
from ecg_mi.errors import ConfigError, EcgMiError
from ecg_mi.features import signal_features
from ecg_mi.features.scaling import apply_scaling
from ecg_mi.learners.base import Artifact, Learner, fold_settings, register_family
from ecg_mi.models.registry import get_model_class
from ecg_mi.packaging import (
    BATCH,
    EcgMiPackage,
    Member,
    Packaged,
    check_feature_version,
    check_input,
    window_length,
)
from ecg_mi.tracking import log_metrics_at
from ecg_mi.utils.config import build

log = logging.getLogger(__name__)

CHECKPOINT = "best.ckpt"
WEIGHTS = "weights.pt"  # the packaged model's weights (state dict + constructor arguments)


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
    # Loader and console settings: same batches, same numbers.
    unhashed = ("data.num_workers", "data.pin_memory", "trainer.enable_progress_bar",
                "trainer.enable_model_summary", "trainer.log_every_n_steps")  # fmt: skip

    @classmethod
    def datamodule(cls, cfg: DictConfig) -> SignalDataModule:
        data = cfg.data
        network = get_model_class(cfg.model.name)  # what the network reads (ECGClassifier's defaults)
        teacher = data.get("teacher")
        return SignalDataModule(batch_size=data.batch_size, num_workers=data.num_workers,
                                pin_memory=data.pin_memory, aux_targets=list(cfg.model.get("aux_targets") or []),
                                input_kind=getattr(network, "input_kind", "signal"), teacher=OmegaConf.to_container(teacher, resolve=True) if teacher else None,
                                clinical=getattr(network, "clinical_features", False), **fold_settings(cfg))  # fmt: skip

    def fit(self, model: pl.LightningModule, data: SignalDataModule) -> dict[str, float]:
        checkpoint, callbacks = build_callbacks(self.cfg, self.run_dir / "checkpoints")
        if self.run_id:
            callbacks.append(MlflowEpochMetrics(self.run_id, self.uri))
        trainer: pl.Trainer = build(
            trainer_settings(self.cfg), "trainer", callbacks=callbacks, logger=False,
            default_root_dir=str(self.run_dir),
        )  # fmt: skip
        with ddp_job_scope():
            trainer.fit(model, datamodule=data)
        if not trainer.is_global_zero:  # an extra DDP process: rank 0 selects and reports
            return {}
        if not checkpoint.best_model_path:
            raise EcgMiError(f"{type(model).__name__}: training ended without a checkpoint")
        self.load(Path(checkpoint.best_model_path))
        state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
        return {"epochs_trained": trainer.current_epoch, "best_epoch": int(state["epoch"])}

    def predict(self, data: SignalDataModule, part: str) -> np.ndarray:
        trainer_cfg = self.cfg.trainer
        predictor = pl.Trainer(
            accelerator=trainer_cfg.accelerator, devices=1, precision=trainer_cfg.precision,
            logger=False, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        loader = getattr(data, f"{part}_dataloader")()
        return torch.cat(predictor.predict(self.model, dataloaders=loader)).float().numpy()

    def explain(self, data: SignalDataModule, probs: np.ndarray) -> tuple[dict[str, float], list[Artifact]]:
        """Grad-CAM on the test fold (see :func:`ecg_mi.explain.network.explain_network`)."""
        from ecg_mi.explain.network import explain_network

        return explain_network(self.model, data, probs, self.run_dir,
                               int(self.cfg.explain.n_examples), int(self.cfg.seed))  # fmt: skip

    def save(self) -> list[Path]:
        return [self.run_dir / "checkpoints" / CHECKPOINT]

    def load(self, path: Path) -> Any:
        model_cls = get_model_class(self.cfg.model.name)
        self.model = model_cls.load_from_checkpoint(str(path), map_location="cpu")
        return self.model

    def package(self, data: SignalDataModule, threshold: float) -> Packaged:
        """The selected network's weights (a state dict, no optimiser state) and the
        training part's per-lead mean/std (mV) as a :class:`NetworkPackage`."""
        target = self.run_dir / "package" / WEIGHTS
        target.parent.mkdir(parents=True, exist_ok=True)
        save_weights(self.model, target)
        data.setup()  # mean/std are fitted on the training part in setup()
        settings = {"mean": np.ravel(data.mean).tolist(), "std": np.ravel(data.std).tolist()}
        info = {**self.package_info(threshold), "input_kind": type(self.model).input_kind}
        if data.clinical:  # a hybrid: the features' training median and IQR travel with it
            center, scale = data.clinical_scaling
            settings.update(clinical_center=center.tolist(), clinical_scale=scale.tolist())
            info["clinical_features"] = True
        package = NetworkPackage(info, [Member("weights", settings)])
        return Packaged(package, {"weights": str(target)})


def save_weights(model: pl.LightningModule, path: Path) -> None:
    """``model``'s registry name, constructor arguments and CPU state dict: plain data that
    :func:`load_weights` reads with ``weights_only=True`` (no pickled code runs)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"model": model.model_name, "hparams": dict(model.hparams), "state_dict": state}, path)


def load_weights(path: Path) -> pl.LightningModule:
    """The network saved by :func:`save_weights`, in eval mode on the CPU."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    network = get_model_class(saved["model"])(**saved["hparams"])
    try:
        network.load_state_dict(saved["state_dict"])
    except RuntimeError as exc:  # the installed architecture differs from the packaged one
        first = str(exc).splitlines()[0]
        raise EcgMiError(f"{path}: weights do not fit the installed {saved['model']!r} ({first})") from None
    return network.eval()


class NetworkPackage(EcgMiPackage):
    """Networks: each 10 s window turned into the network's input (itself, or its median
    beat: ``info["input_kind"]``), each lead standardised with the member's training
    mean/std, then the sigmoid of the network's logit; Grad-CAM on the same input, laid
    back on the window."""

    family = "network"

    def load_member(self, path: Path, member: Member) -> pl.LightningModule:
        return load_weights(path)

    @property
    def on_beats(self) -> bool:
        """Whether the network reads median beats (packages made before them read strips)."""
        return self.info.get("input_kind", "signal") == "median_beat"

    @property
    def reads_features(self) -> bool:
        """Whether the network is a hybrid that also reads the 408 clinical features."""
        return bool(self.info.get("clinical_features"))

    def check_compatible(self) -> None:
        super().check_compatible()
        if self.reads_features:
            check_feature_version(self.info)

    def prepare(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The network input of windows ``x`` ``[N, 12, L]`` mV (median beats when asked; a
        window without two usable beats gets the all-zero beat, with a warning counting them)
        and, for a hybrid, the windows' 408 features (None otherwise)."""
        fs = float(self.info["sample_rate"])
        features = signal_features(x, fs) if self.reads_features else None
        if not self.on_beats:
            return x, features
        beats, n_without = median_beats(x, fs)
        if n_without:
            log.warning("%d of %d windows have fewer than 2 usable beats: scored on an all-zero median beat",
                        n_without, len(x))  # fmt: skip
        return beats, features

    @staticmethod
    def standardise(prepared: tuple[np.ndarray, np.ndarray | None], member: Member) -> tuple[np.ndarray, ...]:
        """The member's inputs: ``(x - mean) / std`` per lead, float32 as in
        :class:`SignalDataset`, and a hybrid's features scaled with its training median/IQR."""
        x, features = prepared
        mean = np.asarray(member.settings["mean"], dtype=np.float64).astype(np.float32)[:, None]
        std = np.asarray(member.settings["std"], dtype=np.float64).astype(np.float32)[:, None]
        if features is None:
            return ((x - mean) / std,)
        center, scale = (np.asarray(member.settings[k], dtype=np.float64) for k in ("clinical_center", "clinical_scale"))
        return (x - mean) / std, apply_scaling(features, center, scale)

    @staticmethod
    def batches(inputs: tuple[np.ndarray, ...]) -> Iterator[tuple[torch.Tensor, ...]]:
        """``inputs`` in tensors of :data:`BATCH` records."""
        for i in range(0, len(inputs[0]), BATCH):
            yield tuple(torch.from_numpy(np.ascontiguousarray(a[i : i + BATCH])) for a in inputs)

    def member_probs(self, model: pl.LightningModule, member: Member, prepared: tuple) -> np.ndarray:
        with torch.inference_mode():
            chunks = [torch.sigmoid(model(*batch).float()) for batch in self.batches(self.standardise(prepared, member))]
        return torch.cat(chunks).numpy().astype(np.float64)

    def gradcam(self, x: np.ndarray) -> np.ndarray:
        """Grad-CAM ``[N, L]`` in [0, 1] (:func:`ecg_mi.explain.gradcam.gradcam` on each
        member's standardised input), averaged over the members; ``x`` as for predict."""
        from ecg_mi.explain.gradcam import gradcam  # captum: imported only when asked

        x = check_input(x, window_length(self.info))
        prepared = self.prepare(x)
        maps = []
        for model, member in zip(self.loaded, self.members, strict=True):
            batches = self.batches(self.standardise(prepared, member))
            maps.append(np.concatenate([gradcam(model, signal.clone(), *rest) for signal, *rest in batches]))
        cam = np.mean(maps, axis=0)
        return maps_on_strips(cam, x, float(self.info["sample_rate"])) if self.on_beats else cam
