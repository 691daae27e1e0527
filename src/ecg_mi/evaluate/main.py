"""``run(cfg)`` behind ``evaluate.py``: collect a sweep, write the report, log a summary run."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
from omegaconf import DictConfig

from ecg_mi.evaluate.report import Settings, build_report
from ecg_mi.evaluate.runs import collect
from ecg_mi.paths import repo_root
from ecg_mi.tracking import mlflow_run, resolve_tracking_uri

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Path]:
    """Report on ``cfg.experiment_name`` into ``cfg.output_dir`` and an MLflow summary run."""
    uri = resolve_tracking_uri(cfg.tracking.uri)
    sweep = collect(cfg.experiment_name, uri, allow_incomplete=cfg.allow_incomplete)
    settings = Settings(
        n_bootstrap=int(cfg.n_bootstrap), seed=int(cfg.seed), min_group=int(cfg.min_group),
        age_bands=[tuple(b) for b in cfg.age_bands], paper=bool(cfg.paper),
    )  # fmt: skip
    out_dir = Path(cfg.output_dir)
    if not out_dir.is_absolute():
        out_dir = repo_root() / out_dir
    files = build_report(sweep, out_dir, cfg.experiment_name, settings)
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
