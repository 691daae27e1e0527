"""Shared fixtures: self-made WFDB / CardioSoft / PTB-XL-layout data, isolated caches and
MLflow stores, and the shared real data (skipped with a reason when absent)."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.data.sources import SyntheticSource
from ecg_mi.tracking import ensure_experiment

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ECG_MI_DATA", REPO.parent / "shared" / "data"))
SHARED_PTBXL = SHARED / "ptbxl"
SHARED_CARDIOSOFT = SHARED / "ecg_file_formats" / "ge_cardiosoft_xml" / "ptbxl_00139_cardiosoft.xml"
SHARED_FORMATS = SHARED / "ecg_file_formats"
#: Real sample files per reader format (registry name → paths under SHARED_FORMATS).
EXPORT_SAMPLES: dict[str, list[str]] = {
    "cardiosoft_xml": ["ge_cardiosoft_xml/ptbxl_00139_cardiosoft.xml"],
    "ge_muse_xml": ["ge_muse_xml/guangxi_teaching_sinus_rhythm.xml",
                    "ge_muse_xml/ml4h_muse_ecg_deidentified_1.xml"],
    "philips_sierra_xml": ["philips_sierra_xml/129DYPRG.XML",
                           "philips_sierra_xml/3191723_ZZDEMOPTONLY_1-04_orig.xml"],
    "hl7_aecg": ["hl7_aecg/Example_aECG.xml"],
    "dicom_ecg": ["dicom_ecg/guangxi_teaching_sinus_rhythm.dcm",
                  "dicom_ecg/pydicom_waveform_ecg.dcm"],
    "scp_ecg": ["scp_ecg/ECG_20070321_110542_ANON000004.SCP",
                "scp_ecg/ECG_20170504_163507_123456789.SCP"],
    "wfdb": ["wfdb_ptbdb/s0010_re.hea"],
}  # fmt: skip
#: The machine's temporary folder, before :func:`isolated_env` points each test at its own: for
#: what another account must reach (root's pytest folders are mode 0700).
SYSTEM_TEMP = tempfile.gettempdir()
PTBXL_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


#: What may appear in the checkout while the tests run (pytest's own cache).
_REPO_WRITES_ALLOWED = {".pytest_cache"}


@pytest.fixture(scope="session", autouse=True)
def repo_left_as_found() -> Iterator[None]:
    """Fail the session when a test wrote into the checkout (e.g. MLflow's default ``./mlruns``
    artifact root, Hydra's ``outputs/``): tests write only into their temporary folders."""
    before = {p.name for p in REPO.iterdir()}
    yield
    new = sorted({p.name for p in REPO.iterdir()} - before - _REPO_WRITES_ALLOWED)
    assert not new, f"tests wrote {new} into the checkout {REPO}; write under tmp_path"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own cache dir, SQLite MLflow store and temporary-file folder (what
    MLflow, Lightning or a child process put in ``$TMPDIR`` stays in the test's folder); no
    progress bars."""
    root = tmp_path_factory.mktemp("ecg_mi_env")
    (root / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(root / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
    monkeypatch.setenv("ECG_MI_CACHE", str(root / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("ECG_MI_NO_PROGRESS", "1")
    return root


@pytest.fixture
def shared_ptbxl() -> Path:
    if not (SHARED_PTBXL / "ptbxl_database.csv").is_file():
        pytest.skip(f"shared PTB-XL subset not found at {SHARED_PTBXL}")
    return SHARED_PTBXL


@pytest.fixture
def shared_cardiosoft() -> Path:
    if not SHARED_CARDIOSOFT.is_file():
        pytest.skip(f"shared CardioSoft sample not found at {SHARED_CARDIOSOFT}")
    return SHARED_CARDIOSOFT


@pytest.fixture
def shared_formats() -> Path:
    """The shared folder of real export samples (one subfolder per format)."""
    if not SHARED_FORMATS.is_dir():
        pytest.skip(f"shared ECG export samples not found at {SHARED_FORMATS}")
    return SHARED_FORMATS


@pytest.fixture
def export_sample(shared_formats) -> Callable[[str, int], Path]:
    """``export_sample(fmt, i=0)``: the i-th real sample of a registry format (skip if absent)."""

    def get(fmt: str, index: int = 0) -> Path:
        path = shared_formats / EXPORT_SAMPLES[fmt][index]
        if not path.is_file():
            pytest.skip(f"shared {fmt} sample not found at {path}")
        return path

    return get


def make_signal(n: int = 1000, fs: float = 100.0, seed: int = 0) -> np.ndarray:
    """A smooth random-ish ``[12, n]`` mV signal (float64) for writing test files."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    freqs = rng.uniform(0.5, 3, size=(12, 1))
    return np.sin(2 * np.pi * freqs * t) * rng.uniform(0.2, 1.5, size=(12, 1))


def toy_features(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A feature matrix (20 columns, 2 informative, 5 % NaN), 0/1 labels, patient groups of 2."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    X = rng.normal(size=(n, 20)) + y[:, None] * np.r_[1.5, 1.0, np.zeros(18)]
    X[rng.random(X.shape) < 0.05] = np.nan  # features that could not be measured
    return X.astype(np.float32), y, np.arange(n) // 2


class AuxSyntheticSource(SyntheticSource):
    """The synthetic source with one auxiliary target column, ``aux_FEMALE`` (sex = 1), as
    PTB-XL offers ``aux_<diagnostic class>``: for tests of ``model.aux_targets``."""

    def index(self) -> pd.DataFrame:
        return super().index().assign(aux_FEMALE=lambda t: (t["sex"] == 1).astype(int))


@pytest.fixture(scope="session")
def synthetic_windows() -> tuple[np.ndarray, float]:
    """Six seeded synthetic 10 s ECGs ``[6, 12, 1000]`` float32 mV at 100 Hz (half with MI), and the rate."""
    from ecg_mi.data.sources.synthetic import heart_for, synthesize_ecg

    rng = np.random.default_rng(0)
    hearts = [heart_for(pd.Series({"heart_seed": i, "label": i % 2})) for i in range(6)]
    return np.stack([synthesize_ecg(h, rng, 100.0) for h in hearts]).astype(np.float32), 100.0


@pytest.fixture
def write_wfdb() -> Callable[..., Path]:
    """``write_wfdb(dir, name, signal=[12,L], fs=100, leads=PTBXL_LEADS, units='mV', gain=1000)``:
    a format-16 WFDB record (``gain`` ADC units per physical unit)."""

    def write(directory: Path, name: str, signal: np.ndarray | None = None, fs: float = 100.0,
              leads: list[str] | None = None, units: str = "mV", gain: float = 1000.0) -> Path:  # fmt: skip
        signal = make_signal(fs=fs) if signal is None else signal
        leads = leads or PTBXL_LEADS[: signal.shape[0]]
        directory.mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(name, fs=fs, units=[units] * len(leads), sig_name=leads, p_signal=signal.T,
                    fmt=["16"] * len(leads), adc_gain=[gain] * len(leads), baseline=[0] * len(leads),
                    write_dir=str(directory))  # fmt: skip
        return directory / name

    return write


def restamp_checksums(record: Path) -> None:
    """Rewrite the checksum field of every signal line of ``<record>.hea`` (format 16, one
    ``.dat``) from the samples its ``.dat`` holds now: a test that edits samples on purpose
    (a NaN sentinel, a flat lead) gets past the input gate's checksum check."""
    header = Path(f"{record}.hea")
    lines = header.read_text().splitlines()
    n_sig = int(lines[0].split()[1])
    digital = np.fromfile(Path(f"{record}.dat"), dtype="<i2").reshape(-1, n_sig)
    sums = digital.sum(axis=0, dtype=np.int64) % 65536
    for k in range(n_sig):
        fields = lines[1 + k].split()
        fields[6] = str(int(sums[k]) - 65536 if sums[k] > 32767 else int(sums[k]))
        lines[1 + k] = " ".join(fields)
    header.write_text("\n".join(lines) + "\n")


def cardiosoft_xml(signal_uv: np.ndarray | None = None, fs: int = 500, resolution: float = 5.0,
                   leads: list[str] | None = None, prolog: str = "") -> str:  # fmt: skip
    """A CardioSoft-shaped XML document; ``signal_uv`` ``[n_leads, L]`` in µV."""
    if signal_uv is None:
        signal_uv = make_signal(n=5000, fs=fs) * 1000
    leads = leads or list(STANDARD_LEADS[: signal_uv.shape[0]])
    counts = np.round(signal_uv / resolution).astype(int)
    waves = "\n".join(
        f'    <WaveformData lead="{lead}">{",".join(map(str, row))}</WaveformData>'
        for lead, row in zip(leads, counts, strict=True)
    )
    return (
        f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n{prolog}<CardiologyXML>\n  <StripData>\n'
        f"    <NumberOfLeads>{len(leads)}</NumberOfLeads>\n"
        f'    <SampleRate units="Hz">{fs}</SampleRate>\n'
        f"    <ChannelSampleCountTotal>{counts.shape[1]}</ChannelSampleCountTotal>\n"
        f'    <Resolution units="uVperLsb">{resolution:g}</Resolution>\n{waves}\n  </StripData>\n</CardiologyXML>\n'
    )


@pytest.fixture
def tiny_ptbxl(tmp_path, write_wfdb) -> Callable[..., Path]:
    """``tiny_ptbxl(n_records=60, n_mi=20, with_500=True)``: a PTB-XL-layout folder.

    Patients 0..n/2 have two ECGs each (so grouping matters); MI records carry an 'IMI'
    code, controls 'NORM' (every third) or 'LVH'.
    """

    def build(
        n_records: int = 60, n_mi: int = 20, with_500: bool = True, root: Path | None = None
    ) -> Path:
        root = root or tmp_path / "ptbxl"
        rows = []
        for i in range(1, n_records + 1):
            mi = i <= n_mi
            codes = (
                "{'IMI': 100.0, 'SR': 0.0}"
                if mi
                else ("{'NORM': 100.0}" if i % 3 else "{'LVH': 50.0}")
            )
            group = f"{(i // 1000) * 1000:05d}"
            lr, hr = f"records100/{group}/{i:05d}_lr", f"records500/{group}/{i:05d}_hr"
            write_wfdb(
                root / "records100" / group,
                f"{i:05d}_lr",
                make_signal(1000, 100, seed=i) + 0.3 * mi,
            )
            if with_500:
                write_wfdb(
                    root / "records500" / group,
                    f"{i:05d}_hr",
                    make_signal(5000, 500, seed=i) + 0.3 * mi,
                    fs=500,
                )
            rows.append({"ecg_id": i, "patient_id": float(1000 + (i + 1) // 2), "age": 40.0 + i % 40,
                         "sex": i % 2, "scp_codes": codes, "filename_lr": lr, "filename_hr": hr})  # fmt: skip
        pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
        pd.DataFrame(
            {"diagnostic_class": ["MI", "NORM", "HYP", None]},
            index=pd.Index(["IMI", "NORM", "LVH", "SR"], name=""),
        ).to_csv(root / "scp_statements.csv")
        return root

    return build


TINY_TRAINING = [
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "data.batch_size=32",
    "explain.n_examples=2",
    "explain.permutation_repeats=1",
]
TINY_RUN = ["data.source.n_records=120", *TINY_TRAINING]  # tiny training on small synthetic data


@functools.cache
def load_script(path: str) -> types.ModuleType:
    """A script of the repository (``train.py``, ``benchmarks/ablation.py``) as a module: the
    scripts are no package. Registered in ``sys.modules`` (dataclasses look their module up
    there) under ``script_<stem>``, so it cannot shadow an installed module."""
    name = f"script_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def model_config(name: str, **params: object) -> dict:
    """A model config as ``conf/model/<name>.yaml`` gives it (what ``data.teacher.estimator`` holds)."""
    return {"_target_": "ecg_mi.models.create_model", "name": name, "seed": 0, "params": params}


def compose_config(config_name: str, *overrides: str):
    """The entry config ``config_name`` (conf/<name>.yaml) composed as Hydra would."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


@pytest.fixture
def compose_train() -> Callable[..., object]:
    """``compose_train(*overrides)``: the train config as ``train.py`` would see it (tiny run)."""
    return lambda *overrides: compose_config("train", *TINY_RUN, *overrides)


@pytest.fixture
def run_cli(tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli("train.py", *args)``: run an entry script in a subprocess from the repo root;
    its Hydra run folder (log, config copy) in the test's folder unless ``args`` name one."""

    def run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        if not any(a.startswith("hydra.run.dir=") for a in args):
            args = (*args, f"hydra.run.dir={tmp_path / 'hydra_run'}")
        return subprocess.run([sys.executable, str(REPO / script), *args], cwd=REPO, capture_output=True,
                              text=True, timeout=timeout, env=os.environ.copy())  # fmt: skip

    return run



def standin_python_model(explain: bool = True):
    """A stand-in for a packaged ecg-mi model: P(MI) = sigmoid(4 · mean signal in mV) (MI
    records of ``tiny_ptbxl`` carry +0.3 mV); with ``explain``, ``gradcam`` = the |signal|
    averaged over leads and scaled to [0, 1] (a network's package). Defined in a function so
    cloudpickle stores the class by value: a subprocess loads it without this test tree."""
    import mlflow

    class StandIn(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            import os
            import time

            time.sleep(float(os.environ.get("ECG_MI_STANDIN_DELAY_S", "0")))  # to stop a run mid-way
            x = np.asarray(model_input, dtype=np.float32)
            return 1.0 / (1.0 + np.exp(-4.0 * x.mean(axis=(1, 2))))

    class StandInNetwork(StandIn):
        def gradcam(self, x):
            cam = np.abs(np.asarray(x, dtype=np.float32)).mean(axis=1)
            return cam / np.maximum(cam.max(axis=1, keepdims=True), 1e-6)

    return StandInNetwork() if explain else StandIn()


def standin_info(sample_rate: float = 100.0, threshold: float = 0.5, family: str = "network") -> dict:
    """The ``ecg_mi`` metadata a packaged model carries (the packaging contract)."""
    return {"sample_rate": sample_rate, "window_s": 10.0, "leads": list(STANDARD_LEADS),
            "threshold": threshold, "model": "standin" if family == "network" else "standin_rf",
            "family": family, "n_models": 1}  # fmt: skip


@pytest.fixture
def standin_model(tmp_path) -> Callable[..., str]:
    """``standin_model(sample_rate=100, threshold=0.5, family='network', run=False)``: the URI
    of a stand-in pyfunc model with ecg-mi metadata — a local folder, or with ``run=True``
    ``runs:/<id>/model`` logged in the test's MLflow store."""

    def make(sample_rate: float = 100.0, threshold: float = 0.5, family: str = "network",
             run: bool = False) -> str:  # fmt: skip
        import mlflow

        kwargs = {"python_model": standin_python_model(explain=family == "network"),
                  "pip_requirements": ["numpy"],
                  "metadata": {"ecg_mi": standin_info(sample_rate, threshold, family)}}  # fmt: skip
        if run:
            mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
            # Named, so no experiment id cached by an earlier test's store is reused.
            mlflow.set_experiment(experiment_id=ensure_experiment("standin", os.environ["MLFLOW_TRACKING_URI"]))
            with mlflow.start_run() as active:
                mlflow.pyfunc.log_model(name="model", **kwargs)
            return f"runs:/{active.info.run_id}/model"
        path = tmp_path / f"standin-{family}-{sample_rate:g}-{threshold:g}"
        mlflow.pyfunc.save_model(str(path), **kwargs)
        return str(path)

    return make


#: Browsers looked for on PATH, Debian's first (.ci/run installs Debian's `chromium`).
CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def system_chromium() -> str | None:
    """The path of an installed Chromium, or None."""
    return next((path for path in map(shutil.which, CHROMIUMS) if path), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system Chromium's path; skips, naming why, without Playwright or a Chromium (the
    browser tests never download a browser of their own)."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
    path = system_chromium()
    if path is None:
        pytest.skip(f"no system Chromium on PATH (looked for {', '.join(CHROMIUMS)}; apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def browser(chromium) -> Iterator[object]:
    """A headless system Chromium driven by Playwright, shared by the browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()
