"""What every model family implements, and the family registry.

A *family* (networks on signals, classical models on the 408 features) owns a trained
model's whole life: its DataModule, fit, predict, explain, how a trained model is saved
and loaded, which config keys change its results (the config hash), and its arm in the
report. Every registered model names its family (``family = "network"``); the train route
and evaluate ask :func:`learner_for` and never branch on the kind of model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ecg_mi.data.datamodule import FoldDataModule
from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.data.windows import DEFAULT_PAD_TOLERANCE_S, DEFAULT_WINDOW_S
from ecg_mi.errors import ConfigError
from ecg_mi.models.registry import FIT_KEYS, constructor_config, get_model_class, is_ensemble
from ecg_mi.packaging import PACKAGE_FORMAT, Packaged, ecg_mi_version
from ecg_mi.utils.config import build

Artifact = tuple[Path, str | None]  # (file, MLflow artifact folder)

#: Config keys that say where or how verbosely to log, never what is computed.
UNHASHED_KEYS = ("skip_finished", "tracking", "explain", "experiment_name", "optimized_metric")


class Learner(ABC):
    """One model family. ``cfg`` is the composed train config; ``run_dir`` a folder for
    this run's files; ``run_id``/``uri`` the MLflow run to log per-epoch curves to (None
    in processes that only help fitting, e.g. DDP ranks > 0)."""

    family: ClassVar[str]
    arm: ClassVar[str]  # the report's name for the family ("raw ECG", "clinical features")
    explanation: ClassVar[str]  # what explain() computes ("gradcam", "importance")
    #: Dotted config keys besides :data:`UNHASHED_KEYS` that do not change this family's results.
    unhashed: ClassVar[tuple[str, ...]] = ()
    #: The :data:`~ecg_mi.models.registry.FIT_KEYS` this family implements.
    fit_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: DictConfig, run_dir: Path, run_id: str | None = None,
                 uri: str | None = None) -> None:  # fmt: skip
        self.cfg, self.run_dir, self.run_id, self.uri = cfg, Path(run_dir), run_id, uri
        self.model: Any = None  # the trained model once fit() or load() ran

    @classmethod
    @abstractmethod
    def datamodule(cls, cfg: DictConfig) -> FoldDataModule:
        """The fold's DataModule serving what this family consumes."""

    @abstractmethod
    def fit(self, model: Any, data: FoldDataModule) -> dict[str, float]:
        """Fit ``model`` on the training part (selection on validation); facts to log."""

    @abstractmethod
    def predict(self, data: FoldDataModule, part: str) -> np.ndarray:
        """P(MI) ``[n]`` of the trained model for the records of ``part``, in loader order."""

    @abstractmethod
    def explain(self, data: FoldDataModule, probs: np.ndarray) -> tuple[dict[str, float], list[Artifact]]:
        """Metrics and files explaining the trained model on the test part."""

    @abstractmethod
    def save(self) -> list[Path]:
        """Write the trained model into ``run_dir``; the files to log under ``checkpoint/``."""

    @abstractmethod
    def load(self, path: Path) -> Any:
        """Load a model written by :meth:`save` (``path``: its main file) as ``self.model``."""

    @abstractmethod
    def package(self, data: FoldDataModule, threshold: float) -> Packaged:
        """The trained model as a self-contained MLflow pyfunc (:mod:`ecg_mi.packaging`):
        its PythonModel (metadata from :meth:`package_info`, the family's preprocessing
        fitted on ``data``'s training part) and its weight files, written under ``run_dir``."""

    def package_info(self, threshold: float) -> dict[str, Any]:
        """The packaged model's ecg-mi metadata (the contract of :mod:`ecg_mi.packaging`):
        ``threshold`` is the run's validation-chosen ``test_threshold``."""
        from ecg_mi.features import FEATURE_VERSION

        cfg = self.cfg
        return {
            "format": PACKAGE_FORMAT, "model": str(cfg.model.name), "family": self.family,
            "sample_rate": int(cfg.data.sample_rate), "window_s": float(DEFAULT_WINDOW_S),
            "pad_tolerance_s": float(DEFAULT_PAD_TOLERANCE_S), "leads": list(STANDARD_LEADS),
            "units": "mV", "threshold": float(threshold),
            "threshold_rule": "max F1 on the validation part", "n_models": 1,
            "feature_version": FEATURE_VERSION, "ecg_mi_version": ecg_mi_version(),
            "data": str(cfg.data.name), "runs": [self.run_id] if self.run_id else [],
            "folds": [int(cfg.fold)],
        }  # fmt: skip

    @classmethod
    def hashed_config(cls, cfg: DictConfig) -> dict[str, Any]:
        """The resolved config without the keys that do not change this family's results."""
        config = OmegaConf.to_container(cfg, resolve=True)
        for key in (*UNHASHED_KEYS, *cls.unhashed):
            _drop(config, key.split("."))
        return config


def _drop(config: dict[str, Any], path: list[str]) -> None:
    node = config
    for key in path[:-1]:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    node.pop(path[-1], None)


def fold_settings(cfg: DictConfig) -> dict[str, Any]:
    """Keyword arguments of :class:`FoldDataModule` from ``cfg.data``, ``cfg.fold``, ``cfg.seed``."""
    data = cfg.data
    return dict(
        source=build(data.source, "data.source"), sample_rate=data.sample_rate, fold=cfg.fold,
        n_folds=data.n_folds, cohort=OmegaConf.to_container(data.cohort, resolve=True),
        val_fraction=data.val_fraction, skip_missing=data.skip_missing, fold_file=data.fold_file,
        seed=cfg.seed, cache_dir=data.cache_dir, train_pool=data.get("train_pool", "cohort"),
        also_at_rate=data.get("also_at_rate"),
    )  # fmt: skip


_FAMILIES: dict[str, type[Learner]] = {}
L = TypeVar("L", bound=type[Learner])


def register_family(cls: L) -> L:
    """Class decorator registering a Learner under its ``family`` name."""
    _FAMILIES[cls.family] = cls
    return cls


def list_families() -> list[str]:
    return sorted(_FAMILIES)


def _supporting(key: str) -> str:
    return ", ".join(f"the {f} models" for f, cls in sorted(_FAMILIES.items()) if key in cls.fit_keys) or "none"


def learner_for(model_name: str) -> type[Learner]:
    """The family Learner of registered model ``model_name`` (ConfigError if unknown)."""
    family = get_model_class(model_name).family
    try:
        return _FAMILIES[family]
    except KeyError:
        raise ConfigError(
            f"model {model_name!r} belongs to family {family!r}, which no learner implements; "
            f"known families: {', '.join(list_families())}"
        ) from None


#: The report arm of an ensemble of models (``a+b``).
ENSEMBLE_ARM = "ensemble"
#: The report arm of a network that reads the clinical features besides the signal: never
#: counted as a raw-ECG model.
HYBRID_ARM = "raw ECG + features"


def arm_of(model_name: str) -> str:
    """The report arm of ``model_name``: its family's, :data:`HYBRID_ARM` for a network that
    also reads the features, :data:`ENSEMBLE_ARM` for an ensemble ``a+b``, "other" for a
    model this install does not know."""
    if is_ensemble(model_name):
        return ENSEMBLE_ARM
    try:
        learner = learner_for(model_name)
    except ConfigError:
        return "other"
    return HYBRID_ARM if getattr(get_model_class(model_name), "clinical_features", False) else learner.arm


def build_model(cfg: DictConfig) -> Any:
    """The registered model named by ``cfg.model.name`` (via ``_target_``), unfitted; the
    model config's :data:`~ecg_mi.models.registry.FIT_KEYS` are the learner's, not its."""
    get_model_class(cfg.model.name)  # unknown names fail here, listing the known ones
    return build(constructor_config(OmegaConf.to_container(cfg.model, resolve=True)), "model", _convert_="all")


def check_fit_keys(cfg: DictConfig, learner: type[Learner]) -> None:
    """ConfigError for a fit key of ``cfg.model`` (:data:`FIT_KEYS`) set for a ``learner``
    that does not implement it, before any run starts (its type: ``config_checks``)."""
    for key in FIT_KEYS:
        if cfg.model.get(key, False) and key not in learner.fit_keys:
            raise ConfigError(f"model.{key}=true: the {learner.family} models do not support it "
                              f"({cfg.model.name} is one); only {_supporting(key)} do")


__all__ = ["Artifact", "Learner", "arm_of", "build_model", "check_fit_keys", "fold_settings",
           "learner_for", "list_families", "register_family"]  # fmt: skip
