"""Collect the finished fold runs of one MLflow experiment and their predictions."""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ecg_mi.errors import DataError, InputError
from ecg_mi.learners import names_of
from ecg_mi.tracking import FOLD_HASH_PARAM, tracking_client
from ecg_mi.train import PREDICTION_FILES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    """Fold runs (one row per model × fold) and their pooled test predictions."""

    runs: pd.DataFrame  # model, fold, run_id, fold_hash, n_folds, metrics..., seconds (wall time)
    predictions: pd.DataFrame  # model + predictions.csv columns
    incomplete: set[str]  # models missing folds (kept only with allow_incomplete)
    # Models with fold runs but none FINISHED (kept out of the tables, named in a warning).
    missing: set[str] = field(default_factory=set)
    # ``{model}-fold{fold} STATUS (run id)`` of every fold run left out for not being FINISHED.
    left_out: list[str] = field(default_factory=list)
    # model + val_predictions.csv columns, ``fold`` being the outer fold of the run that scored
    # the record; only models every one of whose runs logged the file (runs logged before it
    # existed did not).
    val_predictions: pd.DataFrame = field(default_factory=pd.DataFrame)

    def display(self, model: str) -> str:
        """The report's name of ``model`` (its runs' ``display``)."""
        return self._name(model, "display")

    def arm(self, model: str) -> str:
        """The report's family column of ``model`` (its runs' ``arm``)."""
        return self._name(model, "arm")

    def _name(self, model: str, key: str) -> str:
        rows = self.runs[self.runs["model"] == model]
        if key in rows and rows[key].notna().any():
            return str(rows[key].dropna().iloc[0])
        return names_of(model)[key]


def _experiment(experiment: str, uri: str) -> tuple[MlflowClient, mlflow.entities.Experiment]:
    """The store's client and experiment ``experiment``; InputError naming those it has."""
    client = tracking_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise InputError(f"no MLflow experiment {experiment!r} in {uri}; experiments there: {names}")
    return client, found


def collect(experiment: str, uri: str, allow_incomplete: bool = False,
            models: Collection[str] | None = None) -> Sweep:  # fmt: skip
    """Finished fold runs of ``experiment`` (of ``models`` only, when given: DataError naming the
    models there when one has no finished run); checks folds and fold hashes (see module doc).

    Runs RUNNING (in progress, or abandoned by a dead process), FAILED or KILLED are left out,
    and named in one warning; a model none of whose runs finished is reported as missing.
    """
    client, found = _experiment(experiment, uri)
    every = client.search_runs(
        [found.experiment_id], "tags.kind = 'fold'",
        order_by=["attributes.start_time DESC"], max_results=50_000,
    )  # fmt: skip
    if models is not None:
        known = sorted({_run_model(r) for r in every if r.info.status == "FINISHED"})
        for model in models:
            if model not in known:
                raise DataError(f"experiment {experiment!r} has no finished fold run of model {model!r}; "
                                f"models there: {known}")  # fmt: skip
        every = [r for r in every if _run_model(r) in models]
    runs = [r for r in every if r.info.status == "FINISHED"]
    left_out, no_finished = _left_out(every, runs, experiment, allow_incomplete)
    if not runs:
        raise DataError(f"experiment {experiment!r} has no finished fold runs")
    rows = [
        {
            "model": r.data.params["model"], "fold": int(r.data.params["fold"]), "run_id": r.info.run_id,
            **names_of(r.data.params["model"], r.data.tags),
            "fold_hash": r.data.params.get(FOLD_HASH_PARAM), "n_folds": int(r.data.params.get("data.n_folds", 5)),
            "data": r.data.params.get("data.name"), "sample_rate": r.data.params.get("data.sample_rate"),
            # A tag since the UI's params hold settings only; a param in older runs; None before calibration.
            "calibration": r.data.tags.get("calibration_method", r.data.params.get("calibration.method")),
            **{k: r.data.metrics.get(k) for k in ("test_auc", "test_f1", "val_auc", "test_threshold",
                                                  "test_threshold_calibrated")},
            "seconds": run_seconds(r),
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
                raise DataError(missing_folds_message(experiment, model, sorted(missing), len(expected)))
            log.warning("model %s lacks fold(s) %s: marked incomplete", model, sorted(missing))
            incomplete.add(model)
    predictions = pd.concat(
        [_predictions(uri, row.run_id, "test").assign(model=row.model) for row in table.itertuples()],
        ignore_index=True,
    )
    return Sweep(
        table.sort_values(["model", "fold"]).reset_index(drop=True), predictions, incomplete,
        no_finished, left_out, _val_predictions(uri, table),
    )  # fmt: skip


def model_fold_runs(experiment: str, uri: str, model: str) -> list[mlflow.entities.Run]:
    """The newest FINISHED fold run of ``model`` for each of its folds, in fold order.

    DataError when the experiment has no finished fold run of ``model`` (naming the models
    it has), when folds are missing, or when the folds come from different fold files.
    """
    client, found = _experiment(experiment, uri)
    finished = client.search_runs(
        [found.experiment_id], "tags.kind = 'fold' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=50_000,
    )  # fmt: skip
    runs = [r for r in finished if _run_model(r) == model]
    if not runs:
        known = sorted({_run_model(r) for r in finished})
        raise DataError(f"experiment {experiment!r} has no finished fold run of model {model!r}; "
                        f"models there: {known}")  # fmt: skip
    by_fold: dict[int, mlflow.entities.Run] = {}
    for run in runs:  # newest first: a re-run replaces the older run of its fold
        by_fold.setdefault(int(run.data.params["fold"]), run)
    n_folds = int(runs[0].data.params.get("data.n_folds", 5))
    missing = sorted(set(range(n_folds)) - set(by_fold))
    if missing:
        raise DataError(missing_folds_message(experiment, model, missing, n_folds))
    hashes = {r.data.params.get(FOLD_HASH_PARAM) for r in by_fold.values()}
    if len(hashes) > 1:
        raise DataError(
            f"model {model!r} in {experiment!r}: its fold runs come from different fold files"
        )
    return [by_fold[f] for f in sorted(by_fold)]


def missing_folds_message(experiment: str, model: str, missing: list[int], n_folds: int) -> str:
    """How to proceed when ``model`` lacks finished fold runs ``missing`` of ``n_folds``: the
    train command of those folds, or ``allow_incomplete=true`` to use the folds there are."""
    name, _, representation = model.partition("@")  # model_label: <name>@<representation>
    chosen = f" representation={representation}" if representation else ""
    folds = ",".join(map(str, missing))
    return (f"model {model!r} lacks finished fold run(s) {missing} of {n_folds} in {experiment!r}: train them with "
            f"the sweep's other settings (python train.py -m model={name}{chosen} fold={folds} "
            f"experiment_name={experiment} ...), or pass allow_incomplete=true to use the folds it has")


def run_seconds(run: mlflow.entities.Run) -> float:
    """A run's wall time in seconds, start to end (NaN while it has no end)."""
    end, start = run.info.end_time, run.info.start_time
    return (end - start) / 1000 if end and start else float("nan")


def _run_model(run: mlflow.entities.Run) -> str:
    """A fold run's model: its param, else its tag (a run killed before logging params)."""
    return run.data.params.get("model") or run.data.tags.get("model") or "?"


def _left_out(every: list, finished: list, experiment: str,
              allow_incomplete: bool) -> tuple[list[str], set[str]]:  # fmt: skip
    """Name the fold runs that are not FINISHED (one warning line) and the models that have
    no FINISHED run at all (an error, or with ``allow_incomplete`` a warning)."""
    left_out = [
        f"{r.info.run_name} {r.info.status} ({r.info.run_id})"
        for r in every if r.info.status != "FINISHED"
    ]  # fmt: skip
    if left_out:
        log.warning("experiment %s: left out %d fold run(s) not FINISHED: %s",
                    experiment, len(left_out), ", ".join(left_out))  # fmt: skip
    missing = {_run_model(r) for r in every} - {_run_model(r) for r in finished}
    if missing:
        message = (f"model(s) {sorted(missing)} have no FINISHED fold run in {experiment!r} "
                   f"(left out: {', '.join(left_out)})")  # fmt: skip
        if not allow_incomplete:
            raise DataError(message + "; re-run them, or pass allow_incomplete=true")
        log.warning("%s: reported as missing", message)
    return left_out, missing


@functools.cache
def _downloads() -> tempfile.TemporaryDirectory:
    """This process's folder for downloaded artifacts, removed when the process ends."""
    return tempfile.TemporaryDirectory(prefix="ecg_mi_artifacts_")


def fetch(uri: str, run_id: str, artifact_path: str) -> str:
    """Local path of one artifact of a run (downloaded quietly, into a folder of its own inside
    this process's download folder, so no download outlives the process)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=artifact_path, tracking_uri=uri, dst_path=tempfile.mkdtemp(dir=_downloads().name)
    )


def fold_tables(sweep: Sweep, uri: str, model: str, artifact_path: str) -> list[pd.DataFrame]:
    """The CSV ``artifact_path`` of each of ``model``'s fold runs that has it (runs logged
    with ``explain.enabled=false`` or before the artifact existed are skipped)."""
    tables = []
    for run_id in sweep.runs.loc[sweep.runs["model"] == model, "run_id"].dropna():  # ensembles: no run
        try:
            tables.append(pd.read_csv(fetch(uri, run_id, artifact_path)))
        except (MlflowException, OSError):
            continue
    return tables


def _predictions(uri: str, run_id: str, part: str) -> pd.DataFrame:
    return pd.read_csv(fetch(uri, run_id, PREDICTION_FILES[part]), dtype={"record_id": str, "patient_id": str})


def _val_predictions(uri: str, table: pd.DataFrame) -> pd.DataFrame:
    """The validation predictions of every model all of whose runs logged them."""
    tables = []
    for model, group in table.groupby("model"):
        try:
            parts = [_predictions(uri, row.run_id, "val").assign(model=model, fold=row.fold)
                     for row in group.itertuples()]  # fmt: skip
        except (MlflowException, OSError):  # a run logged before validation predictions were
            continue
        tables.extend(parts)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
