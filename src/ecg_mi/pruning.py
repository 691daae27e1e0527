"""Pruning of network trials: :class:`OptunaPruning`, a Lightning callback (a module of its own
so that the sweeper, which imports :mod:`ecg_mi.search`, does not load Lightning)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytorch_lightning as pl

from ecg_mi.search import PRUNER_ATTR, TRIAL_ENV, build_pruner, open_storage

if TYPE_CHECKING:
    import optuna


class OptunaPruning(pl.Callback):
    """Report ``monitor`` after each validation to the job's Optuna trial and stop the fit when
    the study's pruner says so, by raising ``optuna.TrialPruned``: ``train.py`` ends the MLflow
    run KILLED with tag ``optuna.pruned`` (the epoch), the sweeper tells the trial PRUNED.
    Outside a search (no :data:`TRIAL_ENV`) it does nothing, so a config may always list it."""

    def __init__(self, monitor: str = "val_auc") -> None:
        self.monitor = monitor
        self._trial: optuna.Trial | None = None

    def _job_trial(self) -> optuna.Trial | None:
        if self._trial is None and os.environ.get(TRIAL_ENV["trial_id"]):
            import optuna

            storage = open_storage(os.environ[TRIAL_ENV["storage"]])
            study = optuna.load_study(study_name=os.environ[TRIAL_ENV["study"]], storage=storage)
            study.pruner = build_pruner(study.user_attrs.get(PRUNER_ATTR))
            self._trial = optuna.Trial(study, int(os.environ[TRIAL_ENV["trial_id"]]))
        return self._trial

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.monitor not in trainer.callback_metrics:
            return
        trial = self._job_trial()
        if trial is None:
            return
        epoch = trainer.current_epoch
        trial.report(float(trainer.callback_metrics[self.monitor]), step=epoch)
        if trial.should_prune():
            import mlflow
            import optuna

            if mlflow.active_run() is not None:
                mlflow.set_tag("optuna.pruned", str(epoch))
            raise optuna.TrialPruned(f"trial {trial.number} pruned after epoch {epoch}")

