"""Hydra launchers of conf/hydra/launcher/: a tiny 2-job sweep through each local launcher lands
two FINISHED runs in one store; the SLURM launcher's config composes with its documented keys."""

from __future__ import annotations

import os

import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO

TINY_SWEEP = [
    "-m", "fold=0,1", "data.source.n_records=120", "data.batch_size=32", "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false", "explain.enabled=false", "tracking.log_model=false",
]  # fmt: skip


def _finished(experiment: str = "ecg-mi-synthetic") -> list[str]:
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'") if exp else []
    return sorted(r.info.run_name for r in runs if "test_auc" in r.data.metrics)


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher",
    [["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"], ["hydra/launcher=local"]],
)
def test_two_job_sweep_through_a_local_launcher(run_cli, tmp_path, launcher):
    done = run_cli("train.py", *TINY_SWEEP, *launcher, f"hydra.sweep.dir={tmp_path}/sweep")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _finished() == ["resnet-fold0", "resnet-fold1"]


def test_slurm_launcher_config_composes_with_ddp_settings():
    """The SLURM launcher's keys resolve (tasks per node follow GPUs per node) without sbatch."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                       "hydra.launcher.gpus_per_node=4", "trainer=ddp"],
            return_hydra_config=True,
        )  # fmt: skip
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.tasks_per_node == 4
    assert launcher.signal_delay_s == 120 and launcher.array_parallelism == 16
    assert cfg.trainer.strategy == "ddp"
