"""DDP on CPU: gloo processes train tiny epochs; rank 0 alone reports to MLflow. The
``trainer=ddp`` route (Lightning's subprocess launcher, what every multi-GPU box takes) is
run through train.py as a user would, alone and in a multirun."""

import os

import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import TINY_RUN
from ecg_mi.learners.network import LAUNCHER_VARIABLES, ddp_job_scope, trainer_settings
from ecg_mi.train import REQUIRED_METRICS, process_rank, run

# The command, tiny: DDP with the subprocess launcher on 2 CPU processes.
DDP_ON_CPU = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
              "explain.enabled=false", *TINY_RUN, "trainer.max_epochs=1"]  # fmt: skip


def _fold_runs(kind: str = "fold") -> list:
    """The experiment's runs of ``kind`` (``fold``; ``sweep``: a sweep's parent run)."""
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("ecg-mi-synthetic")
    return client.search_runs([experiment.experiment_id], f"tags.kind = '{kind}'") if experiment else []


def _assert_finished_with_metrics(runs: list, names: list[str]) -> None:
    assert sorted(r.info.run_name for r in runs) == sorted(names)
    for r in runs:
        assert r.info.status == "FINISHED" and set(REQUIRED_METRICS) <= set(r.data.metrics)


@pytest.mark.slow
def test_ddp_spawn_on_cpu_trains_and_logs_one_run(compose_train):
    results = run(compose_train("trainer=ddp_cpu", "trainer.max_epochs=1", "data.num_workers=0"))
    [logged] = _fold_runs()
    assert logged.info.status == "FINISHED" and logged.data.params["trainer.strategy"] == "ddp_spawn"
    assert logged.data.metrics["test_auc"] == pytest.approx(results["test_auc"])


@pytest.mark.slow
def test_train_py_with_trainer_ddp_exits_0_with_one_finished_run(run_cli, tmp_path):
    done = run_cli("train.py", *DDP_ON_CPU, f"hydra.run.dir={tmp_path}/run")
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_finished_with_metrics(_fold_runs(), ["resnet-fold0"])
    assert "sync_batchnorm=true needs GPUs" in done.stdout + done.stderr  # trainer=ddp asks for it: logged fallback


@pytest.mark.slow
def test_multirun_with_trainer_ddp_finishes_every_job(run_cli, tmp_path):
    done = run_cli("train.py", "-m", *DDP_ON_CPU, "model=resnet,cnn", "fold=0,1",
                   "data.n_folds=2", f"hydra.sweep.dir={tmp_path}/sweep")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _fold_runs()
    _assert_finished_with_metrics(runs, ["resnet-fold0", "resnet-fold1", "cnn-fold0", "cnn-fold1"])
    (parent,) = _fold_runs("sweep")  # one parent, whatever the number of ranks
    assert parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}


def test_sync_batchnorm_is_switched_off_on_cpu_with_a_warning(caplog):
    cfg = OmegaConf.create({"trainer": {"accelerator": "cpu", "sync_batchnorm": True}})
    assert trainer_settings(cfg).sync_batchnorm is False and "needs GPUs" in caplog.text
    gpu = OmegaConf.create({"trainer": {"accelerator": "gpu", "sync_batchnorm": True}})
    assert trainer_settings(gpu).sync_batchnorm is True


def test_a_ddp_fit_leaves_no_launcher_variables_behind(monkeypatch):
    for key in LAUNCHER_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")  # set by a cluster before the run: kept
    with ddp_job_scope():
        os.environ.update(MASTER_ADDR="10.0.0.9", MASTER_PORT="29500", LOCAL_RANK="0", WORLD_SIZE="2")
    assert os.environ["MASTER_ADDR"] == "127.0.0.1"
    assert not {"MASTER_PORT", "LOCAL_RANK", "WORLD_SIZE"} & set(os.environ)
    assert not (torch.distributed.is_available() and torch.distributed.is_initialized())


def test_process_rank_reads_launcher_variables(monkeypatch):
    for variable in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(variable, raising=False)
    assert process_rank() == 0
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert process_rank() == 3
    monkeypatch.setenv("RANK", "1")
    assert process_rank() == 1
