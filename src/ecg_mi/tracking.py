"""MLflow: store resolution, experiment set-up, params flattening, run life cycle.

Store: ``tracking.uri`` from the config, else ``$MLFLOW_TRACKING_URI``, else a SQLite file
``mlflow.db`` in the repo root. With a SQLite store, artifacts go to ``mlruns/`` beside the
database (not to the current directory), so runs launched from anywhere land together.

Concurrency: any number of processes (a joblib or SLURM sweep) may start together on a fresh
store. :func:`ensure_store` creates and migrates a SQLite store once, under a file lock
(``<db>.lock``), switches it to WAL (readers never block the one writer) and is called by every
route before its first request. Experiment creation tolerates a concurrent creator.

What the UI shows: experiments are tagged ``mlflow.experimentKind=custom_model_development`` (the
model-training tabs, not GenAI's); each fold run logs its packaged model as ``<model>-fold<k>``
(:func:`logged_model_uri` finds a run's model whatever its name); params are the resolved config
as the run used it (:func:`config_params`), each setting once.

Faults: every run is tagged with its owner (host, pid, process start time). A run whose owner
died without ending it (SIGKILL, OOM, node loss) stays RUNNING; :func:`close_stale_runs` marks
such runs KILLED before the same config and fold are trained again. A run is closed only when
its owner is provably gone: same host and that process no longer exists, or — for runs of
another host, whose processes cannot be checked — when it started more than
:data:`STALE_AFTER_S` ago (a lease longer than any job's time limit), so a legitimate job
running concurrently elsewhere is never closed under its feet.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import sqlite3
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow.entities import Metric, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from ecg_mi.cli import stop_signals_held
from ecg_mi.errors import ConfigError
from ecg_mi.paths import default_tracking_uri

log = logging.getLogger(__name__)

MAX_PARAM_CHARS = 500
#: The param holding the sha256 of a run's fold file (the split it was trained and tested on).
FOLD_HASH_PARAM = "data.fold_hash"
#: The experiment tag the MLflow UI reads to show an experiment's model-training tabs (runs,
#: models, charts) rather than the GenAI ones (traces, evaluations).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
#: The logged model of runs made before models were named ``<model>-fold<k>`` (and of MLflow 2
#: stores, where it is the run's artifact folder of that name).
LEGACY_MODEL_NAME = "model"
#: The environment variable holding the run id of the sweep's parent run (set by
#: :class:`ecg_mi.sweep.SweepParentRun` in the sweep's process; every launcher's jobs inherit it:
#: the same process, joblib's workers, submitit's local processes and SLURM jobs alike).
PARENT_RUN_ENV = "ECG_MI_SWEEP_PARENT_RUN"
#: The tag by which MLflow nests a run under its parent (the UI groups the runs table by it).
PARENT_RUN_TAG = "mlflow.parentRunId"


def resolve_tracking_uri(uri: str | None) -> str:
    """``uri`` when given, else the default store (see module docstring)."""
    return uri or default_tracking_uri()


def _artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns").as_uri()
    return None


# How long the set-up connection waits for a concurrent writer before "database is locked"
# (MLflow's own sessions set a 20 s busy timeout on every connection they open).
SQLITE_BUSY_TIMEOUT_MS = 60_000
# Store URIs this process has already made ready (creation and migration happen once).
_READY_STORES: set[str] = set()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///…`` URI (relative paths against the working dir,
    as SQLAlchemy reads them); None for other stores and in-memory databases."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def ensure_store(uri: str) -> str:
    """Make the store ``uri`` ready for concurrent use, once per process; return ``uri``.

    SQLite: refuse a database whose folder does not exist (MLflow would create the folders,
    even at the filesystem root), then create/migrate it and switch it to WAL under an
    exclusive lock on ``<db>.lock`` — MLflow's alembic migrations are not safe to run from two
    processes at once. PostgreSQL used directly: the same under an advisory lock. A tracking
    server (``http://…``) needs nothing here: it migrates its database when it starts.
    """
    if uri in _READY_STORES:
        return uri
    db = sqlite_path(uri)
    if db is not None:
        _prepare_sqlite(uri, db)
    elif uri.startswith("postgresql"):
        _prepare_postgresql(uri)
    _READY_STORES.add(uri)
    return uri


# Key of the PostgreSQL advisory lock held while MLflow creates/migrates its tables.
_PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"ecg-mi mlflow store").digest()[:4], "big")


def _prepare_postgresql(uri: str) -> None:
    """Create/migrate a PostgreSQL store used directly (not through a server) under a
    database-wide advisory lock, for the same reason as :func:`_prepare_sqlite`."""
    import sqlalchemy
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as con:
            con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                SqlAlchemyStore(uri, str(Path("mlruns").resolve()))
            finally:
                con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
    finally:
        engine.dispose()


def _prepare_sqlite(uri: str, db: Path) -> None:
    """Create, migrate and WAL-enable the SQLite store ``db`` under its file lock."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    if not db.parent.is_dir():
        raise ConfigError(
            f"tracking.uri={uri}: folder {db.parent} does not exist "
            "(create it, or point the store elsewhere)"
        )
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on a crash
        with contextlib.closing(sqlite3.connect(db, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)) as con:
            # Persistent in the file: every later connection, of any process, uses WAL.
            con.execute("PRAGMA journal_mode=WAL")
        SqlAlchemyStore(uri, _artifact_root(uri))  # creates the tables or migrates them


def tracking_client(uri: str) -> MlflowClient:
    """An :class:`MlflowClient` on ``uri`` once the store is ready (see :func:`ensure_store`)."""
    return MlflowClient(ensure_store(uri))


def ensure_experiment(name: str, uri: str) -> str:
    """Id of experiment ``name`` in the store ``uri``, created if absent.

    Two jobs of a sweep may both find it absent and both create it: the loser's "already
    exists" error is answered by reading the winner's experiment.
    """
    client = tracking_client(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        if any(found.tags.get(k) != v for k, v in EXPERIMENT_KIND.items()):  # made before the tag
            for key, value in EXPERIMENT_KIND.items():
                client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id
    root = _artifact_root(uri)
    try:
        return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None,
                                        tags=EXPERIMENT_KIND)  # fmt: skip
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:  # a real failure, not a lost race
            raise
        return found.experiment_id


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` → ``{"a.b": "1"}``; lists become their repr; long values are cut."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_CHARS]
    return flat


# A value that only repeats another key (``model.augment: ${augment}``): the key it names is logged.
_REFERENCE = re.compile(r"^\$\{[\w.]+\}$")


def config_params(cfg: DictConfig, leave_out: Collection[str] = ()) -> dict[str, str]:
    """The run's params: ``cfg`` resolved and flattened (:func:`flatten`), each setting once —
    without the keys whose value only refers to another key (``model.augment: ${augment}``: that
    key is logged), without ``_target_`` class paths (the names beside them say what was built)
    and without the subtrees ``leave_out`` names (dotted keys the run's family never reads)."""
    references = {k for k, v in flatten(OmegaConf.to_container(cfg, resolve=False)).items() if _REFERENCE.match(v)}
    dropped = references | set(leave_out)

    def kept(key: str) -> bool:
        parts = key.split(".")
        return parts[-1] != "_target_" and not {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & dropped

    return {k: v for k, v in flatten(OmegaConf.to_container(cfg, resolve=True)).items() if kept(k)}


def sweep_parent_tags() -> dict[str, str]:
    """``{"mlflow.parentRunId": <id>}`` inside a sweep that has a parent run, else ``{}``."""
    parent = os.environ.get(PARENT_RUN_ENV)
    return {PARENT_RUN_TAG: parent} if parent else {}


def redact(uri: str) -> str:
    """``uri`` without the password of its user part (``postgresql://u:***@host/db``)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def logged_model_uri(run_id: str, uri: str) -> str:
    """``runs:/<run id>/<name>`` of the model that run ``run_id`` logged (its newest, whatever its
    name: ``<model>-fold<k>``, ``<model>-ensemble``, ``model`` in older runs and in MLflow 2
    stores, which kept it as an artifact folder). A ``runs:/`` URI, unlike ``models:/<model id>``,
    also names a file inside the model (``…/MLmodel``)."""
    client = tracking_client(uri)
    run = client.get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    name = client.get_logged_model(outputs[-1].model_id).name if outputs else LEGACY_MODEL_NAME
    return f"runs:/{run_id}/{name}"


@contextlib.contextmanager
def mlflow_run(
    experiment: str, run_name: str, uri: str, tags: Mapping[str, str] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """Start a run; it ends FINISHED only if the body returns, FAILED if it raises an error,
    KILLED on anything else (a signal, Ctrl-C). It carries :func:`owner_tags`."""
    mlflow.set_tracking_uri(uri)
    experiment_id = ensure_experiment(experiment, uri)
    tags = {**owner_tags(), **(tags or {})}
    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
    try:
        yield run
    except Exception as exc:
        # submitit raises UncompletedJobError at a SLURM time limit, Optuna TrialPruned when its
        # pruner stops a trial (ecg_mi.pruning.OptunaPruning): stopped, not failed.
        stopped = type(exc).__name__ in ("UncompletedJobError", "TrialPruned")
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED if stopped else RunStatus.FAILED))
        raise
    except BaseException:  # Ctrl-C, SystemExit: the run did not fail on its own
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    mlflow.end_run("FINISHED")


def log_metrics_at(
    client: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int, model_id: str | None = None
) -> None:
    """Log several metrics at one step in a single request, linked to the logged model
    ``model_id`` when given (its page shows them); a stop signal waits for it
    (:func:`ecg_mi.cli.stop_signals_held`: training is stopped between epochs, not mid-write)."""
    now = int(time.time() * 1000)
    with stop_signals_held():
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, step, model_id=model_id) for k, v in metrics.items()])


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of a resolved config (a plain mapping): what a family's results depend on, as
    :meth:`ecg_mi.learners.Learner.hashed_config` gives it. Two runs with the same hash (and
    fold hash) compute the same thing."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def find_finished_run(
    experiment: str, uri: str, config_digests: Sequence[str], fold_hash: str
) -> mlflow.entities.Run | None:
    """The newest FINISHED fold run of ``experiment`` with one of these config hashes (the
    current one, and the one older releases computed for the same config) and this fold hash."""
    client = tracking_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = [run for digest in dict.fromkeys(config_digests) for run in client.search_runs(
        [found.experiment_id],
        f"attributes.status = 'FINISHED' and tags.config_hash = '{digest}' and params.`{FOLD_HASH_PARAM}` = '{fold_hash}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )]  # fmt: skip
    return max(runs, key=lambda run: run.info.start_time) if runs else None


# Tags naming the process that owns a run, so that a later process can tell a dead owner's
# RUNNING run (closed as KILLED) from one still in progress (left alone).
OWNER_HOST, OWNER_PID, OWNER_START = "owner.host", "owner.pid", "owner.start"
# Lease for runs of another host (their processes cannot be checked): a RUNNING run started
# longer ago than this is taken as dead. Longer than any sweep job's time limit.
STALE_AFTER_S = 72 * 3600


def _process_start(pid: int) -> str | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), which
    together with the pid names one process even after the pid is reused; None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


def owner_tags() -> dict[str, str]:
    """``owner.host``, ``owner.pid`` and ``owner.start`` of this process."""
    tags = {OWNER_HOST: socket.gethostname(), OWNER_PID: str(os.getpid())}
    start = _process_start(os.getpid())
    if start is not None:
        tags[OWNER_START] = start
    return tags


def _owner_alive(tags: Mapping[str, str]) -> bool:
    """Whether the process named by a run's owner tags (of this host) still exists."""
    pid = int(tags[OWNER_PID])
    if pid == os.getpid():  # this very process: alive only if the run is its active one
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    recorded, current = tags.get(OWNER_START), _process_start(pid)
    return recorded is None or current is None or recorded == current


def stale_reason(run: mlflow.entities.Run, now: float | None = None,
                 stale_after_s: float = STALE_AFTER_S) -> str | None:  # fmt: skip
    """Why the RUNNING ``run`` is abandoned by its owner, or None while it may be alive."""
    tags = run.data.tags
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run.info.run_id:
        return None
    host, pid = tags.get(OWNER_HOST), tags.get(OWNER_PID, "")
    if host == socket.gethostname() and pid.isdigit() and not _owner_alive(tags):
        return f"its owner, process {pid} on {host}, is gone"
    age = (now or time.time()) - run.info.start_time / 1000
    if age > stale_after_s:
        return f"started {age / 3600:.0f} h ago on {host or 'an unknown host'} (lease {stale_after_s / 3600:.0f} h)"
    return None


def close_stale_runs(
    experiment: str, uri: str, config_digests: Sequence[str], fold_hash: str,
    stale_after_s: float = STALE_AFTER_S,
) -> int:  # fmt: skip
    """Mark KILLED the RUNNING runs of ``experiment`` with one of these config hashes whose
    owner is gone (see :func:`stale_reason`); return how many. A run killed before it logged its
    fold hash matches any fold hash (its config hash already names model, fold and data)."""
    client = tracking_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0
    running = [run for digest in dict.fromkeys(config_digests) for run in client.search_runs(
        [found.experiment_id], f"attributes.status = 'RUNNING' and tags.config_hash = '{digest}'", max_results=1000,
    )]  # fmt: skip
    closed = 0
    for run in running:
        if run.data.params.get(FOLD_HASH_PARAM, fold_hash) != fold_hash:
            continue
        reason = stale_reason(run, stale_after_s=stale_after_s)
        if reason is None:
            continue
        client.set_tag(run.info.run_id, "killed_reason", f"stale: {reason}")
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        log.warning("run %s (%s) was left RUNNING; marked KILLED: %s",
                    run.info.run_id, run.info.run_name, reason)  # fmt: skip
        closed += 1
    return closed
