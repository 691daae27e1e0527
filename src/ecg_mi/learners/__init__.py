"""Model families: the one object per family that the train route and evaluate call."""

from ecg_mi.learners import classical, network  # noqa: F401  (registers the families)
from ecg_mi.learners.base import (
    Artifact,
    Learner,
    arm_of,
    build_model,
    check_fit_keys,
    fold_settings,
    learner_for,
    list_families,
    register_family,
)

__all__ = ["Artifact", "Learner", "arm_of", "build_model", "check_fit_keys", "fold_settings", "learner_for",
           "list_families", "register_family"]  # fmt: skip
