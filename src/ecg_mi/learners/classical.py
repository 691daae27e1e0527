"""The classical family: scikit-learn estimators on the 408 clinical features."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from sklearn.base import clone

from ecg_mi.datamodule import FoldDataModule
from ecg_mi.errors import ConfigError
from ecg_mi.learners.base import Artifact, Learner, register_family
from ecg_mi.packaging import EcgMiPackage, write_estimator
from ecg_mi.representation import Representation


@register_family
class ClassicalLearner(Learner):
    """Fits a feature-based estimator (``fit(X, y, groups)``/``predict_proba``) on the
    training part. Any hyper-parameter search runs inside ``fit`` on the training part
    only (grouped by patient); its best parameters and inner-CV AUC are logged to the run.

    ``model.refit_on_val: true``: once fitted on the training part and its validation P(MI)
    taken, the model is fitted again (a clone, same settings) on the training and validation
    parts together; the test part, the explanation and the packaged model get the refitted
    one, while the validation P(MI) — the F1 threshold, the calibration, ``val_auc`` and the
    choice among models — stay those of the first fit, which never saw them. Why: the trees
    still gain from data (BENCHMARKS.md, "Extra Trees"), and once their settings are chosen
    the validation part is ≈ 11 % more to learn from (PTB-XL with ``data.train_pool=all``;
    the validation patients' records outside the cohort, 4 in fold 0, stay out).
    """

    family = "classical"
    arm = "clinical features"
    fit_keys = ("refit_on_val",)
    _val_probs: np.ndarray | None = None  # the first fit's validation P(MI) when refitted
    explanation = "importance"
    representation = "features"
    model_file = "model.pkl"
    # Nothing of the network training reaches a feature model: HASHED_KEYS alone.
    legacy_unhashed = ("trainer", "callbacks", "augment", "data.batch_size", "data.num_workers",
                       "data.pin_memory", "data.aux_targets", "data.teacher")  # fmt: skip
    unused = (*legacy_unhashed, "explain.n_examples")  # and the Grad-CAM figures

    @classmethod
    def check_representation(cls, representation: Representation) -> None:
        if representation.for_networks or representation.features != "raw":
            raise ConfigError(f"representation={representation.name}: a classical model reads the 408 "
                              "features alone (representation=features)")  # fmt: skip

    def fit(self, model: Any, data: FoldDataModule) -> dict[str, float]:
        X, y = data.arrays("train")
        started = time.perf_counter()
        self.model = model.fit(X, y, groups=data.groups("train"))
        info = {"fit_seconds": time.perf_counter() - started, "n_failed_features": data.feature_table.n_failed}
        summary = getattr(model, "search_summary_", {})
        if "early_stopped_trees" in summary:  # XGBoost, no search: the trees early stopping chose
            info["early_stopped_trees"] = summary["early_stopped_trees"]
        if "inner_cv_auc" in summary:
            info["inner_cv_auc"] = summary["inner_cv_auc"]
            info["search_candidates"] = summary["candidates"]
            info["search_averaged"] = summary.get("averaged", 1)
            if self.run_id:
                mlflow.log_params({f"search.best.{k}": v for k, v in summary["best_params"].items()})
        if self.cfg.model.get("refit_on_val", False):
            info.update(self._refit_on_val(data, X, y))
        return info

    def _refit_on_val(self, data: FoldDataModule, X_train: np.ndarray, y_train: np.ndarray) -> dict[str, float]:
        """Keep the validation P(MI) of the model fitted so far, then fit a clone of it on the
        training part (``X_train``, ``y_train``, as fitted) and the validation part together
        (see the class docstring)."""
        X_val, y_val = data.arrays("val")
        self._val_probs = self._probs(X_val)
        X, y = np.concatenate([X_train, X_val]), np.concatenate([y_train, y_val])
        groups = np.concatenate([data.groups("train"), data.groups("val")])
        started = time.perf_counter()
        self.model = clone(self.model).fit(X, y, groups=groups)
        return {"refit_seconds": time.perf_counter() - started, "n_refit": float(len(y))}

    def predict(self, data: FoldDataModule, part: str) -> np.ndarray:
        if part == "val" and self._val_probs is not None:
            return self._val_probs  # the first fit's: the refitted model has seen these records
        return self._probs(data.arrays(part)[0])

    def _probs(self, X: np.ndarray) -> np.ndarray:
        """P(MI) ``[n]`` of the current model for the feature rows ``X``."""
        return self.model.predict_proba(X)[:, 1].astype(np.float64)

    def explain(self, data: FoldDataModule, probs: np.ndarray) -> tuple[dict[str, float], list[Artifact]]:
        """Permutation importance on the test fold (+ XGBoost gain/weight)."""
        from ecg_mi.explain.permutation import explain_classical

        repeats = int(self.cfg.explain.permutation_repeats)
        return explain_classical(self.model, data, self.run_dir, repeats, int(self.cfg.seed))

    def write_model(self, path: Path) -> None:
        write_estimator(self.model, path)


# Format-1 packages (before the representation) pickled this class; they load as EcgMiPackage.
ClassicalPackage = EcgMiPackage
