"""Optuna search (``python train.py -m hparams_search=<model>``, :mod:`ecg_mi.search` and the
``ecg_mi_optuna`` Hydra sweeper): configs compose, trials land in the study database and in
MLflow, a killed study resumes without repeating a finished trial, a dead worker's trial is
re-queued, two workers share one study, a network trial is pruned cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import REPO
from ecg_mi import search
from ecg_mi.tracking import OWNER_START, _process_start
from hydra_plugins.ecg_mi_optuna_sweeper.optuna_sweeper import distribution

SEARCHES = sorted(p.stem for p in (REPO / "conf" / "hparams_search").glob("*.yaml"))

# A Hydra app standing in for train.py where the sweeper, not training, is under test: it
# returns a known function of its parameters, notes each run in a log, and stops itself with a
# real SIGTERM when asked to (at a given trial).
TOY_APP = '''
import os, signal, sys, time
import hydra
from ecg_mi.cli import install_signal_handlers

@hydra.main(config_path="conf", config_name="toy", version_base="1.3")
def main(cfg):
    trial = int(os.environ["ECG_MI_OPTUNA_TRIAL"])
    with open(cfg.log, "a") as log:
        log.write(f"{trial} {cfg.x!r} {cfg.y}\\n")
    if trial == cfg.stop_at:
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(cfg.sleep)
    return -(cfg.x - 0.3) ** 2 + cfg.y

if __name__ == "__main__":
    install_signal_handlers()
    main()
'''
TOY_CONFIG = '''
defaults:
  - override hydra/sweeper: ecg_mi_optuna
  - _self_
x: 0.5
y: 1
sleep: 0.0
stop_at: -1
log: {log}
tracking: {{uri: "sqlite:///{store}"}}
hydra:
  sweep: {{dir: {sweep}}}
  sweeper:
    study_name: toy
    n_trials: 4
    sampler: {{seed: 0, n_startup_trials: 2}}
    params: {{x: "interval(0.0, 1.0)", y: "choice(1, 2, 3)"}}
'''


@pytest.fixture
def toy_app(tmp_path: Path):
    """``run(*overrides, background=False)``: the toy app as a multirun sweep in a subprocess
    (a ``Popen`` when ``background``); its study is ``tmp_path/optuna.db``."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "app.py").write_text(TOY_APP)
    (tmp_path / "conf" / "toy.yaml").write_text(TOY_CONFIG.format(
        log=tmp_path / "runs.log", store=tmp_path / "mlflow.db", sweep=tmp_path / "sweep"))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}

    def run(*overrides: str, background: bool = False):
        command = [sys.executable, str(tmp_path / "app.py"), "-m", *overrides]
        if background:
            return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)  # fmt: skip
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    return run


def _compose(*overrides: str):
    """The train config with its ``hydra`` node (the sweeper's settings), as a multirun sees it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def _study(path: Path, name: str = "toy") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{path / 'optuna.db'}")


def _states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


@pytest.mark.parametrize("name", SEARCHES)
def test_hparams_search_config_composes_with_a_validation_objective(name):
    cfg = _compose(f"hparams_search={name}")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("EcgMiOptunaSweeper")
    assert cfg.optimized_metric == "val_auc"
    assert cfg.model.name == name
    assert sweeper.params, "an empty search space"
    for key, text in sweeper.params.items():
        from hydra.core.override_parser.overrides_parser import OverridesParser

        override = OverridesParser.create().parse_override(f"{key}={text}")
        assert isinstance(distribution(override), optuna.distributions.BaseDistribution), key
        assert OmegaConf.select(cfg, key, default="missing") != "missing", f"{key} is not a config key"


def test_xgboost_search_space_spans_the_papers_grid():
    """Every sampled XGBoost parameter ranges from the smallest to the largest value of the
    paper's Table 1 grid (conf/model/xgboost.yaml), no further."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = _compose("hparams_search=xgboost")
    parser = OverridesParser.create()
    grid = cfg.model.grid
    spanned = {}
    for key, text in cfg.hydra.sweeper.params.items():
        dist = distribution(parser.parse_override(f"{key}={text}"))
        spanned[key.removeprefix("model.params.")] = (dist.low, dist.high)
        if all(isinstance(v, int) for v in grid[key.removeprefix("model.params.")]):  # max_depth
            assert isinstance(dist, optuna.distributions.IntDistribution), key
    assert spanned == {k: (min(v), max(v)) for k, v in grid.items() if k != "n_estimators"}
    assert cfg.model.params.n_estimators == max(grid.n_estimators)  # early stopping's cap


def test_study_database_sits_beside_the_tracking_store(tmp_path):
    assert search.study_storage_url(None, f"sqlite:///{tmp_path}/mlflow.db") == f"sqlite:///{tmp_path}/optuna.db"
    assert search.study_storage_url(None, "postgresql://u:p@db:5432/mlflow") == "postgresql://u:p@db:5432/optuna"
    assert search.study_storage_url("sqlite:///x.db", "http://server:5000") == "sqlite:///x.db"


def test_a_tracking_server_needs_a_named_study_database():
    from ecg_mi.errors import ConfigError

    with pytest.raises(ConfigError, match="hydra.sweeper.storage"):
        search.study_storage_url(None, "http://server:5000")


@pytest.mark.slow
def test_xgboost_study_writes_trials_to_the_study_and_mlflow(run_cli, tmp_path):
    """Two trials of the real search on small synthetic data: the study holds them COMPLETE with
    train.py's val_auc, and each is an MLflow run tagged with its study and trial number."""
    store = tmp_path / "mlflow.db"
    done = run_cli("train.py", "-m", "hparams_search=xgboost", "hydra.sweeper.n_trials=2",
                   "data.source.n_records=120", f"tracking.uri=sqlite:///{store}",
                   f"hydra.sweep.dir={tmp_path}/sweep")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    study = _study(tmp_path, "xgboost-synthetic-100hz-fold0")
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("ecg-mi-synthetic").experiment_id], "tags.kind = 'fold'")
    by_trial = {r.data.tags["optuna.trial"]: r for r in runs}
    assert sorted(by_trial) == ["0", "1"]
    for trial in trials:
        run = by_trial[str(trial.number)]
        assert run.data.tags["optuna.study"] == study.study_name
        assert run.data.metrics["val_auc"] == pytest.approx(trial.value)
        assert float(run.data.params["model.params.max_depth"]) == trial.params["model.params.max_depth"]
    assert (tmp_path / "sweep" / "optimization_results.yaml").exists()


def test_a_study_database_in_a_missing_folder_is_one_line_error(toy_app, tmp_path):
    done = toy_app(f"hydra.sweeper.storage=sqlite:///{tmp_path}/absent/optuna.db")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: hydra.sweeper.storage=sqlite:///{tmp_path}/absent/optuna.db: folder {tmp_path}/absent does not exist")
    assert "Traceback" not in done.stderr


def test_killed_study_resumes_without_repeating_a_finished_trial(toy_app, tmp_path):
    stopped = toy_app("stop_at=2")
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert _states(_study(tmp_path)) == ["COMPLETE", "COMPLETE", "FAIL", "WAITING"]
    resumed = toy_app()
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    study = _study(tmp_path)
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    ran = [line.split() for line in (tmp_path / "runs.log").read_text().splitlines()]
    assert [r[0] for r in ran] == ["0", "1", "2", "3", "4"]  # 0 and 1 ran once; 3 is 2 again
    assert ran[3][1:] == ran[2][1:]  # the interrupted trial's parameters, run to the end
    assert study.trials[3].user_attrs[search.RETRY_OF_ATTR] == 2


def test_a_dead_workers_running_trial_is_requeued(tmp_path):
    """A trial left RUNNING by a sweeper that was SIGKILLed is failed and its parameters queued."""
    study = search.open_study("toy", f"sqlite:///{tmp_path / 'optuna.db'}", "maximize")
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for key, value in {**search.owner_tags(), search.OWNER_PID: str(dead.pid)}.items():
        trial.set_user_attr(key, value)
    assert search.recover_interrupted(study) == [0]
    assert _states(study) == ["FAIL", "WAITING"]
    assert study.trials[1].system_attrs["fixed_params"] == trial.params


def test_a_live_workers_running_trial_is_left_alone(tmp_path):
    study = search.open_study("toy", f"sqlite:///{tmp_path / 'optuna.db'}", "maximize")
    search.mark_owner(study, study.ask())
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        trial_id = study.trials[0]._trial_id
        study._storage.set_trial_user_attr(trial_id, search.OWNER_PID, str(other.pid))
        study._storage.set_trial_user_attr(trial_id, OWNER_START, _process_start(other.pid))
        assert search.recover_interrupted(study) == []
    finally:
        other.kill()
        other.wait()
    assert _states(study) == ["RUNNING"]


def test_two_workers_share_one_study(toy_app, tmp_path):
    workers = [toy_app("sleep=0.5", "hydra.sweeper.n_trials=6", background=True) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
    study = _study(tmp_path)
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert 6 <= len(complete) <= 7  # the budget, plus one when both ask in the same instant
    assert all(t.state.name == "COMPLETE" for t in study.get_trials())
    ran = [line.split()[0] for line in (tmp_path / "runs.log").read_text().splitlines()]
    assert sorted(ran, key=int) == [str(t.number) for t in complete]  # each trial ran once, by one worker


def test_trial_seeds_replay_and_differ():
    assert search.trial_seed(42, 3) == search.trial_seed(42, 3)
    assert len({search.trial_seed(42, n) for n in range(50)}) == 50


@pytest.mark.slow
def test_a_pruned_network_trial_ends_pruned_not_failed(run_cli, tmp_path):
    """A pruner that always prunes (val AUC never above 1.1): the trial is PRUNED in the study,
    its MLflow run KILLED with the epoch in tag optuna.pruned, and the sweep exits 0."""
    store = tmp_path / "mlflow.db"
    done = run_cli("train.py", "-m", "hparams_search=resnet", "hydra.sweeper.n_trials=1",
                   "data.source.n_records=120", "data.batch_size=32", "trainer.max_epochs=2",
                   "trainer.enable_progress_bar=false", f"tracking.uri=sqlite:///{store}",
                   "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner", "~hydra.sweeper.pruner.n_startup_trials",
                   "++hydra.sweeper.pruner.lower=1.1", "hydra.sweeper.pruner.n_warmup_steps=0",
                   f"hydra.sweep.dir={tmp_path}/sweep")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert _states(_study(tmp_path, "resnet-synthetic-100hz-fold0")) == ["PRUNED"]
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("ecg-mi-synthetic").experiment_id
    (run,) = client.search_runs([experiment], "tags.kind = 'fold'")
    (parent,) = client.search_runs([experiment], "tags.kind = 'sweep'")  # the study's sweep run
    assert run.info.status == "KILLED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert run.data.tags["optuna.pruned"] == "0"
    assert "Traceback" not in done.stderr

