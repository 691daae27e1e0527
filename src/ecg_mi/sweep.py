"""Hydra callbacks of a sweep (``train.py -m``), configured in conf/train.yaml's ``hydra.callbacks``.

Callbacks, not sweeper or launcher code, so that every sweeper (the basic grid, an Optuna search)
and every launcher (in-process, joblib's workers, submitit's local processes and SLURM jobs)
gets them:

* :class:`SweepProgress` prints the sweep's overall progress on the console after each job:
  runs done of the total, elapsed time and an estimate of the time left. Jobs report their end
  with a file in ``<sweep dir>/.progress/``, which the sweep's own process counts (at once for
  jobs it runs itself, every second for jobs in other processes).
* :class:`SweepParentRun` opens one MLflow run per sweep, in the experiment of its runs (tag
  ``kind=sweep``): its params are the sweep's overrides as typed (``model=resnet,svm``), its
  artifact ``multirun.yaml`` the sweep's config. The sweep's runs are nested under it (tag
  ``mlflow.parentRunId``, passed to the jobs in ``$ECG_MI_SWEEP_PARENT_RUN``). At the end it
  logs the summary (``sweep_summary.csv``/``.md``: one row per run, the swept settings, val/test
  AUC and F1; ``sweep_auc.png``; per-model means as metrics) and ends FINISHED — only then.
  A sweep stopped by SIGTERM/SIGINT ends it KILLED; a failed one FAILED (with the summary of the
  runs that finished). Re-run with ``skip_finished=true``, the same sweep (same overrides and
  experiment) reopens its earlier parent run instead of adding a second one: runs finished then
  are skipped and already nested under it; the new ones join them.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ecg_mi.cli import report_errors, stop_requested
from ecg_mi.console import NO_PROGRESS, quiet

#: The launcher that runs jobs one after the other in the sweep's own process.
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
#: Overrides that change how a sweep runs, not what it computes: left out of the sweep's
#: identity (:func:`sweep_digest`), so a re-run with ``skip_finished=true`` finds its parent.
NOT_IDENTITY = ("skip_finished", "verbose")
#: The child-run metrics the summary shows.
SUMMARY_METRICS = ("val_auc", "test_auc", "test_f1")


def _overrides(config: DictConfig) -> list[str]:
    """The sweep's overrides as typed: the sweeper's ``params`` (a config-defined sweep, an
    Optuna search space), then the command line's (``hydra.*`` ones excluded)."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    return [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)


def sweep_settings(config: DictConfig) -> dict[str, str]:
    """``{key: value as typed}`` of the sweep's overrides (``{"fold": "0,1"}``); a later
    override of a key wins, as in Hydra."""
    settings: dict[str, str] = {}
    for override in _overrides(config):
        key, _, value = override.partition("=")
        settings[key.lstrip("+~")] = value
    return settings


def swept_keys(config: DictConfig) -> list[str]:
    """The keys the sweep varies (a value list, a range, an Optuna distribution)."""
    parser = OverridesParser.create()
    try:
        return [o.get_key_element().lstrip("+~") for o in parser.parse_overrides(_overrides(config))
                if o.is_sweep_override()]  # fmt: skip
    except HydraException:  # a form only the sweeper's own parser knows
        return []


def sweep_jobs(config: DictConfig) -> int | None:
    """How many jobs the sweep runs: an optimising sweeper's ``n_trials``, else the product of
    the value lists (the basic sweeper's grid); None when it cannot be told."""
    trials = OmegaConf.select(config, "hydra.sweeper.n_trials")
    if trials:
        return int(trials)
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    try:
        overrides = OverridesParser.create().parse_overrides(_overrides(config))
        return sum(len(batch) for batch in BasicSweeper.split_arguments(overrides, None))
    except HydraException:
        return None


def sweep_digest(config: DictConfig) -> str:
    """sha256 of what the sweep computes: its experiment and its overrides (but
    :data:`NOT_IDENTITY`)."""
    settings = {k: v for k, v in sweep_settings(config).items() if k not in NOT_IDENTITY}
    text = json.dumps([str(config.experiment_name), sorted(settings.items())])
    return hashlib.sha256(text.encode()).hexdigest()


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h04m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(done: int, failed: int, total: int | None, elapsed_s: float) -> str:
    """``sweep 3/10 runs done (1 failed) · 2m05s elapsed · ~4m52s left``."""
    line = f"sweep {done}/{total} runs done" if total else f"sweep {done} runs done"
    if failed:
        line += f" ({failed} failed)"
    line += f" · {_duration(elapsed_s)} elapsed"
    if total and 0 < done < total:
        line += f" · ~{_duration(elapsed_s / done * (total - done))} left"
    return line


class SweepProgress(Callback):
    """Prints :func:`progress_line` each time a job of the sweep ends (see module docstring)."""

    def __init__(self, poll_s: float = 1.0) -> None:
        self.poll_s = float(poll_s)  # s between two looks at the jobs' files (other processes)
        self.folder: Path | None = None
        self.total: int | None = None
        self.started = 0.0
        self.owner = 0  # pid of the sweep's process
        self.shown = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Launchers pickle the callbacks into their workers: without the lock and thread."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_stop", "_thread")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _stop=threading.Event(), _thread=None)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        quiet(bool(config.get("verbose")))
        self.folder = Path(str(config.hydra.sweep.dir)).resolve() / ".progress"
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("*.json"):  # a sweep dir given twice: count this sweep only
            stale.unlink()
        self.total, self.started, self.owner, self.shown = sweep_jobs(config), time.time(), os.getpid(), 0
        if config.hydra.launcher.get("_target_") != BASIC_LAUNCHER:
            # Jobs run side by side in other processes: their bars would draw over each other.
            os.environ[NO_PROGRESS] = "1"
            self._thread = threading.Thread(target=self._watch, name="sweep-progress", daemon=True)
            self._thread.start()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.folder is None:
            return
        status = getattr(job_return.status, "name", str(job_return.status))
        (self.folder / f"{config.hydra.job.num}.json").write_text(json.dumps({"status": status}))
        if os.getpid() == self.owner:
            self.report()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.report()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.report()

    def report(self) -> None:
        """Print the progress line when more jobs ended than last shown."""
        with self._lock:
            statuses = []
            for path in self.folder.glob("*.json"):
                with contextlib.suppress(OSError, ValueError):  # a file being written
                    statuses.append(json.loads(path.read_text())["status"])
            if len(statuses) <= self.shown:
                return
            self.shown = len(statuses)
            failed = sum(s != "COMPLETED" for s in statuses)
            print(progress_line(len(statuses), failed, self.total, time.time() - self.started), flush=True)


class SweepParentRun(Callback):
    """The sweep's MLflow parent run (see module docstring)."""

    def __init__(self) -> None:
        self.uri: str | None = None
        self.run_id: str | None = None
        self.sweep_dir: Path | None = None
        self.keys: list[str] = []
        self.experiment: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with report_errors():  # a bad tracking.uri: one line, exit 2, before any job starts
            self._open(config)

    def _open(self, config: DictConfig) -> None:
        """Open the parent run (a new one, or the earlier one of this sweep; module docstring)."""
        from mlflow.entities import Param, RunStatus

        from ecg_mi.tracking import (
            PARENT_RUN_ENV,
            ensure_experiment,
            owner_tags,
            resolve_tracking_uri,
            tracking_client,
        )

        quiet(bool(config.get("verbose")))
        self.uri = resolve_tracking_uri(config.tracking.uri)
        self.experiment = str(config.experiment_name)
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        self.keys = swept_keys(config)
        client = tracking_client(self.uri)
        experiment_id = ensure_experiment(self.experiment, self.uri)
        digest = sweep_digest(config)
        tags = {**owner_tags(), "sweep.dir": str(self.sweep_dir),
                "sweep.launcher": str(config.hydra.launcher.get("_target_")),
                "sweep.hydra_overrides": " ".join(config.hydra.overrides.hydra)[:5000]}  # fmt: skip
        earlier = client.search_runs([experiment_id], f"tags.kind = 'sweep' and tags.sweep_hash = '{digest}'",
                                     order_by=["attributes.start_time DESC"], max_results=1)  # fmt: skip
        if config.get("skip_finished") and earlier:
            run = earlier[0]
            self.run_id = run.info.run_id
            client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            tags["sweep.resumed"] = str(int(run.data.tags.get("sweep.resumed", "0")) + 1)
            for key, value in tags.items():
                client.set_tag(self.run_id, key, value)
        else:
            settings = sweep_settings(config)
            named = " ".join(f"{k}={settings[k]}" for k in self.keys) or " ".join(config.hydra.overrides.task)
            run = client.create_run(experiment_id, run_name=f"sweep {named}".strip()[:200], tags={
                **tags, "kind": "sweep", "sweep_hash": digest,
                "sweep.sweeper": str(config.hydra.sweeper.get("_target_")),
                "sweep.overrides": " ".join(_overrides(config))[:5000],
            })  # fmt: skip
            self.run_id = run.info.run_id
            jobs = sweep_jobs(config)
            params = [Param(k, v[:500]) for k, v in settings.items()]
            params += [Param("n_jobs", str(jobs))] if jobs else []
            client.log_batch(self.run_id, params=params)
            client.log_text(self.run_id, OmegaConf.to_yaml(config), "multirun.yaml")
        close_stale_parents(client, experiment_id, keep=self.run_id)
        os.environ[PARENT_RUN_ENV] = self.run_id
        atexit.register(self._abandoned)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close("FINISHED")

    def _abandoned(self) -> None:
        """At exit without :meth:`on_multirun_end`: the sweep was stopped or failed."""
        if self.run_id is not None:
            self._close("KILLED" if stop_requested() else "FAILED")

    def _close(self, status: str) -> None:
        """Log the summary (FINISHED only when it is logged), then end the run ``status``."""
        from ecg_mi.tracking import PARENT_RUN_ENV, tracking_client

        run_id, self.run_id = self.run_id, None
        if run_id is None:
            return
        atexit.unregister(self._abandoned)
        os.environ.pop(PARENT_RUN_ENV, None)
        client = tracking_client(self.uri)
        if status != "KILLED":  # a stop request is answered at once
            try:
                table = self._log_summary(client, run_id)
            except Exception as exc:  # the runs are safe; only the summary is missing
                print(f"warning: sweep summary not logged to parent run {run_id}: {exc}", file=sys.stderr)
                status = "FAILED"
            else:
                print(summary_markdown(table), flush=True)
        client.set_terminated(run_id, status)
        print(f"sweep parent run: {self.experiment} / {run_id} ({status})", flush=True)

    def _log_summary(self, client: Any, run_id: str) -> pd.DataFrame:
        """Write the summary table and figure of the parent's runs as its artifacts and metrics."""
        from mlflow.entities import Metric

        table = summary_table(client, run_id, self.sweep_dir, self.keys)
        metrics = {"n_runs": len(table), "n_finished": int((table["status"] == "FINISHED").sum())}
        finished = table[table["status"] == "FINISHED"]
        for model, rows in finished.groupby("model"):
            for key in ("val_auc", "test_auc"):
                metrics[f"{model}/{key}_mean"] = float(rows[key].mean())
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        with tempfile.TemporaryDirectory(prefix="ecg_mi_sweep_") as folder:
            out = Path(folder)
            table.to_csv(out / "sweep_summary.csv", index=False)
            (out / "sweep_summary.md").write_text(summary_markdown(table) + "\n")
            auc_figure(finished, out / "sweep_auc.png")
            for name in ("sweep_summary.csv", "sweep_summary.md", "sweep_auc.png"):
                client.log_artifact(run_id, str(out / name))
        return table


def close_stale_parents(client: Any, experiment_id: str, keep: str) -> None:
    """Mark KILLED the RUNNING parent runs of the experiment whose sweep process is gone (a
    SIGKILL, a lost node: see :func:`ecg_mi.tracking.stale_reason`), all but ``keep``."""
    from ecg_mi.tracking import stale_reason

    for run in client.search_runs([experiment_id], "tags.kind = 'sweep' and attributes.status = 'RUNNING'",
                                  max_results=1000):  # fmt: skip
        reason = stale_reason(run)
        if run.info.run_id != keep and reason is not None:
            client.set_tag(run.info.run_id, "killed_reason", f"stale: {reason}")
            client.set_terminated(run.info.run_id, "KILLED")


def summary_table(client: Any, parent_id: str, sweep_dir: Path | None, keys: list[str]) -> pd.DataFrame:
    """One row per run of the sweep: the runs nested under ``parent_id`` and the earlier runs its
    jobs reused (``skip_finished``; named in their ``run.json``): run, model, fold, the other
    swept settings, status, val/test AUC, test F1, run id; sorted by model, fold."""
    from ecg_mi.train import RUN_FILE

    parent = client.get_run(parent_id)
    runs = {r.info.run_id: r for r in client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=50_000)}  # fmt: skip
    for path in sorted(sweep_dir.glob(f"*/{RUN_FILE}")) if sweep_dir else []:
        run_id = json.loads(path.read_text())["run_id"]
        if run_id not in runs:
            runs[run_id] = client.get_run(run_id)
    others = [k for k in keys if k not in ("model", "fold")]
    rows = [{"run": r.info.run_name, "model": r.data.params.get("model", r.data.tags.get("model")),
             "fold": r.data.params.get("fold"), **{k: r.data.params.get(k) for k in others},
             "status": r.info.status, **{m: r.data.metrics.get(m) for m in SUMMARY_METRICS},
             "run_id": r.info.run_id} for r in runs.values()]  # fmt: skip
    columns = ["run", "model", "fold", *others, "status", *SUMMARY_METRICS, "run_id"]
    return pd.DataFrame(rows, columns=columns).sort_values(["model", "fold", "run"], na_position="last",
                                                           ignore_index=True)  # fmt: skip


def summary_markdown(table: pd.DataFrame) -> str:
    """``table`` as a Markdown table, metrics to 3 decimals."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.3f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def auc_figure(table: pd.DataFrame, path: Path) -> None:
    """Validation and test AUC of each finished run, one column per model (a dot per fold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted(table["model"].dropna().unique())
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(models) + 2), 3.5))
    for offset, (key, marker) in zip((-0.12, 0.12), (("val_auc", "o"), ("test_auc", "s")), strict=True):
        xs = [models.index(m) + offset for m in table["model"]]
        ax.scatter(xs, table[key], marker=marker, label=key.replace("_auc", " AUC"), alpha=0.8)
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_ylabel("AUC")
    ax.set_title("Sweep: AUC per run (one dot per fold)")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
