"""What `train.py` prints (issue 36): a progress bar while a network trains and a summary at the
end; no warning or log line outside a short allow-list at default verbosity, everything with
verbose=true (src/ecg_mi/console.py)."""

from __future__ import annotations

import re
import subprocess
import warnings

import pytest

from conftest import TINY_RUN
from ecg_mi.console import progress_enabled, silence_warnings

#: Lines a quiet run may print: Lightning's bar (one line per redraw once split on \r) and the
#: run summary (ecg_mi.console.RunSummary).
ALLOWED = re.compile(
    r"^(Epoch \d+: |Training: "
    r"|[\w+.-]+-fold\d+: val AUC \d\.\d{3} · test AUC \d\.\d{3} · test F1 \d\.\d{3}"
    r"|  run    \S+ / [0-9a-f]{32}  \(|  model  runs:/[0-9a-f]{32}/)"
)
FAST = [*TINY_RUN, "trainer.max_epochs=1", "explain.n_examples=2"]


def _lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """Every line of stdout and stderr, progress-bar redraws (\\r) split apart, blanks dropped."""
    return [line for line in re.split(r"[\r\n]", done.stdout + done.stderr) if line.strip()]


def _noise(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in _lines(done) if not ALLOWED.match(line)]


@pytest.mark.slow
def test_network_run_prints_its_progress_bar_and_summary_and_nothing_else(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("ECG_MI_NO_PROGRESS")  # bars on, as in a terminal
    done = run_cli("train.py", *FAST, "trainer.enable_progress_bar=true", f"hydra.run.dir={tmp_path}/run")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _noise(done) == []
    lines = _lines(done)
    assert any(line.startswith("Epoch 0: 100%") for line in lines)
    assert [line for line in lines if line.startswith("resnet-fold0: val AUC")]


@pytest.mark.slow  # a training subprocess (≈ 20 s on 2 loaded cores); the network run above stays default
def test_classical_run_prints_its_summary_and_nothing_else(run_cli, tmp_path):
    done = run_cli("train.py", *FAST, "model=random_forest", f"hydra.run.dir={tmp_path}/run")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _noise(done) == []
    [head, where, model] = _lines(done)
    assert head.startswith("random_forest-fold0: val AUC ")
    assert where.startswith("  run    ecg-mi-synthetic / ") and model.startswith("  model  runs:/")


def test_no_progress_variable_turns_the_bars_off(monkeypatch):
    monkeypatch.setenv("ECG_MI_NO_PROGRESS", "1")  # as .ci/run sets it
    assert not progress_enabled(True)
    monkeypatch.delenv("ECG_MI_NO_PROGRESS")
    assert progress_enabled(True) and not progress_enabled(False)


@pytest.mark.slow  # a training subprocess (≈ 20 s on 2 loaded cores); the network run above stays default
def test_verbose_true_shows_what_the_quiet_console_hides(run_cli, tmp_path):
    done = run_cli("train.py", *FAST, "model=logistic_regression", "verbose=true", f"hydra.run.dir={tmp_path}/run")
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "Passing a Python object as `python_model`" in output  # MLflow's pickle warning
    assert "[lightning_fabric.utilities.seed][INFO] - Seed set to 42" in output  # INFO lines


@pytest.mark.slow  # a third training subprocess (≈ 20 s on 2 loaded cores)
def test_quiet_run_keeps_the_info_lines_in_the_job_log(run_cli, tmp_path):
    done = run_cli("train.py", *FAST, "model=logistic_regression", f"hydra.run.dir={tmp_path}/run")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Seed set to 42" in (tmp_path / "run" / "train.log").read_text()


def test_silencing_rules_leave_every_other_warning_alone():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        silence_warnings()
        warnings.warn_explicit("`isinstance(treespec, LeafSpec)` is deprecated, use …", FutureWarning,
                               "_pytree.py", 21, module="pytorch_lightning.utilities._pytree")  # fmt: skip
        warnings.warn_explicit("`isinstance(treespec, LeafSpec)` is deprecated, use …", FutureWarning,
                               "mine.py", 1, module="my_code")  # the same words from elsewhere  # fmt: skip
        warnings.warn("any other warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["`isinstance(treespec, LeafSpec)` is deprecated, use …",
                                              "any other warning"]  # fmt: skip


@pytest.mark.parametrize(
    ("done", "failed", "total", "elapsed", "line"),
    [
        (2, 0, 10, 60, "sweep 2/10 runs done · 1m00s elapsed · ~4m00s left"),
        (3, 1, 3, 7265, "sweep 3/3 runs done (1 failed) · 2h01m elapsed"),
        (4, 0, None, 42, "sweep 4 runs done · 42s elapsed"),
    ],
)
def test_sweep_progress_line_says_done_of_total_elapsed_and_time_left(done, failed, total, elapsed, line):
    from ecg_mi.sweep import progress_line

    assert progress_line(done, failed, total, elapsed) == line
