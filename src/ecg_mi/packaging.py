"""The self-contained MLflow Model every finished run logs (``<model>-fold<k>``), and ensembles.

``mlflow.pyfunc.load_model(uri).predict(x)`` takes ``x`` float32 ``[N, 12, L]`` in mV at the
model's rate, ``L = round(window_s * sample_rate)`` (one 10 s window per row, leads in
:data:`~ecg_mi.data.record.STANDARD_LEADS` order), and returns P(MI) ``[N]`` float64. Cutting a
Record of any rate or length into such windows, and averaging over them, is the window policy
of :func:`ecg_mi.data.windows.model_windows`; the caller applies it with the model's
``sample_rate``/``window_s``.

One class, :class:`EcgMiPackage`, serves every package: a list of :class:`Member` — a trained
model's file, its family, its fitted :class:`~ecg_mi.representation.Representation` state, its
validation-fitted calibration (:mod:`ecg_mi.calibration`) and its weight. P(MI) is the weighted
mean of the members' calibrated P(MI); each member reads its inputs through its own
representation, from one :class:`~ecg_mi.representation.Derived` per batch, so median beats and
features are computed once however many members read them. A run's model is one member; a
model's fold ensemble, and an ensemble of several models, are made by :func:`ensemble` (the
report's ensemble rows average the logged predictions with the same :func:`weighted_mean`).

An ensemble stores each model file once: a member whose file another logged model of the
tracking store already holds (a fold run's ``<model>-fold<k>``) is a reference to it —
:attr:`Member.source`, that model's ``models:/<model id>`` — not a copy. Such a package (format
:data:`REFERRING_FORMAT`) holds only its own state (members' representations, calibrations and
weights, threshold, input contract); when loaded (:meth:`EcgMiPackage.load_context`) it reads
each referred file from the tracking store it is loaded with (``MLFLOW_TRACKING_URI``, or the
``tracking.uri`` the CLI sets), so that store must be reachable wherever the ensemble is
loaded or served, and its members' logged models must not be deleted. :func:`contained`
copies the referred files in instead (``register … self_contained=true``), for a model that
must load without the store (``mlflow models build-docker``, an exported folder).

Why a ``mlflow.pyfunc.PythonModel`` rather than ``mlflow.pytorch``: MLflow 3 logs a PyTorch
model as a ``torch.export`` program ("pt2") by default, which holds the network alone — not
the representation, the threshold, the feature pipeline of the classical models nor an
ensemble — and whose export of LSTM/attention layers is brittle.

Weights are data files (``torch.save`` of a state dict, read back with ``weights_only=True``;
classical estimators as pickles); the PythonModel itself is a small pickled object holding the
metadata and the members' settings. ``info["format"]`` (:data:`PACKAGE_FORMAT`) is read back
before a package is used: packages of format 1 (before the representation) are converted when
unpickled, an unknown format is refused with the version to install.

Contract (read by ``predict.py``): ``pyfunc.metadata.metadata["ecg_mi"]`` (see
:func:`model_info`) holds at least ``sample_rate`` (Hz), ``window_s``, ``leads``,
``threshold``, ``model``, ``family`` and ``n_models``; networks also answer
``pyfunc.unwrap_python_model().gradcam(x) -> [N, L]``.

The project itself is a requirement of the model, not copied into it (no ``code_paths``):
a process that already imported ecg_mi (``predict.py``) would otherwise run its own copy
while a fresh one (``mlflow models serve``) ran the model's copy. The model records the
``ecg_mi_version`` and ``feature_version`` it was trained with and refuses, when loaded, a
feature version other than the installed one (its features would silently differ).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import Schema, TensorSpec

from ecg_mi.calibration import IDENTITY, Calibrator, apply_calibration
from ecg_mi.data.gate import GateLimits, check_windows, strictest
from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.data.windows import DEFAULT_WINDOW_S
from ecg_mi.errors import DataError, EcgMiError, InputError, Refused
from ecg_mi.models.registry import ENSEMBLE_SEPARATOR
from ecg_mi.representation import DERIVED, Derived, Representation
from ecg_mi.utils.io import atomic_path

log = logging.getLogger(__name__)

#: The key of the ecg-mi metadata in the MLflow Model's ``metadata``.
METADATA_KEY = "ecg_mi"
#: Bumped when the layout of the packaged model changes (2: members with a representation).
PACKAGE_FORMAT = 2
#: The format of a package with members held by other logged models (:attr:`Member.source`):
#: an ecg-mi that cannot fetch them refuses it by its format instead of missing their files.
REFERRING_FORMAT = 3
#: The formats this ecg-mi loads (1 is converted when unpickled).
READABLE_FORMATS = (1, 2, 3)
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
#: Records per Grad-CAM pass (bounds memory for large N).
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
    from ecg_mi.data.sources.synthetic import DURATION_S, heart_for, synthesize_ecg

    heart = heart_for(pd.Series({"heart_seed": 0, "label": 0}))
    signal = synthesize_ecg(heart, np.random.default_rng(0), float(sample_rate))
    length = int(round(window_s * sample_rate))
    if window_s != DURATION_S:  # the generator writes 10 s: repeat in time, or cut
        signal = np.pad(signal, ((0, 0), (0, max(0, length - signal.shape[1]))), mode="wrap")
        signal = signal[:, :length]
    return signal[None].astype(np.float32)


def check_input(x: Any, length: int) -> np.ndarray:
    """``x`` as float32 ``[N, 12, length]``; InputError naming the problem otherwise (its
    values are the input gate's: :meth:`EcgMiPackage.predict`)."""
    array = np.asarray(x, dtype=np.float32)
    expected = f"[N, {len(STANDARD_LEADS)}, {length}]"
    if array.ndim != 3 or array.shape[1:] != (len(STANDARD_LEADS), length):
        raise InputError(f"model input has shape {list(array.shape)}; expected {expected} (mV)")
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
    """One trained model of a package: ``artifact`` names its file among the package's
    artifacts — or, when ``source`` is set, among the artifacts of the logged model ``source``
    (``models:/<model id>``) of the tracking store, which holds the file —, ``family`` says how
    to read and score it (:func:`load_member`), ``representation`` is its fitted
    :meth:`~ecg_mi.representation.Representation.state`, ``calibration`` its calibrator and
    ``weight`` its share of the package's mean."""

    artifact: str
    family: str
    representation: dict[str, Any]
    calibration: Calibrator = field(default_factory=lambda: dict(IDENTITY))
    weight: float = 1.0
    source: str | None = None  # members pickled before references read the class default


def write_estimator(estimator: Any, path: Path) -> None:
    """Write a classical model (a scikit-learn estimator) for :func:`load_member`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(estimator))


def load_member(family: str, path: Path) -> Any:
    """The trained model of a member's file: a network (:func:`ecg_mi.models.base.load_weights`)
    or a classical estimator; both answer ``predict_proba(*inputs) -> [n, 2]``."""
    if family == "network":
        from ecg_mi.models.base import load_weights

        return load_weights(path)
    with open(path, "rb") as file:
        return _RenamedModules(file).load()


def load_members(members: Sequence[Member], artifact_paths: dict[str, str]) -> list[Any]:
    """The trained model of each of ``members``: its file among ``artifact_paths`` (the
    package's own artifacts) or, for a member with a ``source``, fetched from the tracking store
    into a folder removed once read (a loaded model holds its weights in memory)."""
    loaded = []
    for member in members:
        if member.source is None:
            loaded.append(load_member(member.family, Path(artifact_paths[member.artifact])))
            continue
        with tempfile.TemporaryDirectory(prefix="ecg_mi_member_") as where:
            loaded.append(load_member(member.family, fetch_member_file(member, where)))
    return loaded


def source_root(source: str) -> str:
    """The artifact URI under which the files of the logged model ``source`` are named by their
    path in it. A logged model's ``models:/<model id>`` takes no path after it (MLflow reads
    ``models:/<name>/<x>`` as a registered version), so it is resolved to its artifact location
    in the tracking store in use."""
    model_id = source.removeprefix("models:/")
    if source.startswith("models:/m-") and "/" not in model_id:
        return mlflow.MlflowClient().get_logged_model(model_id).artifact_location.rstrip("/")
    return source.rstrip("/")


def fetch_member_file(member: Member, where: str) -> Path:
    """The file of ``member``, which refers to the logged model ``member.source``, downloaded into
    ``where`` from the tracking store in use; InputError naming the member and the store when the
    store cannot give it (the model deleted, another store, a store out of reach)."""
    from ecg_mi.tracking import redact

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        root = source_root(str(member.source))
        mlmodel = mlflow.artifacts.download_artifacts(artifact_uri=f"{root}/MLmodel", dst_path=where)
        # Its path inside the model, as MLflow recorded it when it logged the member's artifacts.
        relative = Model.load(mlmodel).flavors["python_function"]["artifacts"][member.artifact]["path"]
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{root}/{relative}", dst_path=where))
    except (MlflowException, OSError, KeyError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"ensemble member {member.source} (file {member.artifact!r}) cannot be loaded from the tracking store "
            f"{redact(mlflow.get_tracking_uri())} ({first[:300]}); the ensemble refers to its members' logged "
            "models: load it with the store it was registered in (MLFLOW_TRACKING_URI or tracking.uri), "
            "or register it again with self_contained=true"
        ) from None


#: Modules renamed after packages pickled classes of them: old name -> new name.
RENAMED_MODULES = {"ecg_mi.models.classical": "ecg_mi.models.tabular"}


class _RenamedModules(pickle.Unpickler):
    """Unpickles an estimator whose classes lived under an old module name (:data:`RENAMED_MODULES`)."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(RENAMED_MODULES.get(module, module), name)


def weighted_mean(probs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The ensemble's P(MI) ``[n]``: the mean of members' (calibrated) ``probs`` weighted by
    ``weights`` — the one rule of every ensemble, packaged or in the report."""
    return np.average(np.asarray(probs, dtype=np.float64), axis=0, weights=np.asarray(weights, dtype=np.float64))


class EcgMiPackage(mlflow.pyfunc.PythonModel):
    """P(MI) of one trained model or the weighted mean over several (module docstring)."""

    def __init__(self, info: dict[str, Any], members: list[Member]) -> None:
        if not members:
            raise ValueError("a package needs at least one member")
        self.info = {**info, "n_models": len(members)}
        self.members = list(members)
        sources = list(dict.fromkeys(m.source for m in self.members if m.source))
        if sources:  # what the package needs from the store, in its MLmodel for all to read
            self.info.update(format=REFERRING_FORMAT, member_models=sources)
        self.artifact_paths: dict[str, str] = {}  # set by load_context
        self._loaded: list[Any] | None = None
        self._representations: list[Representation] | None = None
        self._gate: GateLimits | None = None  # set by use_gate

    def __getstate__(self) -> dict[str, Any]:
        # Only metadata and settings are pickled; weights travel as artifacts.
        return {**self.__dict__, "artifact_paths": {}, "_loaded": None, "_representations": None, "_gate": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(_from_format_1(state) if state["info"].get("format", 1) == 1 else state)

    @property
    def family(self) -> str:
        """The members' family, or ``ensemble`` when they differ."""
        families = {m.family for m in self.members}
        return families.pop() if len(families) == 1 else "ensemble"

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Load every member's trained model (:func:`load_members`): from the package's own
        artifacts, or — a member with a :attr:`~Member.source` — from the tracking store in use
        (``mlflow.get_tracking_uri()``: ``MLFLOW_TRACKING_URI``, or the store the CLI set);
        InputError naming the member and the store when that store does not hold it."""
        self.check_compatible()
        self.artifact_paths = dict(context.artifacts)
        self._representations = [Representation.from_state(m.representation) for m in self.members]
        self._loaded = load_members(self.members, self.artifact_paths)

    def check_compatible(self) -> None:
        """Refuse a package format or feature version this ecg-mi cannot read; warn when
        another ecg-mi version packaged it."""
        check_format(self.info)
        if any(m.representation.get("features") for m in self.members):
            check_feature_version(self.info)
        packaged, installed = self.info.get("ecg_mi_version"), ecg_mi_version()
        if packaged and packaged != installed:
            log.warning("model packaged with ecg-mi %s, running with %s", packaged, installed)

    @property
    def gate(self) -> GateLimits:
        """The input gate's limits the package applies: what every member's representation
        accepts (:func:`~ecg_mi.data.gate.strictest`), unless :meth:`use_gate` set others."""
        if getattr(self, "_gate", None) is None:  # a package pickled before the gate has no _gate
            self._gate = strictest([Representation.from_state(m.representation).gate_limits for m in self.members])
        return self._gate

    def use_gate(self, limits: GateLimits) -> None:
        """Apply ``limits`` instead of the packaged ones (``predict.py``'s ``gate.<key>=``
        overrides, so that the records it lets through are the ones the package scores)."""
        self._gate = limits

    @property
    def loaded(self) -> list[tuple[Member, Representation, Any]]:
        """``(member, its representation, its trained model)`` of every member."""
        if self._loaded is None:
            raise EcgMiError("the packaged model is not loaded: use mlflow.pyfunc.load_model(uri)")
        return list(zip(self.members, self._representations, self._loaded, strict=True))

    # model_input is hinted np.ndarray, a hint MLflow accepts without inferring a schema of its
    # own from it (Any makes it warn): the signature logged with the model is the schema.
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """P(MI) ``[N]`` float64 for ``model_input`` float32 ``[N, 12, L]`` mV: the weighted
        mean of the members' calibrated P(MI), through the site's recalibration if it has one
        (:func:`site_calibrated_package`).

        Windows the input gate refuses (:func:`~ecg_mi.data.gate.check_windows`: NaN, amplitude
        out of the training band, flat or clipped leads) are not scored: an MlflowException
        ``INVALID_PARAMETER_VALUE`` names the window and the check — a 400 with a one-line JSON
        reason from a server."""
        x = check_input(model_input, window_length(self.info))
        try:
            check_windows(x, self.gate)
        except Refused as exc:
            raise MlflowException(f"refused by the input gate: {exc.reason}", error_code=INVALID_PARAMETER_VALUE) from None
        return self.predict_derived(Derived(x, float(self.info["sample_rate"])))

    @property
    def derived_keys(self) -> tuple[str, ...]:
        """What the members read of :class:`~ecg_mi.representation.Derived` beyond the windows
        (median beats, features): what a scoring worker computes per record."""
        keys = {k for m in self.members for k in Representation.from_state(m.representation).derived_keys}
        return tuple(k for k in DERIVED if k in keys)

    def predict_derived(self, derived: Derived) -> np.ndarray:
        """P(MI) ``[N]`` of windows that passed the input gate, with what is derived from them
        (:meth:`predict`'s arithmetic; ``predict.py`` gates the windows and derives the median
        beats and features in its reading workers, then calls this)."""
        probs = [apply_calibration(member.calibration, model.predict_proba(*representation.inputs(derived))[:, 1])
                 for member, representation, model in self.loaded]  # fmt: skip
        derived.warn_beatless()
        return apply_calibration(self.info.get("site_calibration"), weighted_mean(probs, [m.weight for m in self.members]))

    def gradcam(self, x: np.ndarray) -> np.ndarray:
        """Grad-CAM ``[N, L]`` in [0, 1] on the windows ``x`` (as for :meth:`predict`): each
        member's map over its own input (:func:`ecg_mi.explain.gradcam.gradcam`) laid on the
        windows, weighted as the members are. Networks only: a map of one member of a mixed
        ensemble would not explain the mean."""
        if self.family != "network":
            raise EcgMiError(f"model {self.info['model']!r} ({self.family} family) has no Grad-CAM: "
                             "it explains by feature importance, not by a map over time")  # fmt: skip
        import torch

        from ecg_mi.explain.gradcam import gradcam  # captum: imported only when asked

        x = check_input(x, window_length(self.info))
        derived = Derived(x, float(self.info["sample_rate"]))
        weights, loaded = [m.weight for m in self.members], self.loaded
        maps = []
        for _, representation, model in loaded:
            inputs = [torch.from_numpy(a) for a in representation.inputs(derived)]
            maps.append(np.concatenate([gradcam(model, *(a[i : i + BATCH] for a in inputs)) for i in range(0, len(x), BATCH)]))
        if len({r.signal for _, r, _ in loaded}) == 1:  # one input kind: the mean map, laid on the windows once
            return loaded[0][1].map_on_windows(weighted_mean(maps, weights), x)
        return weighted_mean([r.map_on_windows(m, x) for (_, r, _), m in zip(loaded, maps, strict=True)], weights)


def _from_format_1(state: dict[str, Any]) -> dict[str, Any]:
    """The state of a format-1 package (``NetworkPackage``, ``ClassicalPackage`` and
    ``CombinedPackage`` of ecg-mi before the representation) as this class holds it."""
    info = dict(state["info"])
    if "parts" in state:  # parts already converted; each weighs equally
        parts = state["parts"]
        members = [replace(m, weight=m.weight / sum(x.weight for x in p.members) / len(parts))
                   for p in parts for m in p.members]  # fmt: skip
    else:
        members = [_member_from_format_1(m.__dict__, info) for m in state["members"]]
        members = [replace(m, weight=1.0 / len(members)) for m in members]
    names = {m.representation["name"] for m in members}
    info.update(format=PACKAGE_FORMAT, converted_from_format=1, representation=names.pop() if len(names) == 1 else "mixed")
    return {"info": info, "members": members, "artifact_paths": {}, "_loaded": None, "_representations": None}


def _member_from_format_1(old: dict[str, Any], info: dict[str, Any]) -> Member:
    settings = old.get("settings") or {}
    state: dict[str, Any] = {"format": 1, "sample_rate": float(info["sample_rate"]), "window_s": float(info["window_s"])}
    if "mean" in settings:  # a network: its standardisation, input kind and a hybrid's scaling
        signal = info.get("input_kind", "signal").replace("signal", "window")
        state.update(signal=signal, lead_mean=list(settings["mean"]), lead_std=list(settings["std"]))
        if "clinical_center" in settings:
            state.update(features="scaled", feature_center=list(settings["clinical_center"]),
                         feature_scale=list(settings["clinical_scale"]))  # fmt: skip
        state["name"] = signal + ("+features" if "clinical_center" in settings else "")
        family = "network"
    else:
        state.update(name="features", signal=None, features="raw")
        family = "classical"
    return Member(old["artifact"], family, state, settings.get("calibration") or dict(IDENTITY))


# Format-1 packages pickled these classes; they unpickle as EcgMiPackage (converted above).
CombinedPackage = EcgMiPackage


def check_format(info: dict[str, Any]) -> None:
    """EcgMiError for a package format this ecg-mi does not read (:data:`READABLE_FORMATS`)."""
    found = info.get("format", 1)
    if found not in READABLE_FORMATS:
        raise EcgMiError(f"model {info.get('model', '?')!r} is packaged in format {found!r} "
                         f"(ecg-mi {info.get('ecg_mi_version', '?')}); this ecg-mi {ecg_mi_version()} reads formats "
                         f"{', '.join(map(str, READABLE_FORMATS))}: install the ecg-mi that packaged it")  # fmt: skip


@dataclass(frozen=True)
class Packaged:
    """A package ready to log: the PythonModel and its artifacts ``{key: local file}`` (the files
    of its members without a :attr:`~Member.source`); ``source``: the logged model it was read
    from (:func:`download_package`), which its members can refer to instead of copying its files."""

    python_model: EcgMiPackage
    artifacts: dict[str, str]
    source: str | None = None

    @property
    def info(self) -> dict[str, Any]:
        return self.python_model.info


def calibrated_package(packaged: Packaged, calibrator: Calibrator, raw_threshold: float) -> Packaged:
    """``packaged`` whose members apply ``calibrator`` (a JSON-able dict, see
    :mod:`ecg_mi.calibration`) after the raw model, with the raw validation-chosen threshold
    mapped onto the calibrated scale (the map is strictly increasing: same decisions)."""
    python_model = packaged.python_model
    members = [replace(m, calibration=calibrator) for m in python_model.members]
    threshold = float(apply_calibration(calibrator, np.array([raw_threshold]))[0])
    info = {**python_model.info, "threshold": threshold, "threshold_raw": float(raw_threshold),
            "threshold_rule": "max F1 on the validation part (raw P(MI)), mapped through the calibration",
            "calibration": calibrator}  # fmt: skip
    return Packaged(EcgMiPackage(info, members), packaged.artifacts)


def site_calibrated_package(packaged: Packaged, calibrator: Calibrator, prevalence: float, source: str) -> Packaged:
    """``packaged`` recalibrated for a site: ``calibrator`` (fitted on a labelled sample of the
    site, ``source`` says which) maps the package's P(MI), and the threshold moves with it (the
    map is strictly increasing: same decisions); ``prevalence`` is the sample's MI share."""
    info = dict(packaged.info)
    if info.get("site_calibration"):
        raise DataError(f"model {info['model']!r} is already recalibrated for a site ({info.get('site_source')}); "
                        "recalibrate the model it was made from")  # fmt: skip
    threshold = float(apply_calibration(calibrator, np.array([float(info["threshold"])]))[0])
    info.update(site_calibration=calibrator, site_source=source, prevalence=float(prevalence),
                threshold=threshold, threshold_before_site=float(info["threshold"]))  # fmt: skip
    packaged = referring(packaged)  # the model it recalibrates already holds the files
    return Packaged(EcgMiPackage(info, packaged.python_model.members), packaged.artifacts)


def referring(packaged: Packaged) -> Packaged:
    """``packaged`` whose members refer to the logged model it was read from (its ``source``)
    instead of holding that model's files; ``packaged`` itself when it has no source (a package
    built in this process, or read from a folder the store may not hold)."""
    if packaged.source is None:
        return packaged
    members = [m if m.source else replace(m, source=packaged.source) for m in packaged.python_model.members]
    return Packaged(EcgMiPackage(packaged.info, members), {}, packaged.source)


def contained(packaged: Packaged, where: str) -> Packaged:
    """``packaged`` holding a copy of every file its members refer to (downloaded into ``where``
    from the tracking store in use): a model that loads without the store — for
    ``mlflow models build-docker`` or a folder taken elsewhere — at the cost of the copies."""
    members, artifacts = [], dict(packaged.artifacts)
    for i, member in enumerate(packaged.python_model.members):
        if member.source is None:
            members.append(member)
            continue
        key = f"m{i}-{member.artifact}"
        artifacts[key] = str(fetch_member_file(member, str(Path(where) / key)))
        members.append(replace(member, artifact=key, source=None))
    info = {k: v for k, v in packaged.info.items() if k != "member_models"}
    if info.get("format") == REFERRING_FORMAT:
        info["format"] = PACKAGE_FORMAT
    return Packaged(EcgMiPackage(info, members), artifacts)


def ensemble(parts: list[Packaged]) -> Packaged:
    """One package predicting the mean of ``parts``, each weighing equally whatever its number
    of members: the fold models of one model (its fold ensemble), or several models' packages
    (each possibly a fold ensemble). They must read the same input (rate, window, leads).

    Files: a part read from the tracking store (:func:`download_package`) is referred to
    (:func:`referring`), not copied, and a member that already refers keeps its reference, so
    an ensemble of ensembles refers to the fold models themselves; only a part built in this
    process is copied in. :func:`contained` copies the referred files in too.

    Threshold: the mean of the parts' thresholds — each on its calibrated scale and chosen on
    validation parts only — so no test record influences it."""
    if not parts:
        raise DataError("an ensemble needs at least one packaged model")
    first = parts[0].info
    recalibrated = [p.info["model"] for p in parts if p.info.get("site_calibration")]
    if recalibrated:
        raise DataError(f"cannot ensemble {recalibrated[0]!r}: it is recalibrated for a site; ensemble the models "
                        "it was made from, then recalibrate the ensemble")  # fmt: skip
    for part in parts[1:]:
        differing = [k for k in ("sample_rate", "window_s", "leads") if part.info.get(k) != first.get(k)]
        if differing:
            raise DataError(f"cannot ensemble {first['model']!r} with {part.info['model']!r}: "
                            f"they differ in {differing}")  # fmt: skip
    members, artifacts = [], {}
    for i, part in enumerate(map(referring, parts)):
        total = sum(m.weight for m in part.python_model.members)
        for member in part.python_model.members:
            weight = member.weight / total / len(parts)
            if member.source:  # a file the store holds already: referred to, not copied
                members.append(replace(member, weight=weight))
                continue
            members.append(replace(member, artifact=f"p{i}-{member.artifact}", weight=weight))
            artifacts[f"p{i}-{member.artifact}"] = part.artifacts[member.artifact]
    models = list(dict.fromkeys(p.info["model"] for p in parts))
    thresholds = [float(p.info["threshold"]) for p in parts]
    info = {
        **first, "format": PACKAGE_FORMAT, "model": ENSEMBLE_SEPARATOR.join(models), "threshold": float(np.mean(thresholds)),
        "part_thresholds": thresholds, "threshold_rule": "mean of the parts' validation-chosen thresholds (calibrated scale)",
        "runs": [r for p in parts for r in p.info.get("runs", [])],
        "folds": [f for p in parts for f in p.info.get("folds", [])],
        "calibration": {"method": "per member"},
    }  # fmt: skip
    if all("prevalence" in p.info for p in parts):
        info["prevalence"] = float(np.mean([p.info["prevalence"] for p in parts]))
    if len(models) > 1:
        info.update(family="ensemble", representation="mixed", parts=[
            {k: p.info.get(k) for k in ("model", "family", "representation", "n_models", "runs", "folds")} for p in parts])  # fmt: skip
    return Packaged(EcgMiPackage(info, members), artifacts)


def log_package(packaged: Packaged, name: str, registered_model_name: str | None = None, step: int = 0,
                tags: dict[str, str] | None = None) -> ModelInfo:  # fmt: skip
    """Log ``packaged`` as the MLflow Model ``name`` of the active run (signature, input
    example, explicit pip requirements, ecg-mi metadata, ``tags``); register it when named.

    ``step``: the run's step the model belongs to — MLflow links the run's metrics of that step
    to the logged model (a network's per-epoch curves at its selected epoch)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    info = packaged.info
    return mlflow.pyfunc.log_model(
        name=name, python_model=packaged.python_model, artifacts=packaged.artifacts,
        pip_requirements=pip_requirements(), signature=signature(window_length(info)),
        input_example=input_example(int(info["sample_rate"]), float(info["window_s"])),
        metadata={METADATA_KEY: info}, registered_model_name=registered_model_name, step=step, tags=tags,
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


def read_info(uri: str) -> dict[str, Any]:
    """The ecg-mi metadata of the MLflow Model at ``uri``, read from its ``MLmodel`` before any
    pickle is loaded, format checked; InputError for an MLflow Model ecg-mi did not package."""
    try:
        if os.path.exists(uri):
            metadata = (Model.load(uri).metadata or {}).get(METADATA_KEY)
        else:  # only the MLmodel file, into a folder removed at once (Model.load leaves its copy)
            with tempfile.TemporaryDirectory(prefix="ecg_mi_mlmodel_") as where:
                local = mlflow.artifacts.download_artifacts(f"{uri.rstrip('/')}/MLmodel", dst_path=where)
                metadata = (Model.load(local).metadata or {}).get(METADATA_KEY)
    except Exception as exc:  # MlflowException, a missing file, a malformed MLmodel...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{uri}: cannot load the MLflow model ({first[:300]})") from None
    if not isinstance(metadata, dict) or not set(CONTRACT_KEYS) <= set(metadata):
        raise InputError(f"{uri}: not an ecg-mi packaged model (no {METADATA_KEY!r} metadata "
                         f"with {', '.join(CONTRACT_KEYS)})")  # fmt: skip
    check_format(metadata)
    return dict(metadata)


def download_package(uri: str, where: str) -> Packaged:
    """The packaged model at ``uri`` (:func:`ecg_mi.tracking.logged_model_uri`), downloaded into ``where`` and
    loaded with its artifact files, to be packaged again (an ensemble member, which refers to it
    by its :func:`logged_source`; scoring loads a model with
    :func:`ecg_mi.predict.load_for_scoring`); DataError when there is none (a run
    trained with ``tracking.log_model=false``) or when it cannot score an example ECG."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=where)
    except (MlflowException, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{uri}: no packaged ecg-mi model ({first}); re-train with "
                        "tracking.log_model=true") from None  # fmt: skip
    read_info(local)
    try:
        package = mlflow.pyfunc.load_model(local).unwrap_python_model()  # fetches the members it refers to
    except InputError as exc:  # such a member missing from the store
        raise InputError(f"{uri}: {exc}") from None
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
    return Packaged(package, dict(package.artifact_paths), logged_source(uri, local))


def logged_source(uri: str, local: str) -> str | None:
    """How the tracking store names the model downloaded from ``uri`` into ``local``, for
    members to refer to: ``models:/<model id>`` (the id MLflow 3 writes in the MLmodel; an alias
    may move, the id does not), ``uri`` itself for a run's model an MLflow 2 store logged; None
    for a model read from a folder (the store may not hold it) or without an id."""
    if not uri.startswith(("runs:/", "models:/")):
        return None
    model_id = Model.load(local).model_id
    if model_id:
        return f"models:/{model_id}"
    return uri if uri.startswith("runs:/") else None


__all__ = ["CONTRACT_KEYS", "METADATA_KEY", "PACKAGE_FORMAT", "REFERRING_FORMAT", "EcgMiPackage", "Member",
           "Packaged", "calibrated_package", "check_input", "contained", "ecg_mi_version", "ensemble",
           "input_example", "load_member", "load_members", "download_package", "log_package", "logged_source",
           "model_info", "pip_requirements", "read_info", "referring", "signature", "weighted_mean",
           "window_length", "write_estimator"]  # fmt: skip
