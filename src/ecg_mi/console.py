"""What a training run prints: a progress bar while a network trains, one summary at the end.

At default verbosity (``verbose=false``) the console shows nothing else. Each known piece of
third-party noise is silenced where it comes from, by one targeted rule below that says what it
is and why it is harmless — never by hiding warnings as a whole: a warning that no rule names
still reaches the console. ``verbose=true`` installs none of the rules (and keeps the console
at Hydra's INFO level), so everything shows again.

Log *records* at INFO (ours: fold file written, signals cached; Lightning's: devices found,
``Trainer.fit`` stopped, its litlogger/litmodels tips) go to the job's log file
(``<run dir>/train.log``) but not to the console: :func:`quiet` raises the console handlers of
the root logger to WARNING. MLflow logs through its own handler, so its logger is raised too.

``ECG_MI_NO_PROGRESS=1`` (CI, tests, log files) turns every progress bar off.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

#: Python warnings silenced: (category, module regex, message regex, why it is harmless).
#: ``module`` is the module the warning is attributed to (its ``stacklevel``), as
#: :func:`warnings.filterwarnings` matches it.
WARNING_RULES: tuple[tuple[type[Warning], str, str, str], ...] = (
    (FutureWarning, r"pytorch_lightning\.", r"`isinstance\(treespec, LeafSpec\)` is deprecated",
     "Lightning's own use of a torch pytree class that torch deprecated; nothing for a user to change"),
    (UserWarning, r"captum\.", r"Setting backward hooks on ReLU activations",
     "Captum (Grad-CAM's guided backprop) announces the hooks it removes again after attribution"),
)  # fmt: skip

#: Log records silenced: logger name → (message prefix, why it is harmless).
LOG_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "mlflow.pyfunc": (
        ("Passing a Python object as `python_model`",
         "ecg-mi packages its model as a PythonModel object on purpose (ecg_mi.packaging); MLflow "
         "warns every such model that loading a pickle runs code — load only models you trust"),
    ),
}  # fmt: skip

#: Loggers with their own console handler (not the root's), held at WARNING: their INFO lines
#: (MLflow's "Creating initial MLflow database tables", "Validating input example") are routine.
QUIET_LOGGERS = ("mlflow", "alembic")

#: The environment variable that turns progress bars off.
NO_PROGRESS = "ECG_MI_NO_PROGRESS"


class _DropRecords(logging.Filter):
    """Drops the records of one logger whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def silence_warnings() -> None:
    """Ignore the Python warnings :data:`WARNING_RULES` names, and no other."""
    for category, module, message, _why in WARNING_RULES:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def quiet(verbose: bool = False) -> None:
    """Install the rules above in this process (idempotent), unless ``verbose``.

    Called by each process that runs a job (the entry process, joblib and submitit workers,
    DDP ranks) before the libraries the rules name are imported, and again after Hydra set up
    a job's logging (it replaces the handlers)."""
    if verbose:
        return
    silence_warnings()
    for name, rules in LOG_RULES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropRecords) for f in logger.filters):
            logger.addFilter(_DropRecords(tuple(prefix for prefix, _why in rules)))
    # MLflow sets its logger's level when imported, from $MLFLOW_LOGGING_LEVEL (a user's wins).
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        # The console handlers (Hydra's writes to stdout); a file handler keeps INFO.
        if type(handler) is logging.StreamHandler and handler.stream in (sys.stdout, sys.stderr):
            handler.setLevel(logging.WARNING)


def progress_enabled(configured: bool = True) -> bool:
    """Whether to draw progress bars: ``configured`` (``trainer.enable_progress_bar``) and
    ``$ECG_MI_NO_PROGRESS`` unset."""
    return bool(configured) and not os.environ.get(NO_PROGRESS)


@dataclass(frozen=True)
class RunSummary:
    """What the end of a run says: its name, metrics and where it landed."""

    run_name: str
    metrics: Mapping[str, float]
    experiment: str
    run_id: str
    tracking_uri: str  # already redacted
    model_uri: str | None = None  # None when the model was not logged
    skipped: bool = False  # an earlier finished run with this config and fold was reused

    def lines(self) -> list[str]:
        """The summary, a few lines of plain text."""
        m = self.metrics
        head = (f"{self.run_name}: val AUC {m['val_auc']:.3f} · test AUC {m['test_auc']:.3f} · "
                f"test F1 {m['test_f1']:.3f}")  # fmt: skip
        if self.skipped:
            head += " (already finished: skipped)"
        lines = [head, f"  run    {self.experiment} / {self.run_id}  ({self.tracking_uri})"]
        if self.model_uri:
            lines.append(f"  model  {self.model_uri}")
        return lines


def print_summary(summary: RunSummary) -> None:
    """Print ``summary`` on stdout (whatever the verbosity: it is the run's answer)."""
    print("\n".join(summary.lines()), flush=True)
