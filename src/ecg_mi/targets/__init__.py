"""What a network learns from: the MI label, auxiliary targets and a teacher's soft MI target.

:class:`Targets` turns a part of the fold (its table of records) into the ``y`` a batch carries:

* validation and test parts: the MI label ``[n]`` (selection and scores concern MI alone);
* the training part: the MI label — or, with a teacher (:mod:`ecg_mi.targets.teacher`),
  ``(1 - weight) * label + weight * P(MI)`` of a feature model, cross-fitted on the training
  part — followed by the source's ``aux_<NAME>`` columns when auxiliary targets are asked
  (``[n, 1 + K]``, MI first; the LightningModule trains an auxiliary head on them).

Feature models ignore it: they fit the MI label of the training part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ecg_mi.data.columns import AUX_PREFIX
from ecg_mi.errors import ConfigError
from ecg_mi.targets.teacher import check_teacher, cross_fitted_probabilities, soft_targets

log = logging.getLogger(__name__)


@dataclass
class Targets:
    """The training targets of one fold: ``aux`` (names of the source's ``aux_<NAME>``
    columns) and ``teacher`` (``data.teacher``: ``{estimator, weight, folds}``, or None)."""

    aux: Sequence[str] = ()
    teacher: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.aux = list(self.aux)
        self.teacher = check_teacher(self.teacher)

    @property
    def aux_columns(self) -> list[str]:
        return [f"{AUX_PREFIX}{name}" for name in self.aux]

    def check_offered(self, columns: Sequence[str], source_name: str) -> None:
        """ConfigError when the source's table lacks an asked auxiliary column."""
        offered = [c for c in columns if c.startswith(AUX_PREFIX)]
        absent = [c.removeprefix(AUX_PREFIX) for c in self.aux_columns if c not in offered]
        if absent:
            names = [c.removeprefix(AUX_PREFIX) for c in offered]
            raise ConfigError(f"model.aux_targets: {absent} not offered by data source {source_name!r} "
                              f"(it offers {names})")  # fmt: skip

    def training(self, part: pd.DataFrame, features: Callable[[], np.ndarray]) -> np.ndarray:
        """``y`` of the training part: ``[n]``, or ``[n, 1 + K]`` with auxiliary targets;
        ``features()`` gives its 408 features (read only when a teacher needs them)."""
        labels = part[["label", *self.aux_columns]].to_numpy(np.float64, copy=True)
        if self.teacher:
            labels[:, 0] = self._teacher_targets(part, features())
        return labels if self.aux else labels[:, 0]

    @staticmethod
    def evaluation(part: pd.DataFrame) -> np.ndarray:
        """``y`` of a validation or test part: the MI label ``[n]``."""
        return part["label"].to_numpy(np.float64)

    def _teacher_targets(self, part: pd.DataFrame, features: np.ndarray) -> np.ndarray:
        teacher, labels = self.teacher, part["label"].to_numpy()
        probabilities = cross_fitted_probabilities(teacher["model"], features, labels,
                                                   part["patient_id"].to_numpy(), teacher["folds"])  # fmt: skip
        log.info("teacher %s: cross-fitted AUC %.3f on the %d training records (weight %.2f)", teacher["model"].model_name,
                 roc_auc_score(labels, probabilities), len(labels), teacher["weight"])  # fmt: skip
        return soft_targets(labels, probabilities, teacher["weight"])


__all__ = ["Targets"]
