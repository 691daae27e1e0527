"""Range and type checks of the configuration values users override on the command line.

Hydra turns ``seed=abc`` into the string ``'abc'`` and ``trainer.max_epochs=-1`` into -1
without complaint; left alone, such values surface later as a traceback from Lightning,
PyTorch or NumPy (or, worse, are accepted: Lightning reads ``max_epochs=-1`` as "train
forever" and a negative seed as "pick a random one"). :func:`check_train_config` and
:func:`check_evaluate_config` run first in ``train.run`` / ``evaluate.run`` and raise one
:class:`~ecg_mi.errors.ConfigError` naming every bad key, its value and what it must be,
e.g. ``trainer.max_epochs=-1: must be a positive integer``.

Keys absent from a config are skipped (configs differ between model families, and a key
removed from ``conf/`` must not break the check); a value that cannot be resolved (a broken
``${...}`` interpolation) is reported like a bad value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ecg_mi.calibration import METHODS
from ecg_mi.errors import ConfigError

MAX_SEED = 2**32 - 1  # numpy's and Lightning's seed range
_ABSENT = object()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _nullable(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0


def int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda value: _is_int(value) and value >= low


def positive_number(value: Any) -> bool:
    return _is_number(value) and value > 0


def number_in(low: float, high: float, *, low_open: bool = False) -> Callable[[Any], bool]:
    """A finite number in ``[low, high)`` (``(low, high)`` with ``low_open``)."""
    return lambda v: _is_number(v) and (v > low if low_open else v >= low) and v < high


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def seed_value(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= MAX_SEED


def alias_value(value: Any) -> bool:
    """A registered-model alias MLflow accepts (``latest`` and ``v<n>`` are reserved)."""
    return (isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]+", value) is not None
            and value.lower() != "latest" and re.fullmatch(r"[vV]\d+", value) is None)  # fmt: skip


def skip_missing_value(value: Any) -> bool:
    return isinstance(value, bool) or value == "auto"


def age_bands_value(value: Any) -> bool:
    """A list of ``[low, high)`` pairs of numbers with ``low < high``."""
    if not isinstance(value, list | tuple):
        return False
    return all(
        isinstance(b, list | tuple)
        and len(b) == 2
        and all(_is_number(x) for x in b)
        and b[0] < b[1]
        for b in value
    )


def n_jobs_value(value: Any) -> bool:
    return _is_int(value) and value != 0  # scikit-learn: -1 = all cores, 0 is an error


@dataclass(frozen=True)
class Rule:
    """``key`` (dotted path) must satisfy ``check``; ``expect`` says what it must be."""

    key: str
    check: Callable[[Any], bool]
    expect: str


POSITIVE_INT = "must be a positive integer"
NON_NEGATIVE_INT = "must be an integer >= 0"
SEED = f"must be an integer in 0..{MAX_SEED}"
BOOL = "must be true or false"
TRACKING_URI = "must be a tracking URI (sqlite:///…, http://…) or null"
PATH = "must be a path (quote it if it holds , [ ] = or spaces: 'key=\"a, b.csv\"')"

TRAIN_RULES: tuple[Rule, ...] = (
    Rule("seed", seed_value, SEED),
    Rule("fold", int_at_least(0), NON_NEGATIVE_INT),
    Rule("experiment_name", non_empty_str, "must be a non-empty name"),
    Rule("skip_finished", is_bool, BOOL),
    Rule("trainer.max_epochs", positive_int, POSITIVE_INT),
    Rule("trainer.min_epochs", _nullable(int_at_least(0)), "must be an integer >= 0 or null"),
    Rule("trainer.log_every_n_steps", positive_int, POSITIVE_INT),
    Rule("trainer.accumulate_grad_batches", positive_int, POSITIVE_INT),
    Rule("trainer.gradient_clip_val", _nullable(number_in(0, math.inf)), "must be >= 0 or null"),
    Rule("callbacks.early_stopping.patience", int_at_least(0), NON_NEGATIVE_INT),
    Rule("data.batch_size", positive_int, POSITIVE_INT),
    Rule("data.num_workers", int_at_least(0), NON_NEGATIVE_INT),
    Rule("data.pin_memory", is_bool, BOOL),
    Rule("data.n_folds", int_at_least(2), "must be an integer >= 2"),
    Rule("data.val_fraction", number_in(0, 0.5, low_open=True), "must be a number in (0, 0.5)"),
    Rule("data.skip_missing", skip_missing_value, "must be true, false or auto"),
    Rule("data.cohort.ratio", _nullable(positive_number), "must be a positive number or null"),
    Rule("data.cohort.max_cases", _nullable(positive_int), "must be a positive integer or null"),
    Rule("data.cohort.seed", seed_value, SEED),
    Rule("model.lr", positive_number, "must be a positive number"),
    Rule("model.weight_decay", number_in(0, math.inf), "must be a number >= 0"),
    Rule("model.dropout", number_in(0, 1), "must be a number in [0, 1)"),
    Rule("model.pos_weight", _nullable(positive_number), "must be a positive number or null"),
    Rule("model.n_jobs", n_jobs_value, "must be a non-zero integer (-1 = all cores)"),
    Rule("model.inner_folds", int_at_least(2), "must be an integer >= 2"),
    Rule("model.n_iter", positive_int, POSITIVE_INT),
    Rule("model.refit_on_val", is_bool, BOOL),
    *(
        Rule(f"augment.{k}", number_in(0, 1), "must be a number in [0, 1)")
        for k in ("crop", "shift", "scale", "noise")
    ),  # fmt: skip
    Rule("calibration", lambda v: v in METHODS, f"must be one of {', '.join(METHODS)}"),
    Rule("explain.enabled", is_bool, BOOL),
    Rule("explain.n_examples", int_at_least(0), NON_NEGATIVE_INT),
    Rule("explain.permutation_repeats", positive_int, POSITIVE_INT),
    Rule("tracking.log_model", is_bool, BOOL),
    Rule("tracking.uri", _nullable(non_empty_str), TRACKING_URI),
)

EVALUATE_RULES: tuple[Rule, ...] = (
    # A percentile CI from 1 resample is undefined (the stats code would index an empty list).
    Rule("n_bootstrap", int_at_least(2), "must be an integer >= 2 (patient resamples per CI)"),
    Rule("seed", seed_value, SEED),
    Rule("experiment_name", non_empty_str, "must be a non-empty name"),
    Rule("min_group", int_at_least(0), NON_NEGATIVE_INT),
    Rule("age_bands", age_bands_value, "must be a list of [low, high] pairs with low < high"),
    Rule("allow_incomplete", is_bool, BOOL),
    Rule("paper", is_bool, BOOL),
    Rule("n_examples", positive_int, POSITIVE_INT),
    Rule("explain", lambda v: v is None or v == "gradcam", "must be null or gradcam"),
    Rule("run_id", _nullable(non_empty_str), "must be an MLflow run id or null"),
    Rule("register", _nullable(non_empty_str), "must be a registered-model name or null"),
    Rule("alias", alias_value, "must be letters, digits, _ or -, and neither latest nor v<number>"),
    Rule("self_contained", is_bool, BOOL),
    Rule("tracking.uri", _nullable(non_empty_str), TRACKING_URI),
    Rule("recalibrate", is_bool, BOOL),
    *(Rule(key, _nullable(number_in(0, 1, low_open=True)), "must be a fraction in (0, 1) or null")
      for key in ("prevalence", "train_prevalence")),
)

PREDICT_RULES: tuple[Rule, ...] = (
    Rule("model_uri", _nullable(non_empty_str), "must be an MLflow model URI (runs:/…, models:/…, a folder)"),
    Rule("input", _nullable(non_empty_str), PATH),
    Rule("input_list", _nullable(non_empty_str), PATH),
    Rule("output", _nullable(non_empty_str), PATH),
    Rule("gradcam", is_bool, BOOL),
    Rule("gradcam_dir", _nullable(non_empty_str), PATH),
    Rule("batch_size", positive_int, POSITIVE_INT),
    Rule("resume", is_bool, BOOL),
    Rule("workers", lambda v: v == "auto" or int_at_least(0)(v), "must be auto or a whole number >= 0"),
    *(Rule(key, _nullable(number_in(0, 1, low_open=True)), "must be a fraction in (0, 1) or null")
      for key in ("prevalence", "train_prevalence")),
    Rule("tracking.uri", _nullable(non_empty_str), TRACKING_URI),
)


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved plain value at ``key`` (lists as lists), or ``_ABSENT``."""
    value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=True)
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def problems(cfg: DictConfig, rules: tuple[Rule, ...]) -> list[str]:
    """``"<key>=<value>: <what it must be>"`` for every rule ``cfg`` breaks."""
    found = []
    for rule in rules:
        try:
            value = _value(cfg, rule.key)
        except OmegaConfBaseException as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            found.append(f"{rule.key}: cannot be resolved ({first_line})")
            continue
        if value is not _ABSENT and not rule.check(value):
            found.append(f"{rule.key}={value!r}: {rule.expect}")
    return found


def _raise(found: list[str]) -> None:
    if found:
        raise ConfigError("; ".join(found))


def check_train_config(cfg: DictConfig) -> None:
    """Raise one ConfigError listing every bad value of a ``train.py`` config."""
    _raise(problems(cfg, TRAIN_RULES))


def check_predict_config(cfg: DictConfig) -> None:
    """Raise one ConfigError listing every bad value of a ``predict.py`` config."""
    _raise(problems(cfg, PREDICT_RULES))


def check_evaluate_config(cfg: DictConfig) -> None:
    """Raise one ConfigError listing every bad value of an ``evaluate.py`` config."""
    _raise(problems(cfg, EVALUATE_RULES))
