"""Optuna hyper-parameter search behind ``python train.py -m hparams_search=<model>``.

The sweeper (``hydra_plugins/ecg_mi_optuna_sweeper``, Hydra's ``hydra/sweeper=ecg_mi_optuna``)
asks Optuna for a trial, launches it as an ordinary ``train.py`` job through Hydra's launcher and
tells Optuna the job's return value, ``cfg.optimized_metric`` (``val_auc``: the validation part,
never the test fold). This module holds what the sweeper and the jobs share:

* **Where the study lives** (:func:`study_storage_url`): an RDB next to the tracking store, so
  every worker that trains into one store shares one study. MLflow and Optuna both keep an
  ``alembic_version`` table, so they cannot share one database: a SQLite store
  ``sqlite:///…/mlflow.db`` gets ``sqlite:///…/optuna.db`` beside it, a PostgreSQL store the
  database ``optuna`` on the same server (create it once: ``createdb optuna``). An MLflow server
  (``http://…``) hides its database: name the study's with ``hydra.sweeper.storage=…``.
* **Which trial a job is** (:data:`TRIAL_ENV`): the sweeper sets the study name and the trial's
  id and number in the job's environment (``hydra.job.env_set``); ``train.py`` tags its MLflow run
  with them (:func:`trial_tags`) and a network's pruning callback reports
  ``val_auc`` per epoch to that trial (:class:`ecg_mi.pruning.OptunaPruning`).
* **Faults** (:func:`recover_interrupted`): a trial whose process was killed (SIGTERM: the
  sweeper marks it at once; SIGKILL/OOM: its owner process is gone, checked as for MLflow runs in
  :mod:`ecg_mi.tracking`) is marked FAIL and its parameters queued again, so a resumed study
  re-runs it and never repeats a finished trial.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ecg_mi.errors import ConfigError
from ecg_mi.tracking import (
    OWNER_HOST,
    OWNER_PID,
    STALE_AFTER_S,
    _owner_alive,
    owner_tags,
    resolve_tracking_uri,
    sqlite_path,
)

if TYPE_CHECKING:
    import optuna

#: Environment of a trial's job: study name, trial id (storage key), trial number, and the study
#: database (set in the sweeper's own environment, never in a job's config: it may hold a password).
TRIAL_ENV = {"study": "ECG_MI_OPTUNA_STUDY", "trial_id": "ECG_MI_OPTUNA_TRIAL_ID",
             "trial": "ECG_MI_OPTUNA_TRIAL", "storage": "ECG_MI_OPTUNA_STORAGE"}  # fmt: skip
#: Study user attribute holding the pruner's config (jobs rebuild the pruner from it).
PRUNER_ATTR = "pruner"
#: Trial user attributes: why a trial was interrupted, which trial a re-queued one repeats.
INTERRUPTED_ATTR, RETRY_OF_ATTR, DUPLICATE_OF_ATTR = "interrupted", "retry_of", "duplicate_of"
# How long a SQLite connection waits for another worker's write before "database is locked" (s).
SQLITE_TIMEOUT_S = 60


def study_storage_url(storage: str | None, tracking_uri: str | None) -> str:
    """The study database: ``storage`` when given, else the one beside the tracking store
    ``tracking_uri`` (resolved as ``train.py`` does; see the module docstring)."""
    if storage:
        return str(storage)
    uri = resolve_tracking_uri(tracking_uri)
    db = sqlite_path(uri)
    if db is not None:
        return f"sqlite:///{db.with_name('optuna.db')}"
    if uri.startswith("postgresql"):
        return urlunsplit(urlsplit(uri)._replace(path="/optuna"))
    raise ConfigError(f"hydra.sweeper.storage: the tracking store {uri.split('@')[-1]} is not a database "
                      "the study can sit beside; name one, e.g. hydra.sweeper.storage=postgresql://host/optuna")  # fmt: skip


@contextlib.contextmanager
def _sqlite_lock(url: str) -> Iterator[None]:
    """An exclusive lock on ``<db>.lock`` for a SQLite study database (nothing for others):
    Optuna creates its tables on first use, which two workers starting together would race."""
    db = sqlite_path(url)
    if db is None:
        yield
        return
    if not db.parent.is_dir():
        raise ConfigError(f"hydra.sweeper.storage={url}: folder {db.parent} does not exist")
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on a crash
        with contextlib.closing(sqlite3.connect(db, timeout=SQLITE_TIMEOUT_S)) as con:
            con.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
        yield


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url``, its tables created once under a lock (SQLite)."""
    import optuna

    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    with _sqlite_lock(url):
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def open_study(name: str, url: str, direction: str, pruner: Mapping[str, Any] | None = None) -> optuna.Study:
    """Create study ``name`` at ``url``, or load it when a worker already did (``load_if_exists``);
    the pruner's config is kept in the study so every trial's job prunes alike."""
    import optuna

    storage = open_storage(url)
    with _sqlite_lock(url):
        study = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                    pruner=build_pruner(pruner), load_if_exists=True)  # fmt: skip
        if dict(pruner or {}) != study.user_attrs.get(PRUNER_ATTR, {}):
            study.set_user_attr(PRUNER_ATTR, dict(pruner or {}))
    return study


def build_pruner(config: Mapping[str, Any] | None) -> optuna.pruners.BasePruner:
    """The pruner a config names (``{_target_: optuna.pruners.MedianPruner, …}``); none = never prune."""
    import optuna
    from hydra.utils import instantiate

    if not config:
        return optuna.pruners.NopPruner()
    return instantiate(dict(config))


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial ``number`` of a study seeded ``seed``: one study replays
    exactly, a resumed study or a second worker draws afresh (their trial numbers differ)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:4], "big")


def trial_tags() -> dict[str, str]:
    """MLflow tags naming the Optuna trial this job is (``optuna.study``, ``optuna.trial``), or
    nothing outside a search."""
    study, number = os.environ.get(TRIAL_ENV["study"]), os.environ.get(TRIAL_ENV["trial"])
    return {"optuna.study": study, "optuna.trial": number} if study and number else {}


def stale_trial_reason(trial: optuna.trial.FrozenTrial, now: float | None = None,
                       stale_after_s: float = STALE_AFTER_S) -> str | None:  # fmt: skip
    """Why the RUNNING ``trial`` is abandoned by the sweeper that asked for it, or None while that
    may be alive: the same rule as for MLflow runs (:func:`ecg_mi.tracking.stale_reason`)."""
    attrs = {k: str(v) for k, v in trial.user_attrs.items()}
    host, pid = attrs.get(OWNER_HOST), attrs.get(OWNER_PID, "")
    if host == owner_tags()[OWNER_HOST] and pid.isdigit() and not _owner_alive(attrs):
        return f"its sweeper, process {pid} on {host}, is gone"
    started = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
    age = (now or time.time()) - started
    if age > stale_after_s:
        return f"started {age / 3600:.0f} h ago on {host or 'an unknown host'}"
    return None


def mark_owner(study: optuna.Study, trial: optuna.Trial) -> None:
    """Tag ``trial`` with this process (host, pid, start) so a later worker can tell whether it died."""
    for key, value in owner_tags().items():
        study._storage.set_trial_user_attr(trial._trial_id, key, value)


def interrupt(study: optuna.Study, trial_id: int, reason: str) -> bool:
    """Mark the RUNNING trial ``trial_id`` FAIL (``interrupted``: ``reason``) and queue its
    parameters again; False when another worker got there first or it already finished."""
    import optuna

    storage = study._storage
    trial = storage.get_trial(trial_id)
    if trial.state != optuna.trial.TrialState.RUNNING:
        return False
    try:
        storage.set_trial_user_attr(trial_id, INTERRUPTED_ATTR, reason)
        if not storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    if trial.params:  # skip_if_exists would find the failed trial itself: no, one retry per trial
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF_ATTR: trial.number})
    return True


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Numbers of the RUNNING trials whose sweeper is gone, now FAIL with their parameters queued."""
    import optuna

    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        reason = stale_trial_reason(trial)
        if reason is not None and interrupt(study, trial._trial_id, f"stale: {reason}"):
            recovered.append(trial.number)
    return recovered
