"""The Makefile's clean and lock targets, run by make on a copy of it in a tmp folder."""

import shutil
import subprocess
import sys
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


def _lock_tree(root: Path) -> Path:
    """The files `make lock-check` and `make install` read, copied: nothing is installed."""
    for name in ("Makefile", "pyproject.toml", "requirements.lock", "tools/lock.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _make_py(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _make(root, f"PYTHON={sys.executable}", *args)


def test_the_committed_lock_is_in_sync_with_pyproject(tmp_path):
    done = _make_py(_lock_tree(tmp_path), "lock-check")
    assert done.returncode == 0, done.stderr


def test_lock_check_fails_in_one_line_when_a_dependency_drifts(tmp_path):
    root = _lock_tree(tmp_path)
    _edit(root / "pyproject.toml", '"tqdm>=4.66"', '"tqdm>=4.67"')
    done = _make_py(root, "lock-check")
    assert done.returncode != 0
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: requirements.lock: out of sync with pyproject.toml") and "make lock" in line


def test_lock_check_fails_when_a_locked_extra_gains_a_package(tmp_path):
    root = _lock_tree(tmp_path)
    _edit(root / "pyproject.toml", 'docs = ["mkdocs==1.6.1",', 'docs = ["mike==2.1.3", "mkdocs==1.6.1",')
    assert _make_py(root, "lock-check").returncode != 0


def test_lock_check_ignores_comments_order_and_extras_that_are_not_locked(tmp_path):
    root = _lock_tree(tmp_path)
    _edit(root / "pyproject.toml", '    "torch==2.13.0",\n', '    # a comment\n    "torch == 2.13.0",\n')
    _edit(root / "pyproject.toml", 'bench = ["neurokit2>=0.2.7"]', 'bench = ["neurokit2>=0.2.8"]')
    done = _make_py(root, "lock-check")
    assert done.returncode == 0, done.stderr


def test_install_refuses_a_stale_lock_before_creating_the_venv(tmp_path):
    root = _lock_tree(tmp_path)
    _edit(root / "pyproject.toml", '"tqdm>=4.66"', '"tqdm>=4.67"')
    done = _make_py(root, "install", f"VENV={tmp_path / 'venv'}")
    assert done.returncode != 0 and "out of sync" in done.stderr
    assert not (tmp_path / "venv").exists()
