"""The MLflow store under concurrency: created and migrated once under a lock, experiments
created by racing processes, stale RUNNING runs closed only when their owner is gone."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO
from ecg_mi.errors import ConfigError
from ecg_mi.tracking import (
    OWNER_HOST,
    OWNER_PID,
    OWNER_START,
    _process_start,
    close_stale_runs,
    ensure_store,
)

TINY_JOB = [
    "data.source.n_records=120", "data.batch_size=32", "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false", "explain.enabled=false", "tracking.log_model=false",
]  # fmt: skip

# Each process: make the store ready, create the shared experiment, log a finished run.
LOG_ONE_RUN = """
import sys, mlflow
from ecg_mi.tracking import mlflow_run
with mlflow_run("race", f"job{sys.argv[2]}", sys.argv[1], {"kind": "fold"}):
    mlflow.log_metric("x", 1.0)
"""


def _start_together(
    commands: list[list[str]], cwd: Path = REPO
) -> list[subprocess.CompletedProcess]:
    """Start every command at once, then wait for all (bounded)."""
    processes = [subprocess.Popen(c, cwd=cwd, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=os.environ.copy()) for c in commands]  # fmt: skip
    done = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=400)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def _finished_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'")


def test_missing_store_folder_is_a_config_error_and_creates_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path}/absent/dir/mlflow.db"
    with pytest.raises(ConfigError, match=r"tracking.uri=.*: folder .*absent/dir does not exist"):
        ensure_store(uri)
    assert not (tmp_path / "absent").exists()


@pytest.mark.slow
def test_cli_missing_store_folder_is_one_line_and_exit_2(run_cli, tmp_path):
    done = run_cli("train.py", *TINY_JOB, f"tracking.uri=sqlite:///{tmp_path}/nowhere/x.db",
                   f"hydra.run.dir={tmp_path}/run")  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"error: tracking.uri=sqlite:///{tmp_path}/nowhere/x.db: folder" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "nowhere").exists()


def test_store_is_created_in_wal_mode_once(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert ensure_store(uri) == uri and ensure_store(uri) == uri  # second call: cached
    with sqlite3.connect(tmp_path / "mlflow.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in con.execute("select name from sqlite_master")}
    assert {"experiments", "runs", "metrics", "alembic_version"} <= tables
    assert not any(t.startswith("_alembic_tmp") for t in tables)


@pytest.mark.slow
def test_processes_racing_on_a_fresh_store_all_succeed(tmp_path):
    """Six processes create the store, the experiment and a run at the same moment."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    done = _start_together([[sys.executable, "-c", LOG_ONE_RUN, uri, str(i)] for i in range(6)])
    failures = [d.stderr[-1500:] for d in done if d.returncode != 0]
    assert not failures, failures
    assert len(_finished_runs(uri, "race")) == 6
    assert len(MlflowClient(uri).search_experiments()) == 2  # Default + race, no duplicate


@pytest.mark.slow
@pytest.mark.parametrize("repetition", range(3))
def test_four_train_jobs_started_together_on_a_fresh_store(tmp_path, repetition):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    commands = [[sys.executable, str(REPO / "train.py"), *TINY_JOB, f"fold={fold}",
                 f"tracking.uri={uri}", f"hydra.run.dir={tmp_path}/run{fold}"] for fold in range(4)]  # fmt: skip
    done = _start_together(commands)
    failures = [d.stderr[-1500:] for d in done if d.returncode != 0]
    assert not failures, failures
    runs = _finished_runs(uri, "ecg-mi-synthetic")
    assert sorted(r.info.run_name for r in runs) == [f"resnet-fold{f}" for f in range(4)]
    assert all("test_auc" in r.data.metrics for r in runs)


# --- stale runs --------------------------------------------------------------------------


def _running(uri: str, owner: dict[str, str], fold_hash: str | None = "f" * 64,
             started: float | None = None) -> str:  # fmt: skip
    """A RUNNING run of experiment ``e`` with config hash ``c`` and the given owner tags."""
    client = MlflowClient(ensure_store(uri))
    exp = client.get_experiment_by_name("e") or client.get_experiment(client.create_experiment("e"))
    start = int((started or time.time()) * 1000)
    run = client.create_run(exp.experiment_id, start_time=start, tags={"config_hash": "c", **owner})
    if fold_hash:
        client.log_param(run.info.run_id, "data.fold_hash", fold_hash)
    return run.info.run_id


def _status(uri: str, run_id: str) -> str:
    return MlflowClient(uri).get_run(run_id).info.status


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_run_of_a_dead_process_on_this_host_is_closed_killed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    orphan = _running(uri, {OWNER_HOST: socket.gethostname(), OWNER_PID: str(_dead_pid())})
    unlogged = _running(uri, {OWNER_HOST: socket.gethostname(), OWNER_PID: str(_dead_pid())},
                        fold_hash=None)  # killed before it logged params  # fmt: skip
    other_fold_file = _running(uri, {OWNER_HOST: socket.gethostname(), OWNER_PID: "1"}, "0" * 64)
    assert close_stale_runs("e", uri, ["c"], "f" * 64) == 2
    assert _status(uri, orphan) == _status(uri, unlogged) == "KILLED"
    assert _status(uri, other_fold_file) == "RUNNING"
    tags = MlflowClient(uri).get_run(orphan).data.tags
    assert tags["killed_reason"].startswith("stale: its owner, process")
    assert close_stale_runs("e", uri, ["c"], "f" * 64) == 0  # idempotent


def test_run_of_a_live_process_is_left_alone(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {OWNER_HOST: socket.gethostname(), OWNER_PID: str(sleeper.pid)}
        start = _process_start(sleeper.pid)
        live = _running(uri, {**owner, OWNER_START: start} if start else owner)
        assert close_stale_runs("e", uri, ["c"], "f" * 64) == 0
        assert _status(uri, live) == "RUNNING"
        if start:  # the same pid with another start time is another (reused) process
            reused = _running(uri, {**owner, OWNER_START: str(int(start) - 1)})
            assert close_stale_runs("e", uri, ["c"], "f" * 64) == 1
            assert _status(uri, reused) == "KILLED" and _status(uri, live) == "RUNNING"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_run_of_another_host_is_closed_only_past_the_lease(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    elsewhere = {OWNER_HOST: "node-that-is-not-this-one", OWNER_PID: "4242"}
    recent = _running(uri, elsewhere)
    old = _running(uri, elsewhere, started=time.time() - 4 * 24 * 3600)
    assert close_stale_runs("e", uri, ["c"], "f" * 64) == 1
    assert _status(uri, recent) == "RUNNING" and _status(uri, old) == "KILLED"
    assert close_stale_runs("e", uri, ["c"], "f" * 64, stale_after_s=0) == 1
    assert _status(uri, recent) == "KILLED"
