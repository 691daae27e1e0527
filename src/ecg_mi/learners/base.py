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

from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.data.windows import DEFAULT_PAD_TOLERANCE_S, DEFAULT_WINDOW_S
from ecg_mi.datamodule import FoldDataModule
from ecg_mi.errors import ConfigError
from ecg_mi.models.base import LEGACY_MODELS
from ecg_mi.models.registry import (
    FIT_KEYS,
    constructor_config,
    display_name,
    get_model_class,
    is_ensemble,
    members_of,
)
from ecg_mi.packaging import PACKAGE_FORMAT, EcgMiPackage, Member, Packaged, ecg_mi_version
from ecg_mi.representation import Representation
from ecg_mi.targets import Targets
from ecg_mi.tracking import config_params
from ecg_mi.utils.config import build

Artifact = tuple[Path, str | None]  # (file, MLflow artifact folder)

#: The config keys whose values change what any model computes (dotted paths; a subtree counts
#: whole). A key not named here — where to log, how verbosely, how many loader workers, any option
#: added later — never changes a run's config hash, so ``skip_finished`` finds the run again.
HASHED_KEYS = ("seed", "fold", "calibration", "model", "representation", "data.name", "data.source",
               "data.sample_rate", "data.n_folds", "data.cohort", "data.val_fraction", "data.skip_missing",
               "data.fold_file", "data.train_pool", "data.also_at_rate")  # fmt: skip
#: Keys of every run's config that its params leave out: the model config's name (the run's
#: ``model`` param names the model, with its representation when not the default) and the
#: representation it reads by default (``representation.*`` is the one it read).
UNLOGGED_KEYS = ("model.name", "model.representation")


class Learner(ABC):
    """One model family. ``cfg`` is the composed train config; ``run_dir`` a folder for
    this run's files; ``run_id``/``uri`` the MLflow run to log per-epoch curves to (None
    in processes that only help fitting, e.g. DDP ranks > 0)."""

    family: ClassVar[str]
    arm: ClassVar[str]  # the report's name for the family ("raw ECG", "clinical features")
    explanation: ClassVar[str]  # what explain() computes ("gradcam", "importance")
    #: Config keys besides :data:`HASHED_KEYS` that change this family's results.
    hashed: ClassVar[tuple[str, ...]] = ()
    #: Keys the config hash of ecg-mi before the representation left out (read old runs' hashes).
    legacy_unhashed: ClassVar[tuple[str, ...]] = ()
    #: Config subtrees this family never reads: left out of its runs' params.
    unused: ClassVar[tuple[str, ...]] = ()
    #: The :data:`~ecg_mi.models.registry.FIT_KEYS` this family implements.
    fit_keys: ClassVar[tuple[str, ...]] = ()
    #: Model file name of :meth:`write_model` in the package.
    model_file: ClassVar[str]
    #: The representation the family's models read unless told otherwise (``conf/representation/``).
    representation: ClassVar[str]

    def __init__(self, cfg: DictConfig, run_dir: Path, run_id: str | None = None,
                 uri: str | None = None) -> None:  # fmt: skip
        self.cfg, self.run_dir, self.run_id, self.uri = cfg, Path(run_dir), run_id, uri
        self.model: Any = None  # the trained model once fit() ran or a package was read

    @classmethod
    def datamodule(cls, cfg: DictConfig) -> FoldDataModule:
        """The fold's DataModule serving the representation this family reads."""
        data = cfg.data
        return FoldDataModule(representation=representation_of(cfg), targets=cls.targets(cfg),
                              batch_size=data.batch_size, num_workers=data.num_workers, pin_memory=data.pin_memory,
                              **fold_settings(cfg))  # fmt: skip

    @classmethod
    def targets(cls, cfg: DictConfig) -> Targets | None:
        """What the family learns besides the MI label (networks: auxiliary and teacher targets)."""
        return None

    @classmethod
    @abstractmethod
    def check_representation(cls, representation: Representation) -> None:
        """ConfigError when this family cannot read ``representation``."""

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
    def write_model(self, path: Path) -> None:
        """Write the trained model to ``path`` (read back by :func:`ecg_mi.packaging.load_member`)."""

    def package(self, data: FoldDataModule, threshold: float) -> Packaged:
        """The trained model as a self-contained MLflow pyfunc (:mod:`ecg_mi.packaging`): its
        model file, written under ``run_dir``, and the representation fitted on ``data``'s
        training part; ``threshold`` is the run's validation-chosen ``test_threshold``."""
        path = self.run_dir / "package" / self.model_file
        path.parent.mkdir(parents=True, exist_ok=True)
        self.write_model(path)
        data.setup()
        member = Member("model", self.family, data.fitted.state())
        info = self.package_info(threshold, data.fitted)
        # What the calibrated P(MI) assumes: the MI share of the validation part it was fitted on.
        info["prevalence"] = float(data.metadata("val")["label"].mean())
        return Packaged(EcgMiPackage(info, [member]), {"model": str(path)})

    def package_info(self, threshold: float, representation: Representation) -> dict[str, Any]:
        """The packaged model's ecg-mi metadata (the contract of :mod:`ecg_mi.packaging`)."""
        from ecg_mi.features import FEATURE_VERSION

        cfg = self.cfg
        return {
            "format": PACKAGE_FORMAT, "model": model_label(cfg), "family": self.family,
            "representation": representation.name, "sample_rate": int(cfg.data.sample_rate),
            "window_s": float(DEFAULT_WINDOW_S), "pad_tolerance_s": float(DEFAULT_PAD_TOLERANCE_S),
            "leads": list(STANDARD_LEADS), "units": "mV", "threshold": float(threshold),
            "threshold_rule": "max F1 on the validation part", "n_models": 1,
            "feature_version": FEATURE_VERSION, "ecg_mi_version": ecg_mi_version(),
            "data": str(cfg.data.name), "runs": [self.run_id] if self.run_id else [],
            "folds": [int(cfg.fold)],
        }  # fmt: skip

    @classmethod
    def run_config(cls, cfg: DictConfig) -> DictConfig:
        """``cfg`` as this family runs it: the settings it derives in place of those asked for."""
        return cfg

    @classmethod
    def params(cls, cfg: DictConfig) -> dict[str, str]:
        """The run's params (:func:`ecg_mi.tracking.config_params`): :meth:`run_config`, each
        setting once, without :data:`UNLOGGED_KEYS` and :attr:`unused`."""
        return config_params(cls.run_config(cfg), (*UNLOGGED_KEYS, *cls.unused))

    @classmethod
    def hashed_config(cls, cfg: DictConfig) -> dict[str, Any]:
        """The resolved values of :data:`HASHED_KEYS` and this family's :attr:`hashed` keys."""
        config = OmegaConf.to_container(cfg, resolve=True)
        picked = {}
        for key in (*HASHED_KEYS, *cls.hashed):
            node = config
            for part in key.split("."):
                node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
            if node is not _ABSENT:
                picked[key] = node
        return picked

    @classmethod
    def legacy_hashed_config(cls, cfg: DictConfig) -> dict[str, Any]:
        """What ecg-mi hashed before the representation (every key but a deny-list), computed
        for ``cfg`` as that release would have composed it: old runs' ``config_hash`` tags."""
        config = OmegaConf.to_container(cfg, resolve=True)
        representation = config.pop("representation", None) or {}
        for model in (config.get("model"), ((config.get("data") or {}).get("teacher") or {}).get("estimator")):
            for key in ("representation", "architecture"):
                (model or {}).pop(key, None)
        if representation.get("features") == "scaled":  # hybrids carried their feature count
            config["model"]["n_clinical"] = Representation("legacy", "median_beat", "scaled").n_features
        for key in (*LEGACY_UNHASHED, *cls.legacy_unhashed):
            _drop(config, key.split("."))
        for key in LATER_OPTIONS:  # off (null), a later option computes what that release did
            if (config.get("model") or {}).get(key, _ABSENT) is None:
                config["model"].pop(key)
        return config


_ABSENT = object()
#: Model options added after that release (XGBoost's early stopping, issue 37): switched off, the
#: release's computation, so left out of the legacy hash.
LATER_OPTIONS = ("early_stopping_rounds",)
#: Keys the config hash left out before :data:`HASHED_KEYS` replaced the deny-list (``ablation``: an
#: arm's description, which configs of that release passed on the command line instead).
#: ``verbose`` (what the console shows) came later and never changes what a run computes.
LEGACY_UNHASHED = ("skip_finished", "tracking", "explain", "experiment_name", "optimized_metric", "ablation",
                   "verbose")  # fmt: skip


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


def representation_of(cfg: DictConfig) -> Representation:
    """The (unfitted) representation ``cfg.representation`` instantiates, checked against the
    family of ``cfg.model`` (ConfigError naming what that family reads)."""
    node = cfg.get("representation")
    if not node or "_target_" not in node:
        raise ConfigError("representation: missing; choose one of conf/representation/ (e.g. representation=window)")
    representation = build(node, "representation")
    learner_for(architecture(cfg.model)).check_representation(representation)
    return representation


def architecture(model: DictConfig | dict[str, Any]) -> str:
    """The registered architecture a model config builds (a recipe's ``architecture``, else its name)."""
    return str(model.get("architecture") or model["name"])


def model_label(cfg: DictConfig) -> str:
    """The name of the model a run trains, as runs, reports and packages show it: the model
    config's ``name``, and ``<name>@<representation>`` when the representation is not the one
    that model config reads by default (``model=resnet representation=median_beat``)."""
    name, default = str(cfg.model.name), cfg.model.get("representation")
    chosen = (cfg.get("representation") or {}).get("name", default)
    return name if default is None or chosen == default else f"{name}@{chosen}"


def describe(cfg: DictConfig) -> dict[str, str]:
    """The run tags that name what a run trained: ``model`` (:func:`model_label`),
    ``architecture``, ``representation`` and :func:`model_names`' ``display`` and ``arm``."""
    name, representation = architecture(cfg.model), str(cfg.representation.name)
    return {"model": model_label(cfg), "architecture": name, "representation": representation,
            **model_names(name, representation)}  # fmt: skip


def model_names(architecture_name: str, representation: str | None = None) -> dict[str, str]:
    """``display`` (the report's name: the architecture's, with the representation when it is not
    its family's own, e.g. ``ResNet (median beat)``) and ``arm`` (the report's family column) of
    a registered architecture reading ``representation`` (default: its family's own)."""
    learner = learner_for(architecture_name)
    representation = representation or learner.representation
    display = display_name(architecture_name)
    if representation != learner.representation:
        display = f"{display} ({representation.replace('_', ' ').replace('+', ' + ')})"
    arm = HYBRID_ARM if learner.family == "network" and representation.endswith("features") else learner.arm
    return {"display": display, "arm": arm}


def names_of(label: str, tags: dict[str, str] | None = None) -> dict[str, str]:
    """``display`` and ``arm`` of the model a run tagged ``model=label`` trained: its own tags
    (:func:`describe`), else — runs of older releases — what its name says."""
    tags = tags or {}
    if tags.get("display") and tags.get("arm"):
        return {"display": tags["display"], "arm": tags["arm"]}
    if is_ensemble(label):
        return {"display": " + ".join(names_of(m)["display"] for m in members_of(label)), "arm": ENSEMBLE_ARM}
    try:
        return model_names(*LEGACY_MODELS.get(label, (label, None)))
    except ConfigError:  # a model this install does not know
        return {"display": label, "arm": "other"}


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


def build_model(cfg: DictConfig) -> Any:
    """The model ``cfg.model`` configures (via ``_target_``), unfitted, reading what
    ``cfg.representation`` gives it (a hybrid's feature count); the model config's
    :data:`~ecg_mi.models.registry.FIT_KEYS` are the learner's, not its."""
    get_model_class(architecture(cfg.model))  # unknown names fail here, listing the known ones
    node = constructor_config(OmegaConf.to_container(cfg.model, resolve=True))
    n_features = representation_of(cfg).n_features
    if n_features:
        node["n_clinical"] = n_features
    return build(node, "model", _convert_="all")


def check_fit_keys(cfg: DictConfig, learner: type[Learner]) -> None:
    """ConfigError for a fit key of ``cfg.model`` (:data:`FIT_KEYS`) set for a ``learner``
    that does not implement it, before any run starts (its type: ``config_checks``)."""
    for key in FIT_KEYS:
        if cfg.model.get(key, False) and key not in learner.fit_keys:
            raise ConfigError(f"model.{key}=true: the {learner.family} models do not support it "
                              f"({cfg.model.name} is one); only {_supporting(key)} do")


__all__ = ["ENSEMBLE_ARM", "HASHED_KEYS", "Artifact", "Learner", "architecture", "build_model", "check_fit_keys",
           "describe", "fold_settings", "learner_for", "list_families", "model_label", "model_names", "names_of",
           "register_family", "representation_of"]  # fmt: skip
