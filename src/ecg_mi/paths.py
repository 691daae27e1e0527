"""Where things live: the repository root, the shared data, the cache, the MLflow store."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout's root (the folder holding ``pyproject.toml``), else the working dir.

    ecg-mi is installed editable from its checkout, so the package sits at
    ``<root>/src/ecg_mi``; a non-editable install falls back to the current directory.
    """
    candidate = Path(__file__).resolve().parents[2]
    if (candidate / "pyproject.toml").is_file():
        return candidate
    return Path.cwd()


def default_data_root(dataset: str) -> Path:
    """``$ECG_MI_DATA/<dataset>`` when set, else ``<repo>/../shared/data/<dataset>``."""
    env = os.environ.get("ECG_MI_DATA")
    if env:
        return Path(env) / dataset
    return repo_root().parent / "shared" / "data" / dataset


def default_cache_dir() -> Path:
    """``$ECG_MI_CACHE`` when set, else ``<repo>/.cache/ecg_mi`` (git-ignored)."""
    env = os.environ.get("ECG_MI_CACHE")
    return Path(env) if env else repo_root() / ".cache" / "ecg_mi"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else a SQLite store ``mlflow.db`` in the repo root."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{repo_root() / 'mlflow.db'}"
