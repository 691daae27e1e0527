"""Faults: SIGTERM/SIGINT end the run KILLED with exit 128+signal (single run and multirun);
a SIGKILLed sweep re-run leaves no RUNNING run and no duplicate; evaluate names what it left out."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO
from ecg_mi.errors import DataError

# Tiny, but long enough to be interrupted: no early stopping, many epochs.
LONG_RUN = [
    "data.source.n_records=120", "data.batch_size=32", "trainer.enable_progress_bar=false",
    "explain.enabled=false", "callbacks=checkpoint_only", "trainer.max_epochs=2000",
]  # fmt: skip
EXPERIMENT = "ecg-mi-synthetic"


def _runs(status: str | None = None, kind: str = "fold") -> list:
    """The runs of ``kind`` (a sweep's parent run is ``kind=sweep``), of ``status`` when given."""
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return []
    query = f"tags.kind = '{kind}'" + (f" and attributes.status = '{status}'" if status else "")
    return client.search_runs([exp.experiment_id], query)


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())  # fmt: skip


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``predicate`` until true; fail (killing ``process``) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, err = process.communicate()
            pytest.fail(f"condition not reached (rc={process.returncode}): {err[-2000:]}")
        time.sleep(0.5)


def _training(run_name: str):
    """True once ``run_name`` is RUNNING and has logged an epoch (so it is inside ``fit``)."""
    return lambda: any(
        r.info.run_name == run_name and "train_loss" in r.data.metrics for r in _runs("RUNNING")
    )


def _stop(process: subprocess.Popen, signum: int) -> tuple[int, str]:
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode, err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_marks_the_run_killed_and_exits_128_plus_signal(tmp_path, signum, code):
    process = _start(*LONG_RUN, f"hydra.run.dir={tmp_path}/run")
    _wait_for(_training("resnet-fold0"), process)
    returncode, err = _stop(process, signum)
    assert returncode == code, err[-2000:]
    name = signal.Signals(signum).name
    assert f"error: stopped by {name}; the run in progress is marked KILLED" in err
    assert "Traceback" not in err
    [run] = _runs()
    assert run.info.status == "KILLED" and run.info.end_time


@pytest.mark.slow
def test_sigterm_stops_a_multirun_instead_of_going_on(tmp_path):
    process = _start("-m", "fold=0,1", *LONG_RUN, f"hydra.sweep.dir={tmp_path}/sweep")
    _wait_for(_training("resnet-fold0"), process)
    returncode, err = _stop(process, signal.SIGTERM)
    assert returncode == 143, err[-2000:]
    [run] = _runs()  # fold 1 never started
    assert run.info.run_name == "resnet-fold0" and run.info.status == "KILLED"
    [parent] = _runs(kind="sweep")
    assert parent.info.status == "KILLED" and parent.info.end_time
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id


@pytest.mark.slow
def test_sigkilled_sweep_rerun_leaves_no_zombie_and_no_duplicate(tmp_path):
    """SIGKILL a 2-fold multirun while fold 1 trains (fold 0 finished), re-run it with
    skip_finished: fold 0 is reused, fold 1's orphan is closed KILLED and trained again."""
    sweep = ["-m", "fold=0,1", "skip_finished=true", "data.source.n_records=120",
             "data.batch_size=32", "trainer.enable_progress_bar=false", "explain.enabled=false",
             "callbacks=checkpoint_only", f"hydra.sweep.dir={tmp_path}/sweep"]  # fmt: skip
    process = _start(*sweep, "+trainer.max_time=00:00:00:08", "trainer.max_epochs=2000")
    _wait_for(_training("resnet-fold1"), process, timeout=180)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert {(r.info.run_name, r.info.status) for r in _runs()} == {
        ("resnet-fold0", "FINISHED"),
        ("resnet-fold1", "RUNNING"),
    }  # the zombie a SIGKILL leaves
    # Same config hash as the killed sweep: the re-run must reuse fold 0 and redo fold 1.
    rerun = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *sweep, "+trainer.max_time=00:00:00:08",
         "trainer.max_epochs=2000", f"hydra.sweep.dir={tmp_path}/rerun"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    runs = _runs()
    finished = [r.info.run_name for r in runs if r.info.status == "FINISHED"]
    assert sorted(finished) == ["resnet-fold0", "resnet-fold1"]  # 0 duplicates
    assert not [r for r in runs if r.info.status == "RUNNING"]  # 0 zombies
    [killed] = [r for r in runs if r.info.status == "KILLED"]
    assert killed.info.run_name == "resnet-fold1"
    assert killed.data.tags["killed_reason"].startswith("stale: its owner, process")


def test_evaluate_names_runs_left_out_and_models_with_no_finished_run(tmp_path, caplog):
    from test_evaluate import _fake_sweep

    from ecg_mi.evaluate.runs import collect

    uri = os.environ["MLFLOW_TRACKING_URI"]
    _fake_sweep(uri, "fake", {"resnet": 2.0}, tmp=tmp_path)
    client = MlflowClient(uri)
    exp_id = client.get_experiment_by_name("fake").experiment_id
    orphan = client.create_run(exp_id, run_name="cnn-fold0", tags={"kind": "fold", "model": "cnn"})
    failed = client.create_run(exp_id, run_name="resnet-fold1", tags={"kind": "fold"})
    client.log_param(failed.info.run_id, "model", "resnet")
    client.set_terminated(failed.info.run_id, "FAILED")
    with pytest.raises(DataError, match=r"model\(s\) \['cnn'\] have no FINISHED fold run"):
        collect("fake", uri)
    with caplog.at_level(logging.WARNING, logger="ecg_mi.evaluate.runs"):
        sweep = collect("fake", uri, allow_incomplete=True)
    assert sweep.missing == {"cnn"} and set(sweep.runs["model"]) == {"resnet"}
    assert sorted(sweep.left_out) == sorted([
        f"cnn-fold0 RUNNING ({orphan.info.run_id})", f"resnet-fold1 FAILED ({failed.info.run_id})"
    ])  # fmt: skip
    assert "left out 2 fold run(s) not FINISHED" in caplog.text
    assert orphan.info.run_id in caplog.text and failed.info.run_id in caplog.text


def test_signal_handlers_raise_terminated_once(monkeypatch):
    """Unit: the handler raises Terminated (a SystemExit with 128+signum) and ignores repeats,
    so the clean-up that ends the run KILLED is not cut short by a second Ctrl-C."""
    from ecg_mi import cli

    monkeypatch.setattr(cli, "_received", [])
    with pytest.raises(cli.Terminated) as caught:
        cli._stop(signal.SIGINT, None)
    assert caught.value.code == 130 and caught.value.name == "SIGINT"
    cli._stop(signal.SIGINT, None)  # a repeat returns: already stopping


def test_a_signal_inside_a_held_block_stops_at_its_end(monkeypatch):
    """Unit: a stop signal that arrives during a store write (stop_signals_held) lets the
    write finish, then raises Terminated; nested blocks raise at the outermost end."""
    from ecg_mi import cli

    monkeypatch.setattr(cli, "_received", [])
    monkeypatch.setattr(cli, "_held", [])
    finished = []
    with pytest.raises(cli.Terminated) as caught:
        with cli.stop_signals_held():
            with cli.stop_signals_held():
                cli._stop(signal.SIGTERM, None)  # as the handler would, mid-write
                finished.append("inner")
            finished.append("outer")
    assert finished == ["inner", "outer"] and caught.value.code == 143
    with cli.stop_signals_held():  # nothing left held: the next block ends quietly
        pass


def test_run_killed_by_terminated_is_marked_killed():
    from ecg_mi.cli import Terminated
    from ecg_mi.tracking import mlflow_run

    uri = os.environ["MLFLOW_TRACKING_URI"]
    with pytest.raises(Terminated), mlflow_run("x", "r", uri):
        raise Terminated(signal.SIGTERM)
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("x").experiment_id])
    assert run.info.status == "KILLED" and run.data.tags["owner.pid"] == str(os.getpid())
