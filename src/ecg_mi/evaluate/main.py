"""``run(cfg)`` behind ``evaluate.py``: collect a sweep, write the report, log a summary run."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from ecg_mi.config_checks import check_evaluate_config
from ecg_mi.datamodule import FoldDataModule
from ecg_mi.errors import ConfigError, InputError
from ecg_mi.evaluate.ensembles import add_ensembles
from ecg_mi.evaluate.report import Settings, build_report, headline_metrics, report_tables
from ecg_mi.evaluate.runs import collect, fetch
from ecg_mi.evaluate.validation import CHOSEN, chosen_model
from ecg_mi.learners import Learner
from ecg_mi.paths import repo_root
from ecg_mi.tracking import FOLD_HASH_PARAM, logged_model_uri, mlflow_run, resolve_tracking_uri

log = logging.getLogger(__name__)


def rebuild_run(uri: str, run_id: str, out_dir: Path, **settings) -> tuple[Learner, FoldDataModule]:
    """A finished fold run's learner holding its selected model, and its fold's DataModule
    serving that model's fitted representation — both from the run's packaged model and its
    ``config.yaml`` (``settings`` override keys of it, e.g. ``seed``)."""
    from ecg_mi.learners import architecture, learner_for
    from ecg_mi.packaging import download_package
    from ecg_mi.representation import Representation

    try:
        MlflowClient(uri).get_run(run_id)
        run_cfg = OmegaConf.load(fetch(uri, run_id, "config.yaml"))
    except (MlflowException, OSError) as exc:
        raise InputError(f"run {run_id} in {uri}: cannot fetch its config.yaml ({exc})") from None
    with open_dict(run_cfg):
        for key, value in settings.items():
            OmegaConf.update(run_cfg, key, value)
    mlflow.set_tracking_uri(uri)
    with tempfile.TemporaryDirectory(prefix="ecg_mi_run_") as where:
        package = download_package(logged_model_uri(run_id, uri), where).python_model
    [(member, _, model)] = package.loaded
    learner_cls = learner_for(architecture(run_cfg.model))
    learner = learner_cls(run_cfg, out_dir)
    learner.model = model
    data = learner_cls.datamodule(run_cfg)
    data.setup()
    data.fitted = Representation.from_state(member.representation)  # the package's input contract
    return learner, data


def explain_run(cfg: DictConfig, uri: str) -> dict[str, Path]:
    """Grad-CAM for one finished network run (``explain=gradcam run_id=…``, :func:`rebuild_run`):
    writes the figures and ``st_attention.csv`` to ``output_dir/gradcam-<run_id>/`` and logs
    them (and the ST-attention metrics) back to that run."""
    if not cfg.run_id:
        raise ConfigError("explain=gradcam needs run_id=<MLflow run id of a network run>")
    out_dir = _absolute(Path(cfg.output_dir)) / f"gradcam-{cfg.run_id}"
    learner, data = rebuild_run(uri, cfg.run_id, out_dir, **{"explain.n_examples": int(cfg.n_examples), "seed": int(cfg.seed)})
    if learner.explanation != cfg.explain:
        raise ConfigError(f"run {cfg.run_id} trained {learner.cfg.model.name!r} ({learner.family} family); "
                          f"explain={cfg.explain} needs a run whose family explains by it")  # fmt: skip
    predictions = pd.read_csv(fetch(uri, cfg.run_id, "predictions.csv"), dtype={"record_id": str}).set_index("record_id")
    probs = predictions.loc[data.metadata("test")["record_id"], "prob"].to_numpy()
    metrics, artifacts = learner.explain(data, probs)
    with mlflow.start_run(run_id=cfg.run_id):
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        for path, folder in artifacts:
            mlflow.log_artifact(str(path), artifact_path=folder)
    print({k: round(v, 4) for k, v in metrics.items()})
    print(f"Grad-CAM: {out_dir}")
    return {path.name: path for path, _ in artifacts}


def _absolute(path: Path) -> Path:
    return path if path.is_absolute() else repo_root() / path


def run(cfg: DictConfig) -> dict[str, Path]:
    """Report on ``cfg.experiment_name`` into ``cfg.output_dir`` and an MLflow summary run
    (or, with ``explain=gradcam``, Grad-CAM for ``run_id``; with ``external=true``, the
    external validation of ``model`` on ``data``, see :mod:`ecg_mi.evaluate.external`; with
    ``register=<name>``, ``model``'s fold ensemble registered: :mod:`ecg_mi.evaluate.register`)."""
    check_evaluate_config(cfg)
    uri = resolve_tracking_uri(cfg.tracking.uri)
    if cfg.get("external"):  # register= there names the recalibrated model's registered name
        from ecg_mi.evaluate.external import run_external

        return run_external(cfg, uri, _absolute(Path(cfg.external_dir)))
    settings = Settings(
        n_bootstrap=int(cfg.n_bootstrap), seed=int(cfg.seed), min_group=int(cfg.min_group),
        age_bands=[tuple(b) for b in cfg.age_bands], paper=bool(cfg.paper),
    )  # fmt: skip
    if cfg.get("register"):
        from ecg_mi.evaluate.register import register_ensemble

        model = cfg.get("model_name")
        if model == CHOSEN:  # the sweep's model or ensemble with the best validation AUC
            sweep = collect(cfg.experiment_name, uri, allow_incomplete=cfg.allow_incomplete)
            sweep = add_ensembles(sweep, list(cfg.get("ensembles") or []))
            model = chosen_model(sweep)
            log.info("model=%s: %s has the best mean validation AUC of %s", CHOSEN, model,
                     sorted(sweep.runs["model"].unique()))  # fmt: skip
        print(register_ensemble(cfg.experiment_name, model, cfg.register, cfg.alias, uri,
                                bool(cfg.allow_incomplete), settings, bool(cfg.get("self_contained"))))  # fmt: skip
        return {}
    if cfg.explain == "gradcam":
        return explain_run(cfg, uri)
    if cfg.explain:
        raise ConfigError(
            f"explain={cfg.explain!r}; the on-demand explanation available is 'gradcam'"
        )
    sweep = collect(cfg.experiment_name, uri, allow_incomplete=cfg.allow_incomplete)
    sweep = add_ensembles(sweep, list(cfg.get("ensembles") or []))
    out_dir = _absolute(Path(cfg.output_dir))
    tables = report_tables(sweep, settings)
    files = build_report(sweep, out_dir, cfg.experiment_name, settings, uri, tables)
    best = tables.table2.loc[tables.table2["best"], "model"].iloc[0]
    chosen = tables.validation.loc[tables.validation["chosen"], "model"]
    tags = {"kind": "summary", "models": ",".join(sorted(sweep.runs["model"].unique())), "best_model": best,
            **({"chosen_model": chosen.iloc[0]} if len(chosen) else {})}  # fmt: skip
    with mlflow_run(cfg.experiment_name, "summary", uri, tags):
        mlflow.log_params({FOLD_HASH_PARAM: sweep.runs["fold_hash"].iloc[0], "n_bootstrap": settings.n_bootstrap,
                           "n_runs": int(sweep.runs["run_id"].notna().sum()), "paper": settings.paper,
                           "ensembles": ",".join(cfg.get("ensembles") or []) or "none"})  # fmt: skip
        mlflow.log_metrics(headline_metrics(tables))  # Table 2 per model, comparable across reports in the UI
        for path in files.values():
            mlflow.log_artifact(str(path), artifact_path="report")
    log.info("report for %s in %s", cfg.experiment_name, out_dir)
    print((out_dir / "table2.md").read_text())
    print(f"report: {out_dir / 'README.md'}")
    return files
