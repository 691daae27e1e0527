"""A shared MLflow tracking server on loopback (what `make mlflow-server` starts): a tiny training
logs to it over HTTP and the run and its artifacts are read back through the client, with a
SQLite backend and with a real PostgreSQL server (skipped with the reason where absent)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, SYSTEM_TEMP

MLFLOW = Path(sys.executable).with_name("mlflow")
TINY_JOB = [
    "data.source.n_records=120", "data.batch_size=32", "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false", "explain.enabled=false",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen,
                log: Path, timeout: float = 90) -> None:  # fmt: skip
    """Poll ``ready`` until true; fail with the tail of ``log`` if the process exits first or
    ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log.is_file() else ""
            pytest.fail(f"{what} not ready (exit {process.poll()}, {timeout:.0f} s max): {tail}")
        time.sleep(0.5)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop_group(process: subprocess.Popen) -> None:
    """Stop a process started in its own session, and its workers (bounded)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)  # uvicorn may linger on idle keep-alive connections
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


@pytest.fixture
def mlflow_server(tmp_path) -> Iterator[Callable[[str], str]]:
    """``start(backend_uri)`` → the ``http://127.0.0.1:PORT`` of an ``mlflow server`` (one
    worker, artifacts served from ``tmp_path/artifacts``), stopped at teardown."""
    started: list[subprocess.Popen] = []

    def start(backend_uri: str) -> str:
        port = free_port()
        log_path = tmp_path / f"mlflow-server-{port}.log"
        log = open(log_path, "w")  # noqa: SIM115 (closed below, the server keeps its copy)
        process = subprocess.Popen(
            [str(MLFLOW), "server", "--backend-store-uri", backend_uri, "--serve-artifacts",
             "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        started.append(process)
        log.close()
        url = f"http://127.0.0.1:{port}"
        _wait_until(lambda: _answers(f"{url}/health"), "mlflow server", process, log_path)
        return url

    yield start
    for process in started:
        _stop_group(process)


def _train_and_read_back(run_cli, tmp_path: Path, url: str) -> None:
    done = run_cli("train.py", *TINY_JOB, f"tracking.uri={url}", f"hydra.run.dir={tmp_path}/run")
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(url)
    exp = client.get_experiment_by_name("ecg-mi-synthetic")
    [run] = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "resnet-fold0"
    assert 0 <= run.data.metrics["test_auc"] <= 1 and len(run.data.params["data.fold_hash"]) == 64
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served, not a local path
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"predictions.csv", "config.yaml"} < names  # + the trained model's folder
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="predictions.csv", tracking_uri=url,
        dst_path=str(tmp_path / "download"),
    )  # fmt: skip
    assert len(pd.read_csv(local)) > 0
    assert any((tmp_path / "artifacts").rglob("predictions.csv"))  # stored by the server
    assert not (REPO / "mlruns" / run.info.experiment_id / run.info.run_id).exists()


@pytest.mark.slow  # ~35 s: a server start, a training, a read-back
def test_training_over_http_to_a_server_on_sqlite(mlflow_server, run_cli, tmp_path):
    url = mlflow_server(f"sqlite:///{tmp_path}/server.db")
    _train_and_read_back(run_cli, tmp_path, url)


# --- PostgreSQL --------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` account then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def postgres(tmp_path) -> Iterator[str]:
    """A throw-away PostgreSQL server on a free loopback port, trust auth, database ``mlflow``;
    yields its SQLAlchemy URI and stops it (and removes its files) at teardown."""
    pg_bin = _postgres_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install -e '.[server]')")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' account to run PostgreSQL as")
        # root's pytest tmp_path (/tmp/pytest-of-root, mode 0700) is closed to that account:
        # the machine's temporary folder instead, removed below.
        data = Path(tempfile.mkdtemp(prefix="ecg-mi-pg-", dir=SYSTEM_TEMP))
        os.chown(data, owner.pw_uid, owner.pw_gid)
    else:
        data = tmp_path / "pg"
        data.mkdir()
    port = free_port()
    pgdata = data / "data"
    ctl = [str(pg_bin / "pg_ctl"), "-D", str(pgdata)]
    try:
        subprocess.run(_as_postgres_user([str(pg_bin / "initdb"), "-D", str(pgdata), "-U",
                       "postgres", "--auth=trust", "-E", "UTF8"]), check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        subprocess.run(_as_postgres_user([*ctl, "-l", str(data / "server.log"), "-w", "-t", "60",
                       "-o", f"-h 127.0.0.1 -p {port} -k {data}", "start"]), check=True,
                       capture_output=True, timeout=90)  # fmt: skip
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             autocommit=True) as con:  # CREATE DATABASE: outside a transaction  # fmt: skip
            con.execute("CREATE DATABASE mlflow")
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(_as_postgres_user([*ctl, "-m", "fast", "-w", "-t", "30", "stop"]),
                       capture_output=True, timeout=60)  # fmt: skip
        if data != tmp_path / "pg":
            shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow  # ~35 s: a server start, a training, a read-back
def test_training_over_http_to_a_server_on_postgresql(postgres, mlflow_server, run_cli, tmp_path):
    url = mlflow_server(postgres)
    _train_and_read_back(run_cli, tmp_path, url)


@pytest.mark.slow  # a PostgreSQL start, then 4 MLflow processes
def test_processes_racing_on_a_fresh_postgresql_store_all_succeed(postgres):
    """Used directly (no server), a fresh PostgreSQL store is migrated once, under an advisory
    lock, while four processes create it, the experiment and a run at the same moment."""
    from test_tracking_store import LOG_ONE_RUN, _finished_runs, _start_together

    done = _start_together(
        [[sys.executable, "-c", LOG_ONE_RUN, postgres, str(i)] for i in range(4)]
    )
    failures = [d.stderr[-1500:] for d in done if d.returncode != 0]
    assert not failures, failures
    assert len(_finished_runs(postgres, "race")) == 4
