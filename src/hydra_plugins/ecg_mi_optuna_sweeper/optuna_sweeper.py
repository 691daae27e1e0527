"""A Hydra sweeper that drives Optuna: ``python train.py -m hparams_search=xgboost``.

Why not Hydra's own ``hydra-optuna-sweeper``: its last release (1.2.0) pins ``optuna<3``, whose
RDB storage fails on the SQLAlchemy 2 that MLflow needs (``AssertionError`` creating a SQLite
study), so it cannot share a study between workers here. This one keeps its config names
(``direction``, ``study_name``, ``storage``, ``n_trials``, ``n_jobs``, ``params`` in Hydra's
override grammar: ``choice(…)``, ``range(…)``, ``interval(…)``, ``tag(log, interval(…))``) and
adds what ecg-mi needs (:mod:`ecg_mi.search`):

* the study sits in an RDB beside the tracking store and is loaded when it exists, so workers
  started with the same command share it;
* ``n_trials`` is the study's total: each worker asks for trials while fewer than that are
  COMPLETE, PRUNED or RUNNING, so two workers do ``n_trials`` together and a resumed study only
  what is left; a trial interrupted by a kill is re-queued with its parameters;
* TPE is seeded per trial (``sampler.seed`` and the trial number), so one study replays exactly;
  a proposal equal to a finished trial's parameters takes its value instead of running again;
* a job's exception ``optuna.TrialPruned`` (a network's :class:`ecg_mi.pruning.OptunaPruning`)
  makes the trial PRUNED; any other error fails the trial and stops the sweep, as a job error
  stops Hydra's basic sweeper.
"""

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class SamplerConf:
    """TPE: ``seed`` (each trial's seed derives from it and the trial number) and random trials first."""

    seed: int = 42
    n_startup_trials: int = 10


@dataclass
class EcgMiOptunaSweeperConf:
    _target_: str = "hydra_plugins.ecg_mi_optuna_sweeper.optuna_sweeper.EcgMiOptunaSweeper"
    # The pruner reaches the sweeper as its config, not built: the study keeps it for the jobs.
    _recursive_: bool = False
    direction: str = "maximize"
    study_name: str = "ecg-mi"
    # null: beside the tracking store (sqlite …/optuna.db, or database `optuna` on its PostgreSQL server)
    storage: str | None = None
    n_trials: int = 20  # the study's total over every worker and restart
    n_jobs: int = 1  # trials launched together (a batch for the launcher)
    sampler: SamplerConf = field(default_factory=SamplerConf)
    # {_target_: optuna.pruners.MedianPruner, ...}; null: no pruning
    pruner: dict[str, Any] | None = None
    params: dict[str, str] | None = None  # the search space, Hydra override grammar


ConfigStore.instance().store(group="hydra/sweeper", name="ecg_mi_optuna", node=EcgMiOptunaSweeperConf,
                             provider="ecg_mi")  # fmt: skip


def distribution(override: Override) -> Any:
    """The Optuna distribution of one swept override (``choice``/``a,b``: categorical;
    ``range(a, b[, step])``: its values; ``interval(a, b)``: continuous — Hydra reads its ends as
    floats — or whole numbers when tagged ``int``, log-uniform when tagged ``log``), or the fixed value."""
    import optuna.distributions as d

    value = override.value()
    if isinstance(value, ChoiceSweep):
        choices = list(override.sweep_iterator(transformer=lambda x: x))
        # Optuna's choices are scalars: a list or dict value (model.channels) is kept as its text.
        return d.CategoricalDistribution([c if _scalar(c) else RAW + json.dumps(c, separators=(",", ":"))
                                          for c in choices])  # fmt: skip
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator(transformer=lambda x: x))
        step = value.step if value.step is not None else 1
        if all(isinstance(v, int) for v in values):
            return d.IntDistribution(min(values), max(values), step=abs(int(step)))
        return d.FloatDistribution(min(values), max(values), step=abs(float(step)))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if "int" in value.tags:
            return d.IntDistribution(int(value.start), int(value.end), log=log_scale)
        return d.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    return value


def suggest(trial: Any, name: str, dist: Any) -> Any:
    """``trial``'s value of ``name`` drawn from ``dist`` (a fixed value is returned as it is)."""
    import optuna.distributions as d

    if isinstance(dist, d.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, d.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, d.FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return dist


#: Marks a categorical choice that is override text (a list or dict), not a string value.
RAW = "raw:"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def override_value(value: Any) -> str:
    """A sampled value as Hydra override text (strings quoted, floats in full precision)."""
    if isinstance(value, str) and value.startswith(RAW):
        return value.removeprefix(RAW)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return repr(value)


class EcgMiOptunaSweeper(Sweeper):
    """See the module docstring; Hydra instantiates it from :class:`EcgMiOptunaSweeperConf`."""

    def __init__(self, direction: str, study_name: str, storage: str | None, n_trials: int, n_jobs: int,
                 sampler: DictConfig, pruner: DictConfig | None, params: DictConfig | None) -> None:  # fmt: skip
        self.direction, self.study_name, self.storage = str(direction), str(study_name), storage
        self.n_trials, self.n_jobs = int(n_trials), max(1, int(n_jobs))
        self.sampler = dict(sampler or {})
        self.pruner = OmegaConf.to_container(pruner, resolve=True) if isinstance(pruner, DictConfig) else pruner
        self.params = {str(k): str(v) for k, v in (params or {}).items()}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.job_idx = 0

    def search_space(self, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
        """``({key: distribution}, fixed overrides)`` from ``params`` and the command line (a
        command-line sweep like ``model.dropout=0.1,0.3`` joins the space, as in Hydra's plugin)."""
        parser = OverridesParser.create()
        space: dict[str, Any] = {}
        fixed: dict[str, str] = {}
        configured = parser.parse_overrides([f"{k}={v}" for k, v in self.params.items()])
        for override in configured + parser.parse_overrides(arguments):  # the command line wins
            key = override.get_key_element()
            space.pop(key, None)
            fixed.pop(key, None)
            if override.is_sweep_override():
                space[key] = distribution(override)
            else:
                fixed[key] = override.input_line or f"{key}={override.get_value_element_as_str()}"
        return space, list(fixed.values())

    def sweep(self, arguments: list[str]) -> None:
        from ecg_mi.cli import report_errors

        with report_errors():  # a bad setting of the search: one line, exit 2
            self._sweep(arguments)

    def _sweep(self, arguments: list[str]) -> None:
        from ecg_mi import search

        space, fixed = self.search_space(arguments)
        url = search.study_storage_url(self.storage, self.config.get("tracking", {}).get("uri"))
        os.environ[search.TRIAL_ENV["storage"]] = url  # the jobs' pruning callback reads it (never logged)
        study = search.open_study(self.study_name, url, self.direction, self.pruner)
        recovered = search.recover_interrupted(study)
        if recovered:
            log.warning("study %s: trial(s) %s were left RUNNING by a dead worker; re-queued", self.study_name, recovered)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info("study %s in %s: %d trial(s) of %d done, space %s", self.study_name, url.split("@")[-1],
                 self._counted(study), self.n_trials, sorted(space))  # fmt: skip
        started = time.monotonic()
        ran = 0
        while (room := self.n_trials - self._counted(study)) > 0:
            trials = [self._ask(study, space) for _ in range(min(self.n_jobs, room))]
            pending = [(t, p) for t, p in trials if p is not None]
            ran += len(pending)
            self._launch(study, pending, fixed)
            self._progress(study, started, ran)
        self._report(study, sweep_dir)

    def _counted(self, study: Any) -> int:
        """Trials that use up the budget: finished (COMPLETE, PRUNED) or in progress (RUNNING)."""
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        return len(study.get_trials(deepcopy=False, states=states))

    def _ask(self, study: Any, space: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        """A new trial with its parameters, or ``(trial, None)`` when they repeat a finished
        trial's (told that trial's value at once; TPE revisits points of a categorical space)."""
        import optuna

        from ecg_mi import search

        trial = study.ask()
        search.mark_owner(study, trial)
        # A sampler per trial, seeded by the trial number: replayable, and distinct across workers.
        study.sampler = optuna.samplers.TPESampler(
            seed=search.trial_seed(int(self.sampler.get("seed", 42)), trial.number),
            n_startup_trials=int(self.sampler.get("n_startup_trials", 10)),
        )
        params = {k: suggest(trial, k, v) for k, v in space.items()}
        sampled = {k: params[k] for k in trial.params}
        for done in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if done.params == sampled and done.number != trial.number:
                trial.set_user_attr(search.DUPLICATE_OF_ATTR, done.number)
                study.tell(trial, done.value)
                log.info("trial %d repeats trial %d's parameters: its value %.4f, not run again",
                         trial.number, done.number, done.value)  # fmt: skip
                return trial, None
        return trial, params

    def _launch(self, study: Any, trials: list[tuple[Any, dict[str, Any]]], fixed: list[str]) -> None:
        """Run ``trials`` as one launcher batch and tell Optuna each job's return value."""
        import optuna

        from ecg_mi import search
        from ecg_mi.cli import Terminated

        if not trials:
            return
        batch = []
        for trial, params in trials:
            env = {search.TRIAL_ENV["study"]: self.study_name, search.TRIAL_ENV["trial_id"]: trial._trial_id,
                   search.TRIAL_ENV["trial"]: trial.number}  # fmt: skip
            batch.append([*fixed, *(f"{k}={override_value(v)}" for k, v in params.items()),
                          *(f"++hydra.job.env_set.{k}='{v}'" for k, v in env.items())])  # fmt: skip
        try:
            self.validate_batch_is_legal(batch)
            returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
        except Terminated as stop:  # SIGTERM/SIGINT: the trials did not fail, they run again on resume
            for trial, _ in trials:
                search.interrupt(study, trial._trial_id, f"stopped by {stop.name}")
            raise
        except BaseException:  # a config that does not compose, a user error (exit 2), a launcher failure
            for trial, _ in trials:
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        self.job_idx += len(batch)
        for (trial, _), ret in zip(trials, returns, strict=True):
            if ret.status == JobStatus.COMPLETED:
                value = float(ret.return_value)
                study.tell(trial, value if math.isfinite(value) else None,
                           state=None if math.isfinite(value) else optuna.trial.TrialState.FAIL)  # fmt: skip
                log.info("trial %d: %s = %.4f", trial.number, self.config.get("optimized_metric", "value"), value)
            elif isinstance(ret._return_value, optuna.TrialPruned):
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                log.info("trial %d: pruned (%s)", trial.number, ret._return_value)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                ret.return_value  # noqa: B018 -- re-raises the job's error, as Hydra's basic sweeper does

    def _progress(self, study: Any, started: float, ran: int) -> None:
        """One line: trials done of the study's total, the best so far, elapsed and remaining time."""
        done = self._counted(study)
        elapsed = time.monotonic() - started
        left = (self.n_trials - done) * elapsed / ran if ran else 0.0
        best = _best(study)
        log.info("study %s: %d/%d trials, best %s, %.0f s elapsed, ~%.0f s left", self.study_name, done,
                 self.n_trials, f"{best.value:.4f} (trial {best.number})" if best else "-", elapsed, left)  # fmt: skip

    def _report(self, study: Any, sweep_dir: Path) -> None:
        """``optimization_results.yaml`` in the sweep folder: the best trial's parameters and value."""
        best = _best(study)
        if best is None:
            return
        params = {k: override_value(v) if isinstance(v, str) and v.startswith(RAW) else v for k, v in best.params.items()}
        results = {"name": "optuna", "study": self.study_name, "best_trial": best.number,
                   "best_params": params, "best_value": best.value}  # fmt: skip
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info("best trial %d: %s = %.4f with %s", best.number, self.config.get("optimized_metric", "value"),
                 best.value, params)  # fmt: skip


def _best(study: Any) -> Any:
    """The best COMPLETE trial, None before any."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    pick = max if study.direction.name == "MAXIMIZE" else min
    return pick(done, key=lambda t: t.value)
