"""The Makefile's clean targets, run by make on a copy of it in a tmp folder."""

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

STORES = ("mlflow.db", "mlflow-server.db", "optuna.db", "mlartifacts/0/a", "mlruns/1/meta.yaml")
REBUILDABLE = (".cache/ecg_mi/x.npy", "outputs/run/log", "multirun/a/b", "reports/r/README.md")
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _tree(root: Path) -> Path:
    shutil.copy(REPO / "Makefile", root / "Makefile")
    for name in (*STORES, *REBUILDABLE):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    return root


def _make(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-C", str(root), *args], capture_output=True, text=True, timeout=60)


def test_clean_removes_what_runs_rebuild_and_keeps_every_tracked_result(tmp_path):
    root = _tree(tmp_path)
    assert _make(root, "clean").returncode == 0
    assert all((root / name).exists() for name in STORES)
    assert not any((root / name.split("/")[0]).exists() for name in REBUILDABLE)


def test_clean_store_without_confirm_refuses_in_one_line_and_deletes_nothing(tmp_path):
    root = _tree(tmp_path)
    done = _make(root, "clean-store")
    assert done.returncode != 0 and all((root / name).exists() for name in STORES)
    [line] = done.stderr.strip().splitlines()
    assert "error: clean-store:" in line and "CONFIRM=1" in line


def test_clean_store_with_confirm_deletes_the_tracked_results(tmp_path):
    root = _tree(tmp_path)
    assert _make(root, "clean-store", "CONFIRM=1").returncode == 0
    assert not any((root / name.split("/")[0]).exists() for name in STORES)
    assert all((root / name).exists() for name in REBUILDABLE)
