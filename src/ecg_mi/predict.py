"""``run(cfg)`` behind ``predict.py``: export files → Records → packaged MLflow model → CSV rows.

One row per input *record* (columns :data:`COLUMNS`): the file's format is detected from its
content (:func:`~ecg_mi.data.readers.read_ecg`), the Record is resampled and cut into the
model's 10 s windows (:func:`~ecg_mi.data.windows.model_windows`, the one window policy) and
P(MI) is the mean of the windows' probabilities; ``pred_mi = prob_mi >= threshold`` with the
threshold packaged with the model.

Policies:

* **Inputs** — a file, a folder (searched recursively) or a glob pattern. A file named
  explicitly is always tried. In a folder or glob, files that are evidently not ECG exports
  are skipped and counted, not reported as errors: hidden files, documentation and tables
  (:data:`SKIPPED_SUFFIXES`: licences, ``SOURCE.txt``, READMEs, CSV/JSON sidecars, images),
  and WFDB signal files (``.dat``, ``.xyz``…)
  listed by a ``.hea`` header beside them — a WFDB record is read through its header, so it
  gets one row, not one per file. Anything else that no reader accepts (an orphan ``.dat``,
  a corrupt export, an unknown XML) is a row with ``status=error``.
* **The input gate** (:mod:`ecg_mi.data.gate`) — a record the model cannot judge is not
  scored: its row carries ``status=refused`` and a one-line reason naming the check and the
  value (``amplitude: lead V2 robust range 4200 mV > 24.1 mV (units or gain?)``). The file's
  size and what its header declares are checked before it is read, the Record as read (rate,
  duration, amplitude, flat and clipped leads), then its model windows (the check the packaged
  model applies itself). Limits: the package's (fitted on its training data), overridden by
  ``gate.<key>=`` (``conf/gate/default.yaml``).
* **Errors** — a bad file never stops the others: its row carries ``status=error`` and a
  one-line reason. The CSV is written atomically once every record was tried; the command
  then exits 2 with ``error: <input>: N of M files could not be scored (see <csv>)`` if any
  row was refused or failed. An exception that is not an :class:`~ecg_mi.errors.EcgMiError` (a reader bug)
  is also confined to its row, as ``internal error (<type>: <message>)``.
* **Never over or inside the inputs** — before anything is loaded, ``output`` and
  ``gradcam_dir`` are refused (one line, exit 2) when they name an input file (a WFDB
  record's signal files included), lie inside an input folder, are a folder where a file is
  expected or a file where a folder is expected, or cannot be written.
* **Stops and resume** — rows are appended, one batch at a time, to ``<output>.partial``; the
  CSV itself is written atomically at the end and the partial file removed. A stopped run
  (SIGTERM 143, SIGINT 130) keeps the rows it scored there; ``resume=true`` scores only the
  records that file lacks. A partial file left behind is never overwritten silently.
* **Any file name** — ``input_list=<text file>`` names the inputs one path per line, read
  literally (no glob, no Hydra parsing: commas, brackets, ``=`` and quotes are plain characters).
* **Duplicates** — ``signal_sha256`` is the digest of a record's signal (float32 mV, standard
  lead order, with its rate); a record whose signal equals an earlier one's is still scored and
  names that record's path in ``duplicate_of``.
* **Site prevalence** — ``prevalence=<fraction>`` moves P(MI) from the MI prevalence the model's
  calibration assumed (packaged; ``train_prevalence=`` for older packages) to the site's
  (:func:`at_prevalence`); the threshold moves with it, so ``pred_mi`` is unchanged.
* **Grad-CAM** (``gradcam=true``, network models only): one 12-lead PNG per scored record
  in ``<csv stem>_gradcam/`` beside the CSV, named after the input path relative to the
  input root (``/`` → ``__``) so records with the same id in different folders never clash.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import itertools
import logging
import multiprocessing
import os
import signal
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ecg_mi.calibration import prior_shift
from ecg_mi.data.gate import GateLimits, check_record, check_windows
from ecg_mi.data.readers import detect_format, read_ecg
from ecg_mi.data.readers.wfdb_export import header_signal_files
from ecg_mi.data.record import STANDARD_LEADS, Record, canonical_lead_name
from ecg_mi.data.windows import DEFAULT_WINDOW_S, model_windows, window_starts
from ecg_mi.errors import ConfigError, DataError, EcgMiError, InputError, Refused
from ecg_mi.representation import Derived
from ecg_mi.utils.io import read_csv_table, write_probabilities_csv

log = logging.getLogger(__name__)

#: The columns of the predictions CSV, in order.
COLUMNS = ("path", "record_id", "format", "status", "error", "fs_in", "n_leads_in", "duration_s",
           "prob_mi", "pred_mi", "threshold", "model_uri", "signal_sha256", "duplicate_of")  # fmt: skip

#: Suffixes (lower case) of files a folder or glob input skips as evidently not ECG exports.
SKIPPED_SUFFIXES = frozenset({
    ".txt", ".md", ".rst", ".pdf", ".html", ".htm",  # licences, SOURCE.txt, READMEs
    ".csv", ".tsv", ".json", ".yaml", ".yml", ".log",  # tables and sidecars (our own CSV too)
    ".png", ".jpg", ".jpeg", ".gif", ".svg",  # figures (Grad-CAM PNGs of an earlier run)
})  # fmt: skip

#: Largest WFDB header read to find the signal files it lists (bytes; real ones are < 4 kB).
_HEADER_BYTES = 1 << 16


# ---------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class PackagedModel:
    """A loaded MLflow pyfunc ecg-mi model and the preprocessing it was packaged with.

    Attributes:
        uri: the MLflow model URI it was loaded from.
        pyfunc: the loaded ``mlflow.pyfunc.PyFuncModel``; ``predict`` takes float32
            ``[N, 12, window]`` in mV (leads in :attr:`leads` order) and returns ``[N]`` P(MI).
        sample_rate: the model's input rate (Hz).
        window_s: the model's window length (seconds).
        threshold: the packaged cut-off: P(MI) ≥ threshold predicts MI.
        leads: the model's lead order.
        info: the whole packaged metadata (``model``, ``family``, ``n_models``…).
        gate: the input gate's limits a record must pass to be scored (the package's, with
            the command's overrides).
    """

    uri: str
    pyfunc: Any
    sample_rate: float
    window_s: float
    threshold: float
    leads: tuple[str, ...] = STANDARD_LEADS
    info: dict[str, Any] = field(default_factory=dict)
    gate: GateLimits = field(default_factory=GateLimits)
    prevalence_shift: tuple[float, float] | None = None  # (packaged, site) MI prevalence

    @property
    def window(self) -> int:
        """Window length in samples."""
        return int(round(self.window_s * self.sample_rate))

    @property
    def lead_order(self) -> list[int] | None:
        """Rows of a Record (standard order) in the model's lead order; None when identical."""
        if tuple(self.leads) == STANDARD_LEADS:
            return None
        return [STANDARD_LEADS.index(canonical_lead_name(lead)) for lead in self.leads]

    @property
    def explainer(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """``gradcam(x [N, 12, window]) -> [N, window]`` in [0, 1], or None (not a network:
        a classical package has the method too, but it only says it has no map over time)."""
        if self.info.get("family") != "network":
            return None
        try:
            inner = self.pyfunc.unwrap_python_model()
        except Exception:  # a flavour without a Python model (e.g. a plain sklearn pyfunc)
            return None
        method = getattr(inner, "gradcam", None)
        return method if callable(method) else None

    @property
    def package(self) -> Any:
        """The ecg-mi package inside the pyfunc (its ``predict_derived`` and ``derived_keys``), or
        None for a flavour without one."""
        try:
            inner = self.pyfunc.unwrap_python_model()
        except Exception:  # a flavour without a Python model
            return None
        return inner if callable(getattr(inner, "predict_derived", None)) else None

    def preparer(self, read: Callable[[Any], Record]) -> Preparer:
        """What makes a record ready for this model (:class:`Preparer`), reading with ``read``."""
        package = self.package
        derive = tuple(package.derived_keys) if package is not None else ()
        return Preparer(read, self.gate, self.sample_rate, self.window_s, self.lead_order, derive)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """P(MI) ``[N]`` (float64) of ``windows`` ``[N, 12, window]`` through the MLflow model
        (which applies the input gate itself)."""
        return self._shifted(self.pyfunc.predict(windows), len(windows))

    def probabilities_of(self, derived: Derived) -> np.ndarray:
        """P(MI) ``[N]`` of windows the input gate passed, with what the reading workers derived
        from them (:class:`Preparer`): the package's own arithmetic, without gating again."""
        package = self.package
        if package is None:
            return self.probabilities(derived.x)
        return self._shifted(package.predict_derived(derived), len(derived.x))

    def _shifted(self, probs: Any, n_windows: int) -> np.ndarray:
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        if probs.shape[0] != n_windows:
            raise InputError(f"{self.uri}: the model returned {probs.shape[0]} probabilities "
                             f"for {n_windows} windows")  # fmt: skip
        return probs if self.prevalence_shift is None else prior_shift(probs, *self.prevalence_shift)


def at_prevalence(model: PackagedModel, prevalence: float | None, packaged: float | None = None) -> PackagedModel:
    """``model`` whose P(MI) is moved to a site where MI has ``prevalence`` (a fraction;
    :func:`~ecg_mi.calibration.prior_shift`) from the prevalence its calibration assumed
    (``packaged``, else the package's own ``prevalence``); the threshold moves with it, so the
    decisions are the model's. ``prevalence=None``: unchanged."""
    if prevalence is None:
        return model
    source = packaged if packaged is not None else model.info.get("prevalence")
    if source is None:
        raise ConfigError(f"{model.uri}: the package does not say the MI prevalence its calibration assumed "
                          "(packaged before ecg-mi recorded it); pass train_prevalence=<fraction>, e.g. 0.333 "
                          "for the 1:2 cohort")  # fmt: skip
    threshold = float(prior_shift(np.array([model.threshold]), float(source), float(prevalence))[0])
    return replace(model, prevalence_shift=(float(source), float(prevalence)), threshold=threshold)


def packaged_gate(pyfunc: Any, sample_rate: float, window_s: float,
                  overrides: dict[str, Any] | None = None) -> GateLimits:  # fmt: skip
    """The input gate's limits of a loaded package (its members', else the defaults of its
    rate and window) with ``overrides`` (``gate.<key>``), which the package then applies too."""
    try:
        inner = pyfunc.unwrap_python_model()
    except Exception:  # a flavour without a Python model
        inner = None
    packaged = getattr(inner, "gate", None)
    limits = packaged if isinstance(packaged, GateLimits) else GateLimits.for_model(sample_rate, window_s)
    limits = limits.override(overrides or {})
    if overrides and callable(getattr(inner, "use_gate", None)):
        inner.use_gate(limits)
    return limits


def model_from_info(uri: str, pyfunc: Any, info: dict[str, Any], gate: dict[str, Any] | None = None) -> PackagedModel:
    """Check the packaged metadata ``info`` and wrap ``pyfunc`` (InputError naming ``uri``),
    its input gate overridden by ``gate`` (:func:`packaged_gate`)."""
    if not info:
        raise InputError(f"{uri}: not an ecg-mi model (no 'ecg_mi' entry in its MLmodel metadata)")
    try:
        sample_rate = float(info["sample_rate"])
        window_s = float(info.get("window_s", DEFAULT_WINDOW_S))
        threshold = float(info["threshold"])
        leads = tuple(str(lead) for lead in info.get("leads", STANDARD_LEADS))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{uri}: ecg-mi metadata lacks or mangles {exc}") from None
    if not (sample_rate > 0 and window_s > 0 and 0 <= threshold <= 1):
        raise InputError(f"{uri}: packaged sample_rate={sample_rate}, window_s={window_s}, "
                         f"threshold={threshold} are out of range")  # fmt: skip
    canonical = [canonical_lead_name(lead) for lead in leads]
    if None in canonical or sorted(canonical) != sorted(STANDARD_LEADS):
        raise InputError(f"{uri}: packaged leads {list(leads)} are not the 12 standard leads")
    limits = packaged_gate(pyfunc, sample_rate, window_s, gate)
    return PackagedModel(uri, pyfunc, sample_rate, window_s, threshold, leads, info, limits)


def gate_overrides(cfg: DictConfig) -> dict[str, Any]:
    """The command's ``gate.<key>=`` overrides (conf/gate/): the keys that are not null."""
    node = cfg.get("gate")
    if node is None:
        return {}
    values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    if not isinstance(values, dict):
        raise ConfigError(f"gate={values!r}: must be a mapping of the input gate's limits (gate.<key>=<value>)")
    return {k: v for k, v in values.items() if v is not None}


def load_for_scoring(uri: str | None, tracking_uri: str | None = None,
                     gate: dict[str, Any] | None = None) -> PackagedModel:  # fmt: skip
    """Load the MLflow model at ``uri`` (``runs:/<run id>`` — the model that run logged, see
    :func:`ecg_mi.tracking.logged_model_uri`; ``runs:/<run id>/<name>``, ``models:/ecg-mi@champion``,
    a local folder) with its packaged preprocessing, its input gate overridden by ``gate``, to
    score records (its downloaded files are removed once loaded;
    :func:`ecg_mi.packaging.download_package` keeps them, to re-package). An ensemble's members
    are fetched from the tracking store (``tracking_uri``, else ``$MLFLOW_TRACKING_URI``), even
    when ``uri`` is a local folder (:mod:`ecg_mi.packaging`).

    Raises:
        ConfigError: no URI given, or a bad gate override.
        InputError: the model cannot be loaded or is not an ecg-mi model.
    """
    if uri is None or not str(uri).strip():
        raise ConfigError("model_uri: missing; pass model_uri=<MLflow model URI> "
                          "(runs:/<run id> or models:/ecg-mi@champion)")  # fmt: skip
    import mlflow

    from ecg_mi.tracking import ensure_store, resolve_tracking_uri

    # Downloading a model draws MLflow's own progress bars; predict keeps stderr for its own.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    location = str(uri)  # where the model is read; ``uri`` as given names it in the output
    in_store = location.startswith(("runs:/", "models:/"))
    if in_store:  # resolved through the tracking store
        store = ensure_store(resolve_tracking_uri(tracking_uri))
        mlflow.set_tracking_uri(store)
        location = model_location(location, store)
    from ecg_mi.packaging import read_info

    packaged = read_info(location)  # an MLflow Model ecg-mi packaged, in a format this ecg-mi reads
    if packaged.get("member_models") and not in_store:  # a folder whose members the store holds
        mlflow.set_tracking_uri(ensure_store(resolve_tracking_uri(tracking_uri)))
    try:
        # Downloaded into a folder removed once loaded: a package holds its weights in memory.
        with tempfile.TemporaryDirectory(prefix="ecg_mi_model_") as where:
            pyfunc = mlflow.pyfunc.load_model(location, dst_path=where)
        info = dict((pyfunc.metadata.metadata or {}).get("ecg_mi") or {})
    except InputError as exc:  # an ensemble member the tracking store does not hold: name the model too
        raise InputError(f"{uri}: {exc}") from None
    except EcgMiError:
        raise
    except Exception as exc:  # MlflowException, a missing artifact, an unpicklable model...
        raise InputError(f"{uri}: cannot load the MLflow model ({one_line(str(exc), 300)})") from None
    return model_from_info(str(uri), pyfunc, info, gate)


def run_of(uri: str) -> str | None:
    """The run id of ``runs:/<run id>`` or ``runs:/<run id>/model`` (this project's name of a run's
    model before models were named ``<model>-fold<k>``); None for any other URI."""
    parts = uri.removeprefix("runs:/").strip("/").split("/")
    if not uri.startswith("runs:/") or len(parts) > 2 or not parts[0] or parts[1:] not in ([], ["model"]):
        return None
    return parts[0]


def model_location(uri: str, store: str) -> str:
    """Where the MLflow model ``uri`` is read: for ``runs:/<run id>`` the model that run logged,
    whatever its name (InputError naming ``uri`` when the run is unknown); else ``uri``."""
    from mlflow.exceptions import MlflowException

    from ecg_mi.tracking import logged_model_uri

    run_id = run_of(uri)
    if run_id is None:
        return uri
    try:
        return logged_model_uri(run_id, store)
    except MlflowException as exc:
        raise InputError(f"{uri}: cannot load the MLflow model ({one_line(str(exc), 300)})") from None


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Inputs:
    """The files an ``input=`` spec names: ``files`` to score, rooted at ``root`` (for
    relative names), and how many companion files were ``skipped``."""

    spec: str
    files: list[Path]
    root: Path
    skipped: int = 0
    collection: bool = False  # a folder or glob (progress bar, companion skipping)
    folders: tuple[Path, ...] = ()  # the folders searched (outputs may not go inside them)


def wfdb_signal_files(files: Iterable[Path]) -> set[Path]:
    """Signal files (``.dat``, ``.xyz``…) listed by a WFDB ``.hea`` header among ``files``."""
    listed: set[Path] = set()
    for header in (f for f in files if f.suffix.lower() == ".hea"):
        try:
            with open(header, "rb") as handle:
                head = handle.read(_HEADER_BYTES)
        except OSError:  # unreadable: the header's own row will say so
            continue
        listed |= {header.parent / name for name in header_signal_files(head)} - {header}
    return listed


def is_companion(path: Path) -> bool:
    """Evidently not an ECG export: hidden, or a documentation / table / image suffix."""
    return path.name.startswith(".") or path.suffix.lower() in SKIPPED_SUFFIXES


def select_ecg_files(files: Iterable[Path]) -> tuple[list[Path], int]:
    """The candidate ECG files among ``files`` (sorted) and how many were skipped as
    companions (see module docstring)."""
    files = sorted({Path(f) for f in files})
    signal_files = wfdb_signal_files(files)
    kept = [f for f in files if not (is_companion(f) or f in signal_files)]
    return kept, len(files) - len(kept)


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder`` (recursive)."""
    return [p for p in folder.rglob("*") if p.is_file()]


def expand_input(spec: str | None) -> Inputs:
    """Resolve ``input=``: a file, a WFDB record name, a folder (recursive) or a glob.

    Raises:
        ConfigError: no input given.
        InputError: the spec matches no file, or only companion files.
    """
    if spec is None or not str(spec).strip():
        raise ConfigError("input: missing; pass input=<ECG file | folder | glob>")
    spec = str(spec)
    path = Path(spec)
    if path.is_file() or (not path.exists() and Path(f"{spec}.hea").is_file()):
        return Inputs(spec, [path], path.parent)
    if path.is_dir():
        found, root = files_under(path), path
    elif glob.has_magic(spec):
        matches = [Path(m) for m in glob.glob(spec, recursive=True)]
        found = [p for m in matches for p in ([m] if m.is_file() else files_under(m))]
        root = Path(os.path.commonpath([str(p.parent) for p in found])) if found else Path(".")
    else:
        raise InputError(f"{spec}: no such file or folder")
    files, skipped = select_ecg_files(found)
    if not files:
        what = f"holds only {skipped} non-ECG companion file(s)" if skipped else "matches no file"
        raise InputError(f"{spec}: {what}")
    return Inputs(spec, files, root, skipped, collection=True, folders=(root.resolve(),))


def read_input_list(list_file: str) -> Inputs:
    """The inputs named by ``list_file``, one path per line (blank lines skipped), each read
    literally: a file, a WFDB record name or a folder (searched like ``input=``)."""
    try:
        lines = Path(list_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{list_file}: cannot read the input list ({getattr(exc, 'strerror', None) or exc})") from None
    named = [Path(line) for line in lines if line.strip()]
    missing = [str(p) for p in named if not (p.exists() or Path(f"{p}.hea").is_file())]
    if not named or missing:
        raise InputError(f"{list_file}: " + (f"no such file or folder: {missing[0]!r}"
                                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                                             if missing else "names no input"))  # fmt: skip
    folders = [p for p in named if p.is_dir()]
    found = [p for p in named if not p.is_dir()] + [f for d in folders for f in files_under(d)]
    files, skipped = select_ecg_files(found) if folders else (list(dict.fromkeys(found)), 0)
    if not files:
        raise InputError(f"{list_file}: names only {skipped} non-ECG companion file(s)")
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in files]))
    return Inputs(list_file, files, root, skipped, collection=True, folders=tuple(d.resolve() for d in folders))


def input_files(inputs: Inputs) -> set[Path]:
    """Every file the inputs read (resolved): the files named and their WFDB signal files."""
    named = {f.resolve() for f in inputs.files if f.exists()}
    headers = [f for f in inputs.files if f.suffix.lower() == ".hea" or Path(f"{f}.hea").is_file()]
    headers = [h if h.suffix.lower() == ".hea" else Path(f"{h}.hea") for h in headers]
    return named | {h.resolve() for h in headers} | {f.resolve() for f in wfdb_signal_files(headers)}


def check_outputs(output: Path, figures: Path | None, inputs: Inputs) -> None:
    """Refuse, before any work, outputs that would write over or inside the inputs, a folder
    where a file is expected, a file where a folder is expected, or a place that cannot be
    written (see module docstring). InputError naming the output."""
    read, folders = input_files(inputs), inputs.folders
    for path, what in ((output, "output"), (figures, "gradcam_dir")):
        if path is None:
            continue
        resolved = path.resolve()
        if resolved in read:
            raise InputError(f"{path}: is one of the input files; {what}= must name a new place (inputs are never written)")
        inside = next((f for f in folders if f in resolved.parents or f == resolved), None)
        if inside is not None:
            raise InputError(f"{path}: is inside the input folder {inside}; write the {what} elsewhere")
    if figures is not None and figures.exists() and not figures.is_dir():
        raise InputError(f"{figures}: is a file; gradcam_dir= must name a folder")
    check_writable(output)
    if figures is not None:
        check_writable(figures / "check.png")


def check_writable(output: str | Path) -> Path:
    """Make sure a file can be written at ``output`` (its missing folders are made when it is
    written, not here).

    Raises:
        InputError: ``output`` is a folder, lies under a file, or its folder cannot be written.
    """
    output = Path(output)
    if output.is_dir():
        raise InputError(f"{output}: is a folder; output= must name a CSV file")
    existing = next(p for p in [output.parent, *output.parent.parents] if p.exists())
    if not existing.is_dir():
        raise InputError(f"{output}: {existing} is a file, not a folder")
    try:  # the nearest existing folder takes a file: nothing is created before the work starts
        with tempfile.TemporaryFile(dir=existing):
            pass  # writing a file there works (a check os.access cannot make for root)
    except OSError as exc:
        raise InputError(f"{output}: cannot write there ({exc.strerror or exc})") from None
    return output


# ---------------------------------------------------------------------------- scoring


@dataclass
class Scored:
    """One record's outcome: the Record (None when it could not be read), its windows with
    what the model reads of them (``derived``, None when not scored), the mean P(MI) over its
    windows (NaN when not scored), the one-line error and whether the input gate ``refused``
    it (the error is then its reason)."""

    key: Any
    record: Record | None = None
    derived: Derived | None = None
    prob: float = float("nan")
    error: str | None = None
    refused: bool = False

    @property
    def windows(self) -> np.ndarray | None:
        """The model input, float32 ``[W, 12, window]`` mV; None when not scored."""
        return None if self.derived is None else self.derived.x

    @property
    def digest(self) -> str:
        """SHA-256 of the record's signal (float32 mV, standard lead order) and rate; '' unread."""
        if self.record is None:
            return ""
        signal = np.ascontiguousarray(self.record.signal, dtype=np.float32)
        return hashlib.sha256(signal.tobytes() + f"|{signal.shape}|{float(self.record.fs)!r}".encode()).hexdigest()


def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line (whitespace runs collapsed), at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True)
class Preparer:
    """Makes one record ready for a model, in a reading worker when there are several (so it
    holds only picklable settings, not the model): read it with ``read``, pass it through the
    input gate (``gate``), cut its windows at ``sample_rate`` Hz, ``window_s`` s (leads in
    ``lead_order``: rows of the standard order; None when the same) and compute what the model
    reads of them (``derive``: median beats, the 408 features — once, whatever the number of
    ensemble members reading them). The windows are checked as the package checks them, so
    that a batch never holds a window the package refuses."""

    read: Callable[[Any], Record]
    gate: GateLimits
    sample_rate: float
    window_s: float
    lead_order: list[int] | None = None
    derive: tuple[str, ...] = ()

    def __call__(self, key: Any) -> Scored:
        """``key`` read and ready, or a refusal or any failure kept as the row's error."""
        record = None
        try:
            record = self.read(key)
            check_record(record, self.gate)  # before resampling: a rate of 0.001 Hz allocates nothing
            windows = model_windows(record, self.sample_rate, self.window_s)
            if self.lead_order is not None:
                windows = np.ascontiguousarray(windows[:, self.lead_order])
            check_windows(windows, self.gate)
            derived = Derived(windows, self.sample_rate)
            derived.compute(self.derive)
            return Scored(key, record, derived)
        except Refused as exc:
            return Scored(key, record, error=one_line(exc.reason), refused=True)
        except EcgMiError as exc:
            return Scored(key, error=one_line(str(exc)))
        except Exception as exc:  # a reader bug must not sink the other files of a batch
            log.debug("internal error reading %s", key, exc_info=True)
            return Scored(key, error=one_line(f"internal error ({type(exc).__name__}: {exc})"))


def _reading_worker() -> None:
    """A reading worker leaves stop signals to the scoring process, which ends the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def prepared(keys: Iterable[Any], prepare: Preparer, workers: int, ahead: int) -> Iterator[Scored]:
    """``prepare(key)`` of every key, in order: in this process when ``workers`` < 2, else in
    a pool of that many processes, at most ``ahead`` records read ahead of the consumer (memory
    stays bounded however many files). Forked, so the workers start at once with the modules
    already imported; they never run the model (no torch thread pool crosses the fork)."""
    if workers < 2:
        yield from map(prepare, keys)
        return
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_reading_worker)
    try:
        keys = iter(keys)
        pending = deque(pool.submit(prepare, key) for key in itertools.islice(keys, ahead))
        while pending:
            scored = pending.popleft().result()
            pending.extend(pool.submit(prepare, key) for key in itertools.islice(keys, 1))
            yield scored
    finally:  # a stop or an error: the running reads end, the queued ones are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def reading_workers(setting: Any, n_files: int, batch_records: int) -> int:
    """Reading processes for ``n_files``: ``setting`` (``auto``: one per available core); none
    (in-process) for a single batch, where starting a pool costs more than it saves."""
    if n_files <= batch_records:
        return 0
    return len(os.sched_getaffinity(0)) if setting == "auto" else int(setting)


def score_batch(batch: list[Scored], model: PackagedModel) -> None:
    """Fill ``prob`` of the readable records of ``batch`` with one model call."""
    ready = [s for s in batch if s.derived is not None]
    if not ready:
        return
    probs = model.probabilities_of(Derived.joined([s.derived for s in ready]))
    bounds = np.cumsum([0] + [len(s.windows) for s in ready])
    for s, start, stop in zip(ready, bounds[:-1], bounds[1:], strict=True):
        s.prob = float(probs[start:stop].mean())  # P(MI) of a record: mean over its windows


def score_records(keys: Iterable[Any], read: Callable[[Any], Record], model: PackagedModel,
                  batch_records: int = 32, workers: int = 0) -> Iterator[Scored]:  # fmt: skip
    """Score every key (read with ``read``; by ``workers`` processes when ≥ 2, ``read`` then
    picklable), ``batch_records`` records per model call, yielding each :class:`Scored` in
    input order (predict and external validation share it)."""
    batch: list[Scored] = []
    for scored in prepared(keys, model.preparer(read), workers, ahead=4 * batch_records):
        batch.append(scored)
        if len(batch) >= batch_records:
            score_batch(batch, model)
            yield from batch
            batch = []
    score_batch(batch, model)
    yield from batch


def progress(items: list, desc: str, enabled: bool) -> Iterable:
    """``items`` wrapped in a tqdm bar (stderr) unless disabled or $ECG_MI_NO_PROGRESS is set."""
    from tqdm.auto import tqdm

    off = not enabled or bool(os.environ.get("ECG_MI_NO_PROGRESS"))
    return tqdm(items, desc=desc, unit="record", disable=off)


# ---------------------------------------------------------------------------- rows and files


def _format_of(path: Path) -> str:
    """The detected format of a file whose reading failed ('' when not even detected)."""
    try:
        return detect_format(path)
    except EcgMiError:
        return ""


def prediction_row(path: Path, scored: Scored, model: PackagedModel) -> dict[str, Any]:
    """One CSV row (:data:`COLUMNS`) for the record read from ``path``."""
    row: dict[str, Any] = {"path": str(path), "threshold": model.threshold, "model_uri": model.uri,
                           "signal_sha256": scored.digest}  # fmt: skip
    record = scored.record
    if record is None:
        name = path.name[: -len(".hea")] if path.suffix == ".hea" else path.stem
        row.update(record_id=name, format=_format_of(path))
    else:
        meta = record.metadata
        row.update(record_id=record.record_id, format=meta.get("format", ""), fs_in=float(meta.get("fs_in", record.fs)),
                   n_leads_in=meta.get("n_leads_in", record.signal.shape[0]), duration_s=record.duration_s)  # fmt: skip
    if scored.error is not None or record is None:
        return {**row, "status": "refused" if scored.refused else "error", "error": scored.error or "not scored"}
    return {**row, "status": "ok", "error": "", "prob_mi": scored.prob, "pred_mi": int(scored.prob >= model.threshold)}


def predictions_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a DataFrame with exactly :data:`COLUMNS` (integers nullable)."""
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype({"n_leads_in": "Int64", "pred_mi": "Int64"})


def figure_name(path: Path, root: Path) -> str:
    """PNG name of a record: its path relative to the input root, ``/`` → ``__``."""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        relative = Path(path.name)
    return "__".join(relative.parts).replace(" ", "_") + ".png"


def stitch(windows: np.ndarray, cams: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The record at the model's rate (``[12, n]`` mV) and its Grad-CAM ``[n]`` rebuilt from
    its windows (``window_starts`` policy); where two windows overlap the larger CAM wins."""
    window = windows.shape[-1]
    n_samples = max(n_samples, window)  # an edge-padded short record is one whole window
    starts = window_starts(n_samples, window)
    signal = np.zeros((windows.shape[1], n_samples), dtype=np.float32)
    cam = np.zeros(n_samples, dtype=np.float32)
    for w, c, s in zip(windows, cams, starts, strict=True):
        signal[:, s : s + window] = w
        cam[s : s + window] = np.maximum(cam[s : s + window], c)
    return signal, cam


def write_gradcam(scored: Scored, model: PackagedModel, path: Path) -> Path:
    """One 12-lead PNG of ``scored`` with its Grad-CAM band (standard lead order)."""
    from ecg_mi.explain.figures import gradcam_figure

    explain = model.explainer
    assert explain is not None and scored.windows is not None and scored.record is not None
    cams = np.clip(np.asarray(explain(scored.windows), dtype=np.float32), 0, 1)
    n_samples = int(round(scored.record.duration_s * model.sample_rate))
    signal, cam = stitch(scored.windows, cams, n_samples)
    if model.lead_order is not None:  # figures show the standard order
        signal = signal[np.argsort(model.lead_order)]
    verdict = "MI" if scored.prob >= model.threshold else "no MI"
    title = (f"{scored.record.record_id} ({scored.record.metadata.get('format', '?')}): "
             f"P(MI) = {scored.prob:.3f} → {verdict} at threshold {model.threshold:.3f}")  # fmt: skip
    return gradcam_figure(signal, cam, model.sample_rate, title, path)


# ---------------------------------------------------------------------------- the route


def gradcam_folder(cfg: DictConfig, output: Path) -> Path:
    """Where Grad-CAM PNGs go: ``cfg.gradcam_dir`` or ``<csv stem>_gradcam/`` beside the CSV."""
    return Path(cfg.gradcam_dir) if cfg.get("gradcam_dir") else output.with_name(f"{output.stem}_gradcam")


def partial_path(output: Path) -> Path:
    """Where a run appends its rows batch by batch: ``<output>.partial``."""
    return output.with_name(output.name + ".partial")


def resumed_rows(partial: Path, resume: bool, model_uri: str) -> list[dict[str, Any]]:
    """The rows a stopped run left in ``partial`` (``resume=true``); none when there is no such
    file. InputError for a partial file that ``resume`` does not take or another model wrote."""
    if not partial.exists():
        return []
    if not resume:
        raise InputError(f"{partial}: a stopped run left its rows here; pass resume=true to score only the "
                         "records it lacks, or remove the file")  # fmt: skip
    table = read_csv_table(partial, "partial predictions", dtype={"record_id": str}, keep_default_na=False,
                           na_values={c: [""] for c in ("fs_in", "n_leads_in", "duration_s", "prob_mi", "pred_mi")})  # fmt: skip
    if list(table.columns) != list(COLUMNS) or set(table["model_uri"]) - {model_uri}:
        raise InputError(f"{partial}: not the partial predictions of model_uri={model_uri}; remove it to start anew")
    return table.to_dict("records")


def append_rows(rows: list[dict[str, Any]], partial: Path) -> None:
    """Append ``rows`` to ``partial`` (header first when new), flushed to disk; a stop signal
    waits for the write to end, so a batch is all there or not at all."""
    from ecg_mi.cli import stop_signals_held

    with stop_signals_held():
        new = not partial.exists()
        partial.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "a", encoding="utf-8", newline="") as handle:
            predictions_table(rows).to_csv(handle, index=False, header=new, lineterminator="\n")
            handle.flush()
            os.fsync(handle.fileno())


def mark_duplicates(rows: list[dict[str, Any]]) -> None:
    """``duplicate_of`` of each row: the path of the first earlier row with the same signal."""
    first: dict[str, str] = {}
    for row in rows:
        digest = row.get("signal_sha256") or ""
        row["duplicate_of"] = first.get(digest, "") if digest else ""
        if digest:
            first.setdefault(digest, row["path"])


def select_inputs(cfg: DictConfig) -> Inputs:
    """The inputs of ``input=`` or ``input_list=`` (exactly one of them)."""
    if cfg.get("input_list") and cfg.get("input"):
        raise ConfigError("input and input_list: pass one of them, not both")
    if cfg.get("input_list"):
        return read_input_list(cfg.input_list)
    return expand_input(cfg.get("input"))


def run(cfg: DictConfig) -> pd.DataFrame:
    """Score the inputs with ``cfg.model_uri`` into ``cfg.output`` (see module docstring).

    Returns the predictions table. Raises DataError (exit 2) after writing the CSV when some
    records could not be scored.
    """
    from ecg_mi.config_checks import check_predict_config

    check_predict_config(cfg)
    if not cfg.get("output"):
        raise ConfigError("output: missing; pass output=<predictions CSV>")
    output = Path(cfg.output)
    figures = gradcam_folder(cfg, output) if cfg.gradcam else None
    inputs = select_inputs(cfg)
    check_outputs(output, figures, inputs)
    model = load_for_scoring(cfg.get("model_uri"), cfg.tracking.uri, gate_overrides(cfg))
    model = at_prevalence(model, cfg.prevalence, cfg.train_prevalence)
    if figures is not None and model.explainer is None:
        raise ConfigError(f"{model.uri}: gradcam=true needs a network model; this one is "
                          f"{model.info.get('model', '?')} ({model.info.get('family', '?')} family)")  # fmt: skip
    partial = partial_path(output)
    rows = resumed_rows(partial, bool(cfg.resume), model.uri)
    done = {row["path"] for row in rows}
    todo = [f for f in inputs.files if str(f) not in done]
    pending: list[dict[str, Any]] = []
    read = functools.partial(read_ecg, limits=model.gate)  # the resource guards, before reading
    workers = reading_workers(cfg.workers, len(todo), cfg.batch_size)
    for scored in score_records(progress(todo, "scoring", enabled=inputs.collection), read, model, cfg.batch_size,
                                workers):  # fmt: skip
        pending.append(prediction_row(scored.key, scored, model))
        if figures is not None and scored.error is None:
            write_gradcam(scored, model, figures / figure_name(scored.key, inputs.root))
        if len(pending) >= cfg.batch_size:
            append_rows(pending, partial)
            rows.extend(pending)
            pending = []
    if pending:
        append_rows(pending, partial)
    rows.extend(pending)
    order = {str(f): i for i, f in enumerate(inputs.files)}
    rows = sorted(rows, key=lambda row: order.get(row["path"], len(order)))
    mark_duplicates(rows)
    table = predictions_table(rows)
    write_probabilities_csv(table, output)  # atomic: readers see the old file or the new one
    partial.unlink(missing_ok=True)
    n_bad, n_refused = int((table["status"] != "ok").sum()), int((table["status"] == "refused").sum())
    skipped = f"; {inputs.skipped} companion file(s) skipped (WFDB signal files, docs)" if inputs.skipped else ""
    refused = f", {n_refused} refused by the input gate" if n_refused else ""
    resumed = f"; {len(done)} resumed from {partial.name}" if done else ""
    print(f"scored {len(table) - n_bad} of {len(table)} records with {model.uri} "
          f"({int(table['pred_mi'].sum())} predicted MI{refused}){skipped}{resumed}: {output}")  # fmt: skip
    n_dup = int((table["duplicate_of"] != "").sum())
    if n_dup:
        print(f"{n_dup} record(s) repeat the signal of an earlier one (column duplicate_of)")
    if figures is not None:
        print(f"Grad-CAM figures: {figures}")
    if n_bad:
        why = f" ({n_refused} refused by the input gate)" if n_refused else ""
        raise DataError(f"{inputs.spec}: {n_bad} of {len(table)} files could not be scored{why} (see {output})")
    return table
