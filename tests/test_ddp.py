"""DDP on CPU: two gloo processes train one tiny epoch; rank 0 alone reports to MLflow."""

import os

import pytest
from mlflow.tracking import MlflowClient

from ecg_mi.train import process_rank, run


@pytest.mark.slow
def test_ddp_on_cpu_trains_and_logs_one_run(compose_train):
    results = run(compose_train("trainer=ddp_cpu", "trainer.max_epochs=1", "data.num_workers=0"))
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("ecg-mi-synthetic")
    [logged] = client.search_runs([experiment.experiment_id])
    assert (
        logged.info.status == "FINISHED" and logged.data.params["trainer.strategy"] == "ddp_spawn"
    )
    assert logged.data.metrics["test_auc"] == pytest.approx(results["test_auc"])


def test_process_rank_reads_launcher_variables(monkeypatch):
    for variable in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(variable, raising=False)
    assert process_rank() == 0
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert process_rank() == 3
    monkeypatch.setenv("RANK", "1")
    assert process_rank() == 1
