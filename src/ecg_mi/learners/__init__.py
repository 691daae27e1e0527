"""Model families: the one object per family that the train route and evaluate call."""

from ecg_mi.learners import classical, network  # noqa: F401  (registers the families)
from ecg_mi.learners.base import (
    ENSEMBLE_ARM,
    Artifact,
    Learner,
    architecture,
    build_model,
    check_fit_keys,
    describe,
    fold_settings,
    learner_for,
    list_families,
    model_label,
    model_names,
    names_of,
    register_family,
    representation_of,
)

__all__ = ["ENSEMBLE_ARM", "Artifact", "Learner", "architecture", "build_model", "check_fit_keys", "describe",
           "fold_settings", "learner_for", "list_families", "model_label", "model_names", "names_of",
           "register_family", "representation_of"]  # fmt: skip
