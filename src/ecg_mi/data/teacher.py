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

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from ecg_mi.errors import ConfigError

TEACHER_KEYS = ("model", "params", "weight", "folds")


def check_teacher(teacher: dict[str, Any] | None) -> dict[str, Any] | None:
    """``teacher`` (``data.teacher``) with its values checked, or None when off."""
    if not teacher:
        return None
    unknown = sorted(set(teacher) - set(TEACHER_KEYS))
    if unknown:
        raise ConfigError(f"data.teacher: unknown key(s) {unknown}; known: {list(TEACHER_KEYS)}")
    from ecg_mi.models.registry import get_model_class

    model = str(teacher.get("model"))
    if get_model_class(model).family != "classical":  # ConfigError listing the names if unknown
        raise ConfigError(f"data.teacher.model={model!r}: a teacher is a feature model, not a network")
    weight = float(teacher.get("weight", 0.5))
    if not 0.0 < weight <= 1.0:
        raise ConfigError(f"data.teacher.weight={weight} must be in (0, 1]")
    folds = int(teacher.get("folds", 5))
    if folds < 2:
        raise ConfigError(f"data.teacher.folds={folds} must be >= 2")
    params = dict(teacher.get("params") or {})
    _teacher_model(model, params, seed=0)  # a parameter the estimator lacks fails here, not after the epochs
    return {"model": model, "params": params, "weight": weight, "folds": folds}


def _teacher_model(model: str, params: Mapping[str, Any], seed: int) -> Any:
    """Registered model ``model`` with estimator ``params``; ConfigError for a parameter its
    estimator does not take."""
    from ecg_mi.models import create_model

    teacher = create_model(model, params=dict(params), seed=seed, n_jobs=2)
    try:
        teacher.make_estimator()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"data.teacher.params: {exc}") from None
    return teacher


def cross_fitted_probabilities(
    model: str, features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int, seed: int,
    params: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """P(MI) of each row of ``features`` ``[n, 408]`` from registered model ``model`` (with
    estimator ``params``; none = its library defaults) fitted on the rows of the other groups
    (patients), ``folds`` patient-grouped folds."""
    n_groups = len(np.unique(groups))
    if n_groups < folds:
        raise ConfigError(f"data.teacher.folds={folds}: the training part has only {n_groups} patients")
    probabilities = np.empty(len(labels), dtype=np.float64)
    for fit_rows, held_rows in GroupKFold(n_splits=folds).split(features, labels, groups):
        if len(np.unique(labels[fit_rows])) < 2:
            raise ConfigError(f"data.teacher: a teacher fold has one class only ({folds} folds)")
        teacher = _teacher_model(model, params or {}, seed)
        teacher.fit(features[fit_rows], labels[fit_rows], groups=groups[fit_rows])
        probabilities[held_rows] = teacher.predict_proba(features[held_rows])[:, 1]
    return probabilities


def soft_targets(labels: np.ndarray, teacher_probabilities: np.ndarray, weight: float) -> np.ndarray:
    """The MI training targets ``(1 - weight) * label + weight * P(MI)`` (in [0, 1])."""
    return (1.0 - weight) * labels.astype(np.float64) + weight * teacher_probabilities
