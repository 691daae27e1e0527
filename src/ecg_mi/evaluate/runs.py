"""Collect the finished fold runs of one MLflow experiment and their predictions."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ecg_mi.errors import DataError, InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    """Fold runs (one row per model × fold) and their pooled test predictions."""

    runs: pd.DataFrame  # model, fold, run_id, fold_hash, n_folds, metrics...
    predictions: pd.DataFrame  # model + predictions.csv columns
    incomplete: set[str]  # models missing folds (kept only with allow_incomplete)


def collect(experiment: str, uri: str, allow_incomplete: bool = False) -> Sweep:
    """Finished fold runs of ``experiment``; checks folds and fold hashes (see module doc)."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise InputError(
            f"no MLflow experiment {experiment!r} in {uri}; experiments there: {names}"
        )
    runs = client.search_runs(
        [found.experiment_id], "attributes.status = 'FINISHED' and tags.kind = 'fold'",
        order_by=["attributes.start_time DESC"], max_results=50_000,
    )  # fmt: skip
    if not runs:
        raise DataError(f"experiment {experiment!r} has no finished fold runs")
    rows = [
        {
            "model": r.data.params["model"], "fold": int(r.data.params["fold"]), "run_id": r.info.run_id,
            "fold_hash": r.data.params.get("fold_hash"), "n_folds": int(r.data.params.get("data.n_folds", 5)),
            "data": r.data.params.get("data.name"), "sample_rate": r.data.params.get("data.sample_rate"),
            **{k: r.data.metrics.get(k) for k in ("test_auc", "test_f1", "val_auc", "test_threshold")},
        }
        for r in runs
    ]  # fmt: skip
    table = pd.DataFrame(rows).drop_duplicates(
        ["model", "fold"], keep="first"
    )  # newest re-run wins
    hashes = table["fold_hash"].unique()
    if len(hashes) > 1:
        per_model = table.groupby("fold_hash")["model"].unique().to_dict()
        message = f"experiment {experiment!r} mixes fold files: {per_model}"
        if not allow_incomplete:
            raise DataError(message + " (different data or cohorts are never compared silently)")
        log.warning("%s; keeping the most common", message)
        table = table[table["fold_hash"] == table["fold_hash"].mode()[0]]
    settings = table[["data", "sample_rate"]].drop_duplicates()
    if len(settings) > 1 and not allow_incomplete:
        raise DataError(
            f"experiment {experiment!r} mixes data settings: {settings.to_dict('records')}"
        )
    incomplete = set()
    for model, group in table.groupby("model"):
        expected = set(range(int(group["n_folds"].iloc[0])))
        missing = expected - set(group["fold"])
        if missing:
            if not allow_incomplete:
                raise DataError(f"model {model!r} lacks fold(s) {sorted(missing)} in {experiment!r} "
                                "(run them, or pass allow_incomplete=true)")  # fmt: skip
            log.warning("model %s lacks fold(s) %s: marked incomplete", model, sorted(missing))
            incomplete.add(model)
    predictions = pd.concat(
        [_predictions(uri, row.run_id).assign(model=row.model) for row in table.itertuples()],
        ignore_index=True,
    )
    return Sweep(
        table.sort_values(["model", "fold"]).reset_index(drop=True), predictions, incomplete
    )


def fetch(uri: str, run_id: str, artifact_path: str) -> str:
    """Local path of one artifact of a run (downloaded quietly)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=artifact_path, tracking_uri=uri
    )


def fold_tables(sweep: Sweep, uri: str, model: str, artifact_path: str) -> list[pd.DataFrame]:
    """The CSV ``artifact_path`` of each of ``model``'s fold runs that has it (runs logged
    with ``explain.enabled=false`` or before the artifact existed are skipped)."""
    tables = []
    for run_id in sweep.runs.loc[sweep.runs["model"] == model, "run_id"]:
        try:
            tables.append(pd.read_csv(fetch(uri, run_id, artifact_path)))
        except (MlflowException, OSError):
            continue
    return tables


def _predictions(uri: str, run_id: str) -> pd.DataFrame:
    return pd.read_csv(
        fetch(uri, run_id, "predictions.csv"), dtype={"record_id": str, "patient_id": str}
    )
