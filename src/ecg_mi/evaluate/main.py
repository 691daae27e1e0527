"""``run(cfg)`` behind ``evaluate.py``: collect a sweep, write the report, log a summary run."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from ecg_mi.errors import ConfigError, InputError
from ecg_mi.evaluate.report import Settings, build_report
from ecg_mi.evaluate.runs import collect, fetch
from ecg_mi.paths import repo_root
from ecg_mi.tracking import mlflow_run, resolve_tracking_uri

log = logging.getLogger(__name__)


def explain_run(cfg: DictConfig, uri: str) -> dict[str, Path]:
    """Grad-CAM for one finished network run (``explain=gradcam run_id=…``): rebuilds its data
    and selected checkpoint from the run's ``config.yaml`` and ``model/best.ckpt``, writes the
    figures and ``st_attention.csv`` to ``output_dir/gradcam-<run_id>/`` and logs them (and
    the ST-attention metrics) back to that run."""
    from omegaconf import OmegaConf

    from ecg_mi.explain.network import explain_network
    from ecg_mi.models import get_model_class
    from ecg_mi.train import build_datamodule

    if not cfg.run_id:
        raise ConfigError("explain=gradcam needs run_id=<MLflow run id of a network run>")
    try:
        MlflowClient(uri).get_run(cfg.run_id)
        config = fetch(uri, cfg.run_id, "config.yaml")
        checkpoint = fetch(uri, cfg.run_id, "model/best.ckpt")
        table = fetch(uri, cfg.run_id, "predictions.csv")
    except (MlflowException, OSError) as exc:
        raise InputError(
            f"run {cfg.run_id} in {uri}: cannot fetch config.yaml, model/best.ckpt and predictions.csv ({exc})"
        ) from None
    run_cfg = OmegaConf.load(config)
    model_cls = get_model_class(run_cfg.model.name)
    if model_cls.input_kind != "signal":
        raise ConfigError(
            f"run {cfg.run_id} trained {run_cfg.model.name!r}; Grad-CAM needs a network run"
        )
    data = build_datamodule(run_cfg, "signal")
    data.setup()
    predictions = pd.read_csv(table, dtype={"record_id": str}).set_index("record_id")
    probs = predictions.loc[data.metadata("test")["record_id"], "prob"].to_numpy()
    model = model_cls.load_from_checkpoint(checkpoint, map_location="cpu")
    out_dir = _absolute(Path(cfg.output_dir)) / f"gradcam-{cfg.run_id}"
    metrics, artifacts = explain_network(
        model, data, probs, out_dir, int(cfg.n_examples), int(cfg.seed)
    )
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
    (or, with ``explain=gradcam``, Grad-CAM for ``run_id``)."""
    uri = resolve_tracking_uri(cfg.tracking.uri)
    if cfg.explain == "gradcam":
        return explain_run(cfg, uri)
    if cfg.explain:
        raise ConfigError(
            f"explain={cfg.explain!r}; the on-demand explanation available is 'gradcam'"
        )
    sweep = collect(cfg.experiment_name, uri, allow_incomplete=cfg.allow_incomplete)
    settings = Settings(
        n_bootstrap=int(cfg.n_bootstrap), seed=int(cfg.seed), min_group=int(cfg.min_group),
        age_bands=[tuple(b) for b in cfg.age_bands], paper=bool(cfg.paper),
    )  # fmt: skip
    out_dir = _absolute(Path(cfg.output_dir))
    files = build_report(sweep, out_dir, cfg.experiment_name, settings, uri)
    tags = {"kind": "summary", "models": ",".join(sorted(sweep.runs["model"].unique()))}
    with mlflow_run(cfg.experiment_name, "summary", uri, tags):
        mlflow.log_params({"fold_hash": sweep.runs["fold_hash"].iloc[0], "n_bootstrap": settings.n_bootstrap,
                           "n_runs": len(sweep.runs), "paper": settings.paper})  # fmt: skip
        for path in files.values():
            mlflow.log_artifact(str(path), artifact_path="report")
    log.info("report for %s in %s", cfg.experiment_name, out_dir)
    print((out_dir / "table2.md").read_text())
    print(f"report: {out_dir / 'README.md'}")
    return files
