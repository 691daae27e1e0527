"""The self-contained MLflow Model every finished run logs (artifact ``model``).

``mlflow.pyfunc.load_model(uri).predict(x)`` takes ``x`` float32 ``[N, 12, L]`` in mV at the
model's rate, ``L = round(window_s * sample_rate)`` (one 10 s window per row, leads in
:data:`~ecg_mi.data.record.STANDARD_LEADS` order), and returns P(MI) ``[N]`` float64. The
model carries all it needs: its weights, the per-lead standardisation (networks) or the
feature version (classical: features are computed from the signal inside ``predict``), and
the validation-chosen threshold and the validation-fitted calibration (a JSON-able map,
:mod:`ecg_mi.calibration`, applied to each member's raw P(MI); ``threshold`` is on the
calibrated scale). Cutting a Record of any rate or length into such windows,
and averaging over them, is the window policy of :func:`ecg_mi.data.windows.model_windows`;
the caller applies it with the model's ``sample_rate``/``window_s``.

Why a ``mlflow.pyfunc.PythonModel`` rather than ``mlflow.pytorch``: MLflow 3 logs a PyTorch
model as a ``torch.export`` program ("pt2") by default, which holds the network alone —
not the standardisation, the threshold, the feature pipeline of the classical models nor
an ensemble of fold models — and whose export of LSTM/attention layers is brittle. A
PythonModel serves networks, classical models and ensembles through one predict contract.

Weights are data files (``torch.save`` of a state dict, read back with
``weights_only=True``; classical estimators as pickles), the PythonModel itself is a small
pickled object holding the metadata and the standardisation.

Contract (read by ``predict.py``): ``pyfunc.metadata.metadata["ecg_mi"]`` (see
:func:`model_info`) holds at least ``sample_rate`` (Hz), ``window_s``, ``leads``,
``threshold``, ``model``, ``family`` and ``n_models``; networks also answer
``pyfunc.unwrap_python_model().gradcam(x) -> [N, L]``.

The project itself is a requirement of the model, not copied into it (no ``code_paths``):
a process that already imported ecg_mi (``predict.py``) would otherwise run its own copy
while a fresh one (``mlflow models serve``) ran the model's copy, with two ``EcgMiError``
classes and results that depend on import order. Instead the model records the
``ecg_mi_version`` and ``feature_version`` it was trained with and refuses, when loaded, a
feature version other than the installed one (its features would silently differ).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import Schema, TensorSpec

from ecg_mi.calibration import IDENTITY, Calibrator, apply_calibration
from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.data.windows import DEFAULT_WINDOW_S
from ecg_mi.errors import DataError, EcgMiError, InputError
from ecg_mi.models.registry import ENSEMBLE_SEPARATOR

log = logging.getLogger(__name__)

#: The artifact path/name of the packaged model in a run (``runs:/<id>/model``).
MODEL_ARTIFACT = "model"
#: Where a run keeps the raw trained-model files of ``Learner.save`` (best.ckpt, model.pkl).
CHECKPOINT_ARTIFACT = "checkpoint"
#: The key of the ecg-mi metadata in the MLflow Model's ``metadata``.
METADATA_KEY = "ecg_mi"
#: Bumped when the layout of the packaged model changes.
PACKAGE_FORMAT = 1
#: Keys of the metadata that ``predict.py`` relies on.
CONTRACT_KEYS = ("sample_rate", "window_s", "leads", "threshold", "model", "family", "n_models")

# The CPU wheels of torch live on PyTorch's own index; PyPI's torch==X pulls CUDA (GBs).
TORCH_CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
# Distributions a fresh process imports to load and run any packaged model (measured; ecg_mi's
# own imports included: its networks are LightningModules, its classical models wrap
# scikit-learn/XGBoost). Pinned at the versions installed where the model was trained.
REQUIRED_DISTRIBUTIONS = (
    "pytorch-lightning", "torchmetrics", "lightning-utilities", "captum", "numpy", "scipy",
    "pandas", "scikit-learn", "xgboost-cpu", "xgboost", "cloudpickle", "omegaconf", "hydra-core",
    "matplotlib", "tqdm",
)  # fmt: skip
#: Records per forward pass / feature batch (bounds memory for large N).
BATCH = 64


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution`` (its local label such as ``+cpu`` dropped)."""
    return importlib.metadata.version(distribution).split("+", 1)[0]


def ecg_mi_version() -> str:
    """The installed ecg-mi's version ("unknown" when run from a checkout never installed)."""
    try:
        return installed_version("ecg-mi")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def pip_requirements() -> list[str]:
    """Exact pins of the model's requirements: ``torch==<installed>`` from the CPU index
    (never inferred by MLflow, which would pin a CUDA build), and every other distribution
    of :data:`REQUIRED_DISTRIBUTIONS` that is installed, at its installed version."""
    pins = [TORCH_CPU_INDEX, f"torch=={installed_version('torch')}"]
    for name in REQUIRED_DISTRIBUTIONS:
        try:
            pins.append(f"{name}=={installed_version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue  # alternatives: XGBoost is installed as "xgboost-cpu" or "xgboost"
    return pins


def window_length(info: dict[str, Any]) -> int:
    """Samples per window, ``round(window_s * sample_rate)``."""
    return int(round(float(info["window_s"]) * int(info["sample_rate"])))


def signature(length: int) -> ModelSignature:
    """Input float32 ``[-1, 12, length]`` (mV), output float64 ``[-1]`` (P(MI))."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(STANDARD_LEADS), length))]),
        outputs=Schema([TensorSpec(np.dtype(np.float64), (-1,))]),
    )


def input_example(sample_rate: int, window_s: float = DEFAULT_WINDOW_S) -> np.ndarray:
    """One seeded synthetic ECG ``[1, 12, L]`` mV at ``sample_rate`` Hz — never a record of
    the training data, which the model's artifacts would otherwise publish."""
    from ecg_mi.data.synthetic import DURATION_S, heart_for, synthesize_ecg

    heart = heart_for(pd.Series({"heart_seed": 0, "label": 0}))
    signal = synthesize_ecg(heart, np.random.default_rng(0), float(sample_rate))
    length = int(round(window_s * sample_rate))
    if window_s != DURATION_S:  # the generator writes 10 s: repeat in time, or cut
        signal = np.pad(signal, ((0, 0), (0, max(0, length - signal.shape[1]))), mode="wrap")
        signal = signal[:, :length]
    return signal[None].astype(np.float32)


def check_input(x: Any, length: int) -> np.ndarray:
    """``x`` as float32 ``[N, 12, length]``; InputError naming the problem otherwise."""
    array = np.asarray(x, dtype=np.float32)
    expected = f"[N, {len(STANDARD_LEADS)}, {length}]"
    if array.ndim != 3 or array.shape[1:] != (len(STANDARD_LEADS), length):
        raise InputError(f"model input has shape {list(array.shape)}; expected {expected} (mV)")
    if not np.isfinite(array).all():
        raise InputError("model input holds NaN or infinite values")
    return array


def check_feature_version(info: dict[str, Any]) -> None:
    """Refuse (EcgMiError) a package whose model read features of another
    :data:`~ecg_mi.features.FEATURE_VERSION` than the installed one computes."""
    from ecg_mi.features import FEATURE_VERSION

    if str(info.get("feature_version")) != FEATURE_VERSION:
        raise EcgMiError(
            f"model {info['model']!r} was trained on feature version {info.get('feature_version')}; "
            f"the installed ecg-mi computes version {FEATURE_VERSION}: install the ecg-mi that trained it, or re-train"
        )


@dataclass(frozen=True)
class Member:
    """One trained model of a package: ``artifact`` names its weights file among the
    package's artifacts; ``settings`` is its family's preprocessing (JSON-able)."""

    artifact: str
    settings: dict[str, Any] = field(default_factory=dict)


class EcgMiPackage(mlflow.pyfunc.PythonModel):
    """P(MI) of one trained model or the mean over several (an ensemble of folds).

    Subclasses (one per family, next to the family's Learner) say how a member's weights
    are read (:meth:`load_member`), how a batch is prepared once for all members
    (:meth:`prepare`) and how one member scores it (:meth:`member_probs`).
    """

    family: ClassVar[str]

    def __init__(self, info: dict[str, Any], members: list[Member]) -> None:
        if not members:
            raise ValueError("a package needs at least one member")
        self.info = {**info, "n_models": len(members)}
        self.members = list(members)
        self.artifact_paths: dict[str, str] = {}  # set by load_context
        self._loaded: list[Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Only metadata and preprocessing are pickled; weights travel as artifacts.
        return {**self.__dict__, "artifact_paths": {}, "_loaded": None}

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.check_compatible()
        self.artifact_paths = dict(context.artifacts)
        self._loaded = [
            self.load_member(Path(self.artifact_paths[m.artifact]), m) for m in self.members
        ]

    def check_compatible(self) -> None:
        """Warn when the installed ecg-mi differs from the one that packaged the model."""
        packaged, installed = self.info.get("ecg_mi_version"), ecg_mi_version()
        if packaged and packaged != installed:
            log.warning("model packaged with ecg-mi %s, running with %s", packaged, installed)

    @property
    def loaded(self) -> list[Any]:
        if self._loaded is None:
            raise EcgMiError("the packaged model is not loaded: use mlflow.pyfunc.load_model(uri)")
        return self._loaded

    @abstractmethod
    def load_member(self, path: Path, member: Member) -> Any:
        """The trained model stored in ``path``."""

    def prepare(self, x: np.ndarray) -> Any:
        """What every member consumes, computed once from ``x`` ``[N, 12, L]`` mV."""
        return x

    @abstractmethod
    def member_probs(self, model: Any, member: Member, prepared: Any) -> np.ndarray:
        """P(MI) ``[N]`` of one member."""

    # model_input is hinted np.ndarray, a hint MLflow accepts without inferring a schema of its
    # own from it (Any makes it warn): the signature logged with the model is the schema.
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """P(MI) ``[N]`` float64 for ``model_input`` float32 ``[N, 12, L]`` mV: the mean over
        the members' calibrated probabilities."""
        x = check_input(model_input, window_length(self.info))
        prepared = self.prepare(x)
        # Each member's own validation-fitted calibrator (none in models packaged before
        # calibration), so an ensemble averages calibrated probabilities.
        probs = [
            apply_calibration(spec.settings.get("calibration"), self.member_probs(m, spec, prepared))
            for m, spec in zip(self.loaded, self.members, strict=True)
        ]
        return np.mean(probs, axis=0).astype(np.float64)

    def gradcam(self, x: np.ndarray) -> np.ndarray:
        """Grad-CAM ``[N, L]`` in [0, 1]; only networks have one."""
        raise EcgMiError(
            f"model {self.info['model']!r} ({self.family} family) has no Grad-CAM: "
            "it explains by feature importance, not by a map over time"
        )


@dataclass(frozen=True)
class Packaged:
    """A package ready to log: the PythonModel and its artifacts ``{key: local file}``."""

    python_model: EcgMiPackage
    artifacts: dict[str, str]

    @property
    def info(self) -> dict[str, Any]:
        return self.python_model.info


def calibrated_package(packaged: Packaged, calibrator: Calibrator, raw_threshold: float) -> Packaged:
    """``packaged`` whose members apply ``calibrator`` (a JSON-able dict, see
    :mod:`ecg_mi.calibration`) after the raw model, with the raw validation-chosen threshold
    mapped onto the calibrated scale (the map is strictly increasing: same decisions)."""
    python_model = packaged.python_model
    members = [Member(m.artifact, {**m.settings, "calibration": calibrator}) for m in python_model.members]
    threshold = float(apply_calibration(calibrator, np.array([raw_threshold]))[0])
    info = {**python_model.info, "threshold": threshold, "threshold_raw": float(raw_threshold),
            "threshold_rule": "max F1 on the validation part (raw P(MI)), mapped through the calibration",
            "calibration": calibrator}  # fmt: skip
    return Packaged(type(python_model)(info, members), packaged.artifacts)


def log_package(packaged: Packaged, registered_model_name: str | None = None) -> ModelInfo:
    """Log ``packaged`` as the MLflow Model ``model`` of the active run (signature, input
    example, explicit pip requirements, ecg-mi metadata); register it when named."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    info = packaged.info
    return mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT, python_model=packaged.python_model, artifacts=packaged.artifacts,
        pip_requirements=pip_requirements(), signature=signature(window_length(info)),
        input_example=input_example(int(info["sample_rate"]), float(info["window_s"])),
        metadata={METADATA_KEY: info}, registered_model_name=registered_model_name,
    )  # fmt: skip


def model_info(pyfunc_model: mlflow.pyfunc.PyFuncModel) -> dict[str, Any]:
    """The ecg-mi metadata of a loaded packaged model (keys: :data:`CONTRACT_KEYS` and
    more); InputError for an MLflow Model that ecg-mi did not package."""
    metadata = (pyfunc_model.metadata.metadata or {}).get(METADATA_KEY)
    if not isinstance(metadata, dict) or not set(CONTRACT_KEYS) <= set(metadata):
        name = pyfunc_model.metadata.model_uri or "model"
        raise InputError(f"{name}: not an ecg-mi packaged model (no {METADATA_KEY!r} metadata "
                         f"with {', '.join(CONTRACT_KEYS)})")  # fmt: skip
    return dict(metadata)


def load_package(uri: str, where: str) -> EcgMiPackage:
    """The packaged model at ``uri`` (``runs:/<id>/model``), downloaded into ``where`` and
    loaded; DataError when there is none (a run trained with ``tracking.log_model=false``
    or before models were packaged)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=where)
        loaded = mlflow.pyfunc.load_model(local)
        package = loaded.unwrap_python_model()
    except (MlflowException, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{uri}: no packaged ecg-mi model ({first}); re-train with "
                        "tracking.log_model=true") from None  # fmt: skip
    if not isinstance(package, EcgMiPackage):
        raise DataError(f"{uri}: not an ecg-mi packaged model")
    # Before it joins a registered model: MLflow only warns when a logged model fails its input
    # example, and a model pickled by another version of this code may load yet fail to predict.
    example = input_example(int(package.info["sample_rate"]), float(package.info["window_s"]))
    try:
        package.predict(None, example)
    except Exception as exc:  # noqa: BLE001  (whatever the member raises, the package is unusable)
        raise DataError(f"{uri}: the packaged model cannot score an example ECG "
                        f"({type(exc).__name__}: {exc}); re-train it with this version") from None  # fmt: skip
    return package


def ensemble(packages: list[EcgMiPackage]) -> Packaged:
    """One package of every member of ``packages`` (the fold models of one model), which
    predicts the mean of their probabilities.

    Threshold: the mean of the packages' thresholds — each chosen on its own fold's
    validation part — so no test record influences it (the pooled validation predictions
    are not kept by the runs, and the pooled out-of-fold test predictions must not choose it).
    """
    if not packages:
        raise DataError("an ensemble needs at least one packaged model")
    first = packages[0].info
    same = ("model", "family", "sample_rate", "window_s", "leads", "feature_version")
    for package in packages[1:]:
        differing = [k for k in same if package.info.get(k) != first.get(k)]
        if differing or type(package) is not type(packages[0]):
            raise DataError(f"cannot ensemble {first['model']!r} with {package.info['model']!r}: "
                            f"they differ in {differing or ['family']}")  # fmt: skip
    members, artifacts = [], {}
    for i, package in enumerate(packages):
        for member in package.members:
            key = f"m{i}-{member.artifact}"
            members.append(Member(key, member.settings))
            artifacts[key] = package.artifact_paths[member.artifact]
    thresholds = [float(p.info["threshold"]) for p in packages]
    info = {
        **first, "threshold": float(np.mean(thresholds)), "fold_thresholds": thresholds,
        "threshold_rule": "mean of the fold models' validation-chosen (max-F1) thresholds",
        "runs": [r for p in packages for r in p.info.get("runs", [])],
        "folds": [f for p in packages for f in p.info.get("folds", [])],
        "calibration": {"method": "per member",
                        "members": [p.info.get("calibration", IDENTITY) for p in packages]},
    }  # fmt: skip
    return Packaged(type(packages[0])(info, members), artifacts)


class CombinedPackage(EcgMiPackage):
    """The mean P(MI) of packaged models of *different* models or families — e.g. a network's
    fold ensemble and a feature model's. Each part predicts exactly as it would alone (its own
    preprocessing, its members' calibration) and the parts weigh equally, whatever their
    number of fold members. No Grad-CAM: a map of one part would not explain the mean."""

    family = "ensemble"

    def __init__(self, info: dict[str, Any], parts: list[EcgMiPackage]) -> None:
        if len(parts) < 2:
            raise ValueError("a combined package needs at least two parts")
        self.parts = list(parts)
        super().__init__(info, [m for part in self.parts for m in part.members])

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.check_compatible()
        for part in self.parts:  # each part checks its own compatibility (feature version)
            part.load_context(context)
        self.artifact_paths = dict(context.artifacts)
        self._loaded = list(self.parts)

    def load_member(self, path: Path, member: Member) -> Any:
        raise NotImplementedError("the parts load their own members")

    def member_probs(self, model: Any, member: Member, prepared: Any) -> np.ndarray:
        raise NotImplementedError("the parts score their own members")

    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        """P(MI) ``[N]``: the mean over the parts of each part's (calibrated) P(MI)."""
        x = check_input(model_input, window_length(self.info))
        self.loaded  # noqa: B018  (raises when not loaded through MLflow)
        return np.mean([part.predict(context, x) for part in self.parts], axis=0).astype(np.float64)


def combine(parts: list[Packaged]) -> Packaged:
    """One package predicting the mean of ``parts`` (packages of different models, each
    possibly a fold ensemble). They must read the same input (rate, window, leads).

    Threshold: the mean of the parts' thresholds, each on its calibrated scale and chosen on
    validation parts only, so no test record influences it."""
    if len(parts) < 2:
        raise DataError("combining needs two or more packaged models")
    first = parts[0].info
    same = ("sample_rate", "window_s", "leads")
    for part in parts[1:]:
        differing = [k for k in same if part.info.get(k) != first.get(k)]
        if differing:
            raise DataError(f"cannot combine {first['model']!r} with {part.info['model']!r}: "
                            f"they differ in {differing}")  # fmt: skip
    python_models, artifacts = [], {}
    for i, part in enumerate(parts):
        # Unique artifact keys across parts: the same key (``weights``) names each part's file.
        members = [Member(f"p{i}-{m.artifact}", m.settings) for m in part.python_model.members]
        artifacts.update({f"p{i}-{key}": path for key, path in part.artifacts.items()})
        python_models.append(type(part.python_model)(part.info, members))
    thresholds = [float(p.info["threshold"]) for p in parts]
    info = {
        **first, "model": ENSEMBLE_SEPARATOR.join(p.info["model"] for p in parts), "family": CombinedPackage.family,
        "threshold": float(np.mean(thresholds)), "part_thresholds": thresholds,
        "threshold_rule": "mean of the parts' validation-chosen thresholds (calibrated scale)",
        "parts": [{k: p.info.get(k) for k in ("model", "family", "n_models", "runs", "folds", "feature_version")}
                  for p in parts],
        "runs": [r for p in parts for r in p.info.get("runs", [])],
        "calibration": {"method": "per part", "parts": [p.info.get("calibration", IDENTITY) for p in parts]},
    }  # fmt: skip
    return Packaged(CombinedPackage(info, python_models), artifacts)


__all__ = ["CHECKPOINT_ARTIFACT", "CONTRACT_KEYS", "METADATA_KEY", "MODEL_ARTIFACT", "CombinedPackage", "EcgMiPackage",
           "Member", "Packaged", "calibrated_package", "check_input", "combine", "ecg_mi_version", "ensemble", "input_example",
           "load_package", "log_package", "model_info", "pip_requirements", "signature",
           "window_length"]  # fmt: skip
