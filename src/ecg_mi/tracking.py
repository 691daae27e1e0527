"""MLflow: store resolution, experiment set-up, params flattening, run life cycle.

Store: ``tracking.uri`` from the config, else ``$MLFLOW_TRACKING_URI``, else a SQLite file
``mlflow.db`` in the repo root. With a SQLite store, artifacts go to ``mlruns/`` beside the
database (not to the current directory), so runs launched from anywhere land together.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, RunStatus
from mlflow.tracking import MlflowClient

from ecg_mi.paths import default_tracking_uri

MAX_PARAM_CHARS = 500
# Keys that say where or whether to log, not what is computed: left out of the config hash.
UNHASHED_KEYS = ("skip_finished", "tracking")


def resolve_tracking_uri(uri: str | None) -> str:
    """``uri`` when given, else the default store (see module docstring)."""
    return uri or default_tracking_uri()


def _artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns").as_uri()
    return None


def ensure_experiment(name: str, uri: str) -> str:
    """Id of experiment ``name`` in the store ``uri``, created if absent."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = _artifact_root(uri)
    return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)


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


@contextlib.contextmanager
def mlflow_run(
    experiment: str, run_name: str, uri: str, tags: Mapping[str, str] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """Start a run; it ends FINISHED only if the body returns, FAILED if it raises."""
    mlflow.set_tracking_uri(uri)
    experiment_id = ensure_experiment(experiment, uri)
    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=dict(tags or {}))
    try:
        yield run
    except Exception:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    except BaseException:  # Ctrl-C, SystemExit: the run did not fail on its own
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    mlflow.end_run("FINISHED")


def log_metrics_at(
    client: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int
) -> None:
    """Log several metrics at one step in a single request."""
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of a resolved config (a plain mapping) without :data:`UNHASHED_KEYS`: two runs
    with the same hash (and fold hash) compute the same thing."""
    kept = {k: v for k, v in config.items() if k not in UNHASHED_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def find_finished_run(
    experiment: str, uri: str, config_digest: str, fold_hash: str
) -> mlflow.entities.Run | None:
    """The newest FINISHED fold run of ``experiment`` with this config hash and fold hash."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        f"attributes.status = 'FINISHED' and tags.config_hash = '{config_digest}' "
        f"and params.fold_hash = '{fold_hash}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )  # fmt: skip
    return runs[0] if runs else None
