"""A sweep's MLflow parent run and console progress (issue 36, src/ecg_mi/sweep.py).

The callbacks are driven in-process here as Hydra drives them (on_multirun_start, the jobs,
on_multirun_end) on a real SQLite store; one slow test runs a real `train.py -m` through the
joblib launcher (jobs in worker processes)."""

from __future__ import annotations

import atexit
import csv
import io
import os
import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import REPO, TINY_RUN, compose_config
from ecg_mi.sweep import SweepParentRun, sweep_digest, sweep_jobs
from ecg_mi.tracking import PARENT_RUN_ENV

EXPERIMENT = "sweep"
FAST = [*TINY_RUN, "trainer.max_epochs=1", "explain.enabled=false", "data.n_folds=2", "model=logistic_regression",
        f"experiment_name={EXPERIMENT}"]  # fmt: skip


def _config(*overrides: str, sweep_dir: Path | None = None):
    """The train config with its ``hydra`` node, as a callback receives it."""
    from hydra import compose, initialize_config_dir

    extra = [f"hydra.sweep.dir={sweep_dir}"] if sweep_dir else []
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=[*FAST, *overrides, *extra], return_hydra_config=True)


def _sweep(tmp_path: Path, folds: tuple[int, ...], *overrides: str) -> str:
    """Run ``folds`` of logistic regression as a sweep with a parent run; its id."""
    from ecg_mi.train import run

    parent = SweepParentRun()
    parent.on_multirun_start(_config(*overrides, sweep_dir=tmp_path / "sweep"))
    try:
        for fold in folds:
            run(compose_config("train", *FAST, *overrides, f"fold={fold}"))  # a job's config: no hydra node
        parent.on_multirun_end(_config(*overrides))
    finally:
        atexit.unregister(parent._abandoned)
    return parent_id(MlflowClient(os.environ["MLFLOW_TRACKING_URI"]))


def parent_id(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    [parent] = client.search_runs([experiment.experiment_id], "tags.kind = 'sweep'")
    return parent.info.run_id


def _runs(client: MlflowClient, kind: str) -> list:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], f"tags.kind = '{kind}'")


@pytest.fixture(autouse=True)
def no_parent_in_env(monkeypatch):
    """A failing test must not leave its parent run id to the next one."""
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)


def test_sweep_runs_are_nested_under_a_finished_parent_run(tmp_path):
    parent = _sweep(tmp_path, (0, 1))
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    folds = _runs(client, "fold")
    assert sorted(r.info.run_name for r in folds) == ["logistic_regression-fold0", "logistic_regression-fold1"]
    assert {r.data.tags["mlflow.parentRunId"] for r in folds} == {parent}
    assert client.get_run(parent).info.status == "FINISHED"
    assert PARENT_RUN_ENV not in os.environ  # a later run outside the sweep is not nested


def test_parent_run_holds_the_overrides_and_the_summary_of_its_runs(tmp_path):
    parent = _sweep(tmp_path, (0, 1))
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    run = client.get_run(parent)
    assert run.data.params["model"] == "logistic_regression" and run.data.params["data.n_folds"] == "2"
    assert {a.path for a in client.list_artifacts(parent)} == {
        "multirun.yaml", "sweep_summary.csv", "sweep_summary.md", "sweep_auc.png"}  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(Path(client.download_artifacts(parent, "sweep_summary.csv")).read_text())))
    folds = {r.info.run_id: r for r in _runs(client, "fold")}
    assert {row["run_id"] for row in rows} == set(folds)
    for row in rows:
        for key in ("val_auc", "test_auc", "test_f1"):
            assert float(row[key]) == pytest.approx(folds[row["run_id"]].data.metrics[key])
    assert run.data.metrics["n_finished"] == 2
    assert 0 <= run.data.metrics["logistic_regression/val_auc_mean"] <= 1


def test_skip_finished_rerun_reopens_its_parent_and_adds_no_run(tmp_path):
    first = _sweep(tmp_path, (0,), "skip_finished=true")
    again = _sweep(tmp_path, (0,), "skip_finished=true")  # parent_id: exactly one parent
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    assert again == first
    assert len(_runs(client, "fold")) == 1
    run = client.get_run(first)
    assert run.info.status == "FINISHED" and run.data.tags["sweep.resumed"] == "1"


def test_sweep_that_fails_ends_its_parent_failed(tmp_path):
    parent = SweepParentRun()
    parent.on_multirun_start(_config(sweep_dir=tmp_path / "sweep"))
    parent._abandoned()  # what exit does when on_multirun_end never came (a job raised)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    assert client.get_run(parent_id(client)).info.status == "FAILED"


def test_sweep_identity_ignores_skip_finished_but_not_what_is_computed():
    def config(*task: str):
        return OmegaConf.create({"experiment_name": "e", "hydra": {"overrides": {"task": list(task)}}})

    assert sweep_digest(config("fold=0,1")) == sweep_digest(config("fold=0,1", "skip_finished=true"))
    assert sweep_digest(config("fold=0,1")) != sweep_digest(config("fold=0,1,2"))


@pytest.mark.parametrize(("sweeper", "task", "jobs"), [
    ({}, ["model=resnet,svm", "fold=0,1,2", "seed=1"], 6),
    ({"params": {"fold": "0,1"}}, ["model=resnet,svm"], 4),
    ({"n_trials": 30}, ["model=xgboost"], 30),
])  # fmt: skip
def test_sweep_jobs_counts_the_grid_or_the_trials(sweeper, task, jobs):
    config = OmegaConf.create({"hydra": {"sweeper": sweeper, "overrides": {"task": task}}})
    assert sweep_jobs(config) == jobs


@pytest.mark.slow  # two training jobs in joblib's worker processes (≈ 60 s on 2 loaded cores)
def test_joblib_sweep_nests_its_runs_and_prints_progress_and_no_noise(run_cli, tmp_path):
    from test_console import _noise

    done = run_cli("train.py", "-m", "fold=0,1", *FAST, "hydra/launcher=parallel", f"hydra.sweep.dir={tmp_path}/sweep")
    assert done.returncode == 0, done.stderr[-2000:]
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    parent = parent_id(client)
    assert {r.data.tags["mlflow.parentRunId"] for r in _runs(client, "fold")} == {parent}
    assert "sweep 2/2 runs done" in done.stdout
    sweep_lines = re.compile(r"^(\[.*\]\[HYDRA\] |sweep \d|\| |\|---|sweep parent run: )")
    assert [line for line in _noise(done) if not sweep_lines.match(line)] == []
