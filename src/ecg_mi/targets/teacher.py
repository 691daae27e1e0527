"""A feature model as the networks' teacher (distillation; ``teacher=random_forest``).

The network still sees only the signal — at training and at prediction time — but its MI
training target becomes ``(1 - weight) * label + weight * P(MI)`` of a classical model fitted on
the 408 features of the same training records. Each training record's ``P(MI)`` is
*cross-fitted*: it comes from a teacher fitted on the other patients' records of the training
part (patient-grouped folds), so no soft target comes from a model that saw its record — or its
patient's other ECGs. Validation and test parts keep their hard labels; nothing of them reaches
the teacher.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GroupKFold

from ecg_mi.errors import ConfigError

TEACHER_KEYS = ("estimator", "weight", "folds")


def check_teacher(teacher: dict[str, Any] | None) -> dict[str, Any] | None:
    """``teacher`` (``data.teacher``) with its values checked and its estimator built, or None
    when off. ``estimator`` is a model config (``_target_`` and all, as ``conf/model/*.yaml``:
    ``teacher=<name>`` composes ``conf/model/<name>.yaml`` there), so a teacher has exactly the
    settings its model has when trained on its own; the result holds the unfitted model."""
    if not teacher:
        return None
    unknown = sorted(set(teacher) - set(TEACHER_KEYS))
    if unknown:
        raise ConfigError(f"data.teacher: unknown key(s) {unknown}; known: {list(TEACHER_KEYS)}")
    from ecg_mi.models.registry import constructor_config, get_model_class
    from ecg_mi.utils.config import build

    estimator = teacher.get("estimator")
    if not isinstance(estimator, dict) or "name" not in estimator:
        raise ConfigError("data.teacher.estimator: a model config (as conf/model/<name>.yaml) is required")
    name = str(estimator["name"])
    if get_model_class(name).family != "classical":  # ConfigError listing the names if unknown
        raise ConfigError(f"data.teacher.estimator.name={name!r}: a teacher is a feature model, not a network")
    weight = float(teacher.get("weight", 0.5))
    if not 0.0 < weight <= 1.0:
        raise ConfigError(f"data.teacher.weight={weight} must be in (0, 1]")
    folds = int(teacher.get("folds", 5))
    if folds < 2:
        raise ConfigError(f"data.teacher.folds={folds} must be >= 2")
    # A teacher is cross-fitted inside the training part: refit_on_val has nothing to add there.
    model = build(constructor_config(estimator), "data.teacher.estimator")
    try:  # a parameter the estimator lacks fails here, not after the epochs
        model.make_estimator()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"data.teacher.estimator.params: {exc}") from None
    return {"model": model, "weight": weight, "folds": folds}


def cross_fitted_probabilities(
    teacher: Any, features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int,
) -> np.ndarray:
    """P(MI) of each row of ``features`` ``[n, 408]`` from a fresh clone of the unfitted
    classical model ``teacher`` fitted on the rows of the other groups (patients), ``folds``
    patient-grouped folds."""
    n_groups = len(np.unique(groups))
    if n_groups < folds:
        raise ConfigError(f"data.teacher.folds={folds}: the training part has only {n_groups} patients")
    probabilities = np.empty(len(labels), dtype=np.float64)
    for fit_rows, held_rows in GroupKFold(n_splits=folds).split(features, labels, groups):
        if len(np.unique(labels[fit_rows])) < 2:
            raise ConfigError(f"data.teacher: a teacher fold has one class only ({folds} folds)")
        fitted = clone(teacher).fit(features[fit_rows], labels[fit_rows], groups=groups[fit_rows])
        probabilities[held_rows] = fitted.predict_proba(features[held_rows])[:, 1]
    return probabilities


def soft_targets(labels: np.ndarray, teacher_probabilities: np.ndarray, weight: float) -> np.ndarray:
    """The MI training targets ``(1 - weight) * label + weight * P(MI)`` (in [0, 1])."""
    return (1.0 - weight) * labels.astype(np.float64) + weight * teacher_probabilities
