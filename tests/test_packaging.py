"""The packaged MLflow Model of a run (ecg_mi.packaging): self-contained prediction in a fresh
process, pins, signature, metadata contract, Grad-CAM, the fold ensemble, its registration
under an alias, and `mlflow models serve` answering with the same P(MI)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from test_server import MLFLOW, _answers, _wait_until, free_port

from conftest import TINY_RUN, compose_config
from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.errors import DataError, EcgMiError, InputError
from ecg_mi.evaluate.runs import collect
from ecg_mi.packaging import CONTRACT_KEYS, model_info
from ecg_mi.tracking import ensure_experiment, logged_model_uri

EXPERIMENT = "packaging"
N_RECORDS = 4  # test records predicted in the fresh process
# Two folds of resnet (an ensemble), one of resnet_beat, resnet_hybrid and XGBoost: tiny, synthetic, 100 Hz.
TRAIN = [*TINY_RUN, f"experiment_name={EXPERIMENT}", "data.n_folds=2", "explain.enabled=false"]
RUNS = {
    # Forced calibrators, so the packaged models must apply a non-trivial map.
    ("resnet", 0): ["model=resnet", "model.channels=[8,16,16]", "fold=0", "calibration=platt"],
    ("resnet", 1): ["model=resnet", "model.channels=[8,16,16]", "fold=1"],
    # A network on median beats: the package turns each 10 s window into its beat.
    ("resnet_beat", 0): ["model=resnet_beat", "model.channels=[8,16,16]", "fold=0"],
    # A hybrid: the package also computes each window's 408 features and scales them as in training.
    ("resnet_hybrid", 0): ["model=resnet_hybrid", "model.channels=[8,16,16]", "model.clinical_width=8", "fold=0"],
    ("xgboost", 0): ["model=xgboost", "model.search=none", "model.n_jobs=1", "fold=0",
                     "calibration=isotonic"],
}
PREDICT_SCRIPT = """
import sys, numpy as np, mlflow
model = mlflow.pyfunc.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))
"""


def _test_signals(cfg, record_ids: list[str]) -> np.ndarray:
    """The cached float32 mV signals ``[n, 12, L]`` of ``record_ids`` (as the run read them)."""
    from ecg_mi.datamodule import FoldDataModule
    from ecg_mi.learners import fold_settings

    data = FoldDataModule(**fold_settings(cfg))  # the window: the signal itself
    data.setup()
    return np.asarray(data.store.signals[data.store.rows(record_ids)], dtype=np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> SimpleNamespace:
    """One store with the three fold runs of :data:`RUNS` and, per run, a few of its test
    records' signals and logged probabilities."""
    from ecg_mi.train import run

    root = tmp_path_factory.mktemp("packaging")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ECG_MI_CACHE", str(root / "cache"))
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("ECG_MI_NO_PROGRESS", "1")
        runs, records = {}, {}
        for key, overrides in RUNS.items():
            cfg = compose_config("train", *TRAIN, *overrides)
            metrics = run(cfg)
            client = MlflowClient(uri)
            exp = client.get_experiment_by_name(EXPERIMENT)
            [found] = client.search_runs(
                [exp.experiment_id], f"tags.model = '{key[0]}' and params.fold = '{key[1]}'"
            )
            local = mlflow.artifacts.download_artifacts(
                run_id=found.info.run_id, artifact_path="predictions.csv", tracking_uri=uri,
                dst_path=str(root / found.info.run_id),
            )  # fmt: skip
            table = pd.read_csv(local, dtype={"record_id": str}).head(N_RECORDS)
            runs[key] = SimpleNamespace(
                id=found.info.run_id, metrics=metrics, probs=table["prob_calibrated"].to_numpy(),
                raw=table["prob"].to_numpy(), method=found.data.tags["calibration_method"],
            )  # fmt: skip
            records[key] = _test_signals(cfg, table["record_id"].tolist())
    return SimpleNamespace(uri=uri, root=root, runs=runs, records=records)


@pytest.fixture
def store(trained, monkeypatch) -> SimpleNamespace:
    """``trained``'s store as this test's MLflow store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(trained.uri)
    return trained


@pytest.fixture(scope="module")
def registered(trained, tmp_path_factory) -> str:
    """resnet's two-fold ensemble registered as ``ecg-mi@champion`` (its models:/ URI), the
    store named by ``tracking.uri`` while ``$MLFLOW_TRACKING_URI`` names another one."""
    from ecg_mi.evaluate.main import run

    elsewhere = tmp_path_factory.mktemp("other_store") / "mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere}")
        cfg = compose_config("evaluate", f"experiment_name={EXPERIMENT}", "register=ecg-mi",
                             "model_name=resnet", "alias=champion", f"tracking.uri={trained.uri}")  # fmt: skip
        run(cfg)
    return "models:/ecg-mi@champion"


def _load(run_id: str) -> mlflow.pyfunc.PyFuncModel:
    return mlflow.pyfunc.load_model(logged_model_uri(run_id, mlflow.get_tracking_uri()))


def _predict_in_fresh_process(
    uri: str, model_uri: str, x: np.ndarray, tmp_path: Path
) -> np.ndarray:
    """P(MI) of ``x`` from ``model_uri`` loaded by a new interpreter with an empty cache and
    no data root."""
    np.save(tmp_path / "x.npy", x)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "ECG_MI_CACHE": str(tmp_path / "empty-cache"),
        "ECG_MI_DATA": str(tmp_path / "no-data"),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "0",
    }
    command = [sys.executable, "-c", PREDICT_SCRIPT, model_uri, str(tmp_path / "x.npy"),
               str(tmp_path / "p.npy")]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "empty-cache").exists()  # nothing was read from or built in a cache
    return np.load(tmp_path / "p.npy")


@pytest.mark.parametrize("model", ["resnet", "resnet_beat", "resnet_hybrid", "xgboost"])
def test_packaged_model_in_a_fresh_process_reproduces_the_runs_test_predictions(
    store, model, tmp_path
):
    logged = store.runs[(model, 0)]
    probs = _predict_in_fresh_process(
        store.uri, logged_model_uri(logged.id, mlflow.get_tracking_uri()), store.records[(model, 0)], tmp_path
    )
    np.testing.assert_allclose(probs, logged.probs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["resnet", "xgboost"])
def test_packaged_model_records_its_calibration_and_a_threshold_on_its_scale(store, model):
    from ecg_mi.calibration import apply_calibration

    logged = store.runs[(model, 0)]
    info = model_info(_load(logged.id))
    assert info["calibration"]["method"] == logged.method
    run = MlflowClient(store.uri).get_run(logged.id)
    assert info["threshold_raw"] == pytest.approx(run.data.metrics["test_threshold"])
    assert info["threshold"] == pytest.approx(run.data.metrics["test_threshold_calibrated"])
    mapped = apply_calibration(info["calibration"], logged.raw)
    np.testing.assert_allclose(mapped, logged.probs, rtol=1e-5, atol=1e-6)


def test_requirements_pin_the_cpu_torch_and_exact_versions(store, tmp_path):
    local = mlflow.artifacts.download_artifacts(
        logged_model_uri(store.runs[('resnet', 0)].id, mlflow.get_tracking_uri()), dst_path=str(tmp_path)
    )
    lines = [ln for ln in Path(local, "requirements.txt").read_text().splitlines() if ln.strip()]
    assert "torch==2.13.0" in lines
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    packages = [ln for ln in lines if not ln.startswith("-")]
    assert all("==" in ln for ln in packages), packages  # every requirement pinned exactly
    assert not [ln for ln in packages if ln.startswith("nvidia") or "+cu" in ln]  # no CUDA build


def test_signature_and_input_example_are_logged(store, tmp_path):
    local = mlflow.artifacts.download_artifacts(
        logged_model_uri(store.runs[('xgboost', 0)].id, mlflow.get_tracking_uri()), dst_path=str(tmp_path)
    )
    logged = mlflow.models.Model.load(local)
    [spec] = logged.get_input_schema().inputs
    assert spec.type == np.dtype(np.float32) and spec.shape == (-1, 12, 1000)  # 10 s at 100 Hz
    assert logged.get_output_schema().inputs[0].shape == (-1,)
    assert np.asarray(logged.load_input_example(local)).shape == (1, 12, 1000)


def test_model_info_holds_the_predict_contract(store):
    logged = store.runs[("resnet", 1)]
    info = model_info(_load(logged.id))
    assert set(CONTRACT_KEYS) <= set(info)
    assert (
        info["sample_rate"] == 100
        and info["window_s"] == 10.0
        and info["leads"] == list(STANDARD_LEADS)
    )
    assert info["model"] == "resnet" and info["family"] == "network" and info["n_models"] == 1
    assert info["threshold_raw"] == pytest.approx(logged.metrics["test_threshold"])  # before calibration


@pytest.mark.parametrize("model", ["resnet", "resnet_beat", "resnet_hybrid"])
def test_network_gradcam_maps_each_record_over_time(store, model):
    package = _load(store.runs[(model, 0)].id).unwrap_python_model()
    maps = package.gradcam(store.records[(model, 0)][:2])
    assert (
        maps.shape == (2, 1000) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    )


def test_median_beat_network_warns_about_windows_without_beats(store, caplog):
    x = store.records[("resnet_beat", 0)][:2].copy()
    x[1] = np.sin(2 * np.pi * 0.3 * np.arange(x.shape[-1]) / 100.0)  # a slow 1 mV wave: no beats
    with caplog.at_level("WARNING", logger="ecg_mi"):
        probs = _load(store.runs[("resnet_beat", 0)].id).predict(x)
    assert probs.shape == (2,) and np.isfinite(probs).all()
    assert "1 of 2 windows have fewer than 2 usable beats" in caplog.text


def test_packaged_model_refuses_what_its_input_gate_refuses(store):
    """A served request meets the gate: a 400-class MlflowException naming the window and check."""
    from mlflow.exceptions import MlflowException

    x = store.records[("resnet", 0)][:2].copy()
    x[1, 7] *= 1000  # lead V2 in µV read as mV
    with pytest.raises(MlflowException, match=r"refused by the input gate: amplitude: window 1: lead V2 robust range") as caught:
        _load(store.runs[("resnet", 0)].id).predict(x)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE" and caught.value.get_http_status_code() == 400


def test_median_beat_network_says_so_in_its_metadata(store):
    assert model_info(_load(store.runs[("resnet_beat", 0)].id))["representation"] == "median_beat"
    assert model_info(_load(store.runs[("resnet", 0)].id))["representation"] == "window"


def test_hybrid_network_carries_its_feature_scaling_and_version(store):
    from ecg_mi.features import FEATURE_VERSION

    package = _load(store.runs[("resnet_hybrid", 0)].id).unwrap_python_model()
    assert package.info["representation"] == "median_beat+features" and package.info["feature_version"] == FEATURE_VERSION
    [member] = package.members
    assert len(member.representation["feature_center"]) == len(member.representation["feature_scale"]) == 408


def test_hybrid_network_of_another_feature_version_is_refused(store):
    package = _load(store.runs[("resnet_hybrid", 0)].id).unwrap_python_model()
    package.info = {**package.info, "feature_version": "0"}
    with pytest.raises(EcgMiError, match="feature version 0"):
        package.check_compatible()


def test_classical_model_has_no_gradcam(store):
    model = _load(store.runs[("xgboost", 0)].id).unwrap_python_model()
    with pytest.raises(EcgMiError, match="no Grad-CAM"):
        model.gradcam(store.records[("xgboost", 0)][:1])


def test_input_of_another_length_is_refused(store):
    model = _load(store.runs[("resnet", 0)].id).unwrap_python_model()
    with pytest.raises(InputError, match=r"expected \[N, 12, 1000\]"):
        model.predict(None, np.zeros((1, 12, 999), np.float32))


@pytest.mark.parametrize(("model", "file"), [("resnet", "weights.pt"), ("xgboost", "model.pkl")])
def test_a_run_stores_its_model_file_once_in_its_package(store, model, file):
    from urllib.parse import urlparse

    client = MlflowClient(store.uri)
    run = client.get_run(store.runs[(model, 0)].id)
    [logged] = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    stored = [path.name for location in (run.info.artifact_uri, logged.artifact_location)
              for path in Path(urlparse(location).path).rglob("*") if path.suffix in (".pt", ".pkl", ".ckpt")]  # fmt: skip
    assert sorted(stored) == sorted([file, "python_model.pkl"])  # the package's; no raw checkpoint beside it


def _as_format_1(package) -> object:
    """``package`` as ecg-mi packaged it before the representation (format 1): members with
    their ``settings``, the input kind in ``info``."""
    from ecg_mi.packaging import EcgMiPackage, Member

    old = EcgMiPackage.__new__(EcgMiPackage)
    [member] = package.members
    rep = member.representation
    settings = {"calibration": member.calibration}
    if rep["signal"]:
        settings.update(mean=rep["lead_mean"], std=rep["lead_std"])
    if rep["features"] == "scaled":
        settings.update(clinical_center=rep["feature_center"], clinical_scale=rep["feature_scale"])
    legacy = Member.__new__(Member)
    legacy.__dict__.update(artifact=member.artifact, settings=settings)
    info = {k: v for k, v in package.info.items() if k != "representation"}
    info.update(format=1, input_kind=(rep["signal"] or "signal").replace("window", "signal"))
    old.__dict__.update(info=info, members=[legacy], artifact_paths={}, _loaded=None)
    return old


@pytest.mark.parametrize("model", ["resnet_beat", "resnet_hybrid", "xgboost"])
def test_a_package_of_format_1_loads_and_scores_as_before(store, model, tmp_path):
    import cloudpickle

    local = Path(mlflow.artifacts.download_artifacts(logged_model_uri(store.runs[(model, 0)].id, mlflow.get_tracking_uri()), dst_path=str(tmp_path)))
    current = mlflow.pyfunc.load_model(str(local))
    (local / "python_model.pkl").write_bytes(cloudpickle.dumps(_as_format_1(current.unwrap_python_model())))
    converted = mlflow.pyfunc.load_model(str(local))
    x = store.records[(model, 0)]
    assert converted.unwrap_python_model().info["converted_from_format"] == 1
    np.testing.assert_array_equal(converted.predict(x), current.predict(x))


def test_an_estimator_pickled_when_its_module_was_models_classical_loads(tmp_path, monkeypatch):
    """A package stores a classical estimator as a pickle naming its class's module, which was
    ecg_mi.models.classical before it became ecg_mi.models.tabular."""
    from ecg_mi.models import tabular
    from ecg_mi.packaging import load_member, write_estimator

    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.repeat([0, 1], 20)
    fitted = tabular.LogisticRegressionModel().fit(X, y)
    with monkeypatch.context() as old:  # the class as the older release named it
        old.setitem(sys.modules, "ecg_mi.models.classical", tabular)
        old.setattr(tabular.LogisticRegressionModel, "__module__", "ecg_mi.models.classical")
        write_estimator(fitted, tmp_path / "model.pkl")
    assert b"ecg_mi.models.classical" in (tmp_path / "model.pkl").read_bytes()
    loaded = load_member("classical", tmp_path / "model.pkl")
    assert type(loaded) is tabular.LogisticRegressionModel
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))


def test_a_package_of_an_unknown_format_is_refused_naming_it(store, tmp_path):
    import yaml

    from ecg_mi.packaging import read_info

    local = Path(mlflow.artifacts.download_artifacts(logged_model_uri(store.runs[('resnet', 0)].id, mlflow.get_tracking_uri()), dst_path=str(tmp_path)))
    spec = yaml.safe_load((local / "MLmodel").read_text())
    spec["metadata"]["ecg_mi"]["format"] = 99
    (local / "MLmodel").write_text(yaml.safe_dump(spec))
    with pytest.raises(EcgMiError, match="packaged in format 99 .* reads formats 1, 2, 3: install the ecg-mi"):
        read_info(str(local))


def test_ensemble_predicts_the_mean_of_its_fold_models(store, registered):
    x = store.records[("resnet", 0)]
    folds = [_load(store.runs[("resnet", f)].id) for f in (0, 1)]
    ensemble = mlflow.pyfunc.load_model(registered)
    np.testing.assert_allclose(
        ensemble.predict(x), np.mean([m.predict(x) for m in folds], axis=0), rtol=1e-6
    )
    info = model_info(ensemble)
    assert info["n_models"] == 2 and info["folds"] == [0, 1]
    assert info["threshold"] == pytest.approx(np.mean([model_info(m)["threshold"] for m in folds]))


@pytest.mark.slow
def test_combined_models_predict_the_mean_of_their_parts_in_a_fresh_process(store, tmp_path):
    """A network and a feature model in one package (``register=… model_name=resnet+xgboost``):
    each part scores as it would alone, the package answers their mean."""
    from ecg_mi.packaging import download_package, ensemble, log_package

    keys = [("resnet", 0), ("xgboost", 0)]
    parts = [ensemble([download_package(logged_model_uri(store.runs[k].id, mlflow.get_tracking_uri()), str(tmp_path / k[0]))]) for k in keys]
    with mlflow.start_run(experiment_id=ensure_experiment("combined", mlflow.get_tracking_uri())) as active:
        log_package(ensemble(parts), "resnet-xgboost")
    x = store.records[("resnet", 0)]
    expected = np.mean([_load(store.runs[k].id).predict(x) for k in keys], axis=0)
    combined = _predict_in_fresh_process(store.uri, logged_model_uri(active.info.run_id, mlflow.get_tracking_uri()), x, tmp_path)
    np.testing.assert_allclose(combined, expected, rtol=1e-6)
    info = model_info(mlflow.pyfunc.load_model(logged_model_uri(active.info.run_id, mlflow.get_tracking_uri())))
    assert info["model"] == "resnet+xgboost" and info["family"] == "ensemble" and info["n_models"] == 2
    assert info["threshold"] == pytest.approx(np.mean([p.info["threshold"] for p in parts]))


def test_a_package_that_cannot_score_an_example_is_refused_before_it_joins_an_ensemble(store, tmp_path,
                                                                                     monkeypatch):  # fmt: skip
    from ecg_mi.models.tabular import XGBoostModel
    from ecg_mi.packaging import download_package

    def stale(self, X):
        raise AttributeError("'XGBoostModel' object has no attribute 'q_ratios'")

    monkeypatch.setattr(XGBoostModel, "predict_proba", stale)
    with pytest.raises(DataError, match="cannot score an example ECG .*AttributeError.*q_ratios"):
        download_package(logged_model_uri(store.runs[('xgboost', 0)].id, mlflow.get_tracking_uri()), str(tmp_path))


def _registered_folder(model_uri: str, where: Path) -> str:
    """The registered model ``model_uri`` downloaded into the folder ``where`` (a model taken
    out of its store)."""
    return mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(where))


def test_registered_ensemble_refers_to_its_fold_models_instead_of_copying_them(store, registered, tmp_path):
    from ecg_mi.packaging import REFERRING_FORMAT

    folder = Path(_registered_folder(registered, tmp_path))
    assert not list(folder.rglob("weights.pt"))  # no member file: the fold runs' models hold them
    info = model_info(mlflow.pyfunc.load_model(registered))
    folds = {Model.load(_registered_folder(logged_model_uri(store.runs[("resnet", f)].id, store.uri),
                                           tmp_path / str(f))).model_id for f in (0, 1)}  # fmt: skip
    assert info["format"] == REFERRING_FORMAT and {m.removeprefix("models:/") for m in info["member_models"]} == folds


def test_a_referring_ensemble_predicts_exactly_what_a_copying_one_does(store, registered):
    from ecg_mi.evaluate.register import register_ensemble

    copy = register_ensemble(EXPERIMENT, "resnet", "ecg-mi-copy", "champion", store.uri, self_contained=True)
    x = store.records[("resnet", 0)]
    referring, copying = mlflow.pyfunc.load_model(registered), mlflow.pyfunc.load_model(copy)
    assert "member_models" in model_info(referring) and "member_models" not in model_info(copying)
    np.testing.assert_array_equal(referring.predict(x), copying.predict(x))


def test_an_ensemble_of_fold_ensembles_refers_to_the_fold_models_and_predicts_as_a_copy(store, tmp_path):
    """``model_name=resnet+resnet_beat``: each model's fold ensemble, averaged; the package
    refers to the three fold models themselves, not to the intermediate fold ensembles."""
    from ecg_mi.packaging import contained, download_package, ensemble, log_package

    runs = {m: [store.runs[k].id for k in store.runs if k[0] == m] for m in ("resnet", "resnet_beat")}
    parts = [ensemble([download_package(logged_model_uri(r, store.uri), str(tmp_path / r)) for r in ids])
             for ids in runs.values()]  # fmt: skip
    referring = ensemble(parts)
    with mlflow.start_run(experiment_id=ensure_experiment("nested", store.uri)):
        uris = [log_package(p, name).model_uri for p, name in
                [(referring, "refers"), (contained(referring, str(tmp_path / "copies")), "copies")]]  # fmt: skip
    assert not referring.artifacts and len(model_info(mlflow.pyfunc.load_model(uris[0]))["member_models"]) == 3
    x = store.records[("resnet", 0)]
    np.testing.assert_array_equal(*(mlflow.pyfunc.load_model(u).predict(x) for u in uris))


def test_a_member_the_store_lacks_is_one_error_naming_it_and_the_store(store, registered, tmp_path):
    from ecg_mi.predict import load_for_scoring

    folder = _registered_folder(registered, tmp_path / "model")
    other = f"sqlite:///{tmp_path / 'other.db'}"  # a store without the fold runs' models
    with pytest.raises(InputError, match=rf"^{re.escape(folder)}: ensemble member models:/m-\w+ \(file 'model'\) cannot be "
                                         rf"loaded from the tracking store {re.escape(other)} \(.*not found"):  # fmt: skip
        load_for_scoring(folder, tracking_uri=other)


def test_cli_with_a_member_the_store_lacks_is_one_line(store, registered, tmp_path, run_cli, write_wfdb):
    folder = _registered_folder(registered, tmp_path / "model")
    write_wfdb(tmp_path / "in", "r0", store.records[("resnet", 0)][0])
    done = run_cli("predict.py", f"model_uri={folder}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out.csv'}",
                   f"tracking.uri=sqlite:///{tmp_path / 'other.db'}")  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"error: {folder}: ensemble member models:/m-" in done.stderr


@pytest.mark.slow
def test_a_self_contained_ensemble_loads_without_the_store(store, tmp_path, monkeypatch):
    from ecg_mi.evaluate.register import register_ensemble

    uri = register_ensemble(EXPERIMENT, "resnet", "ecg-mi-contained", "champion", store.uri, self_contained=True)
    x = store.records[("resnet", 0)]
    expected = mlflow.pyfunc.load_model(uri).predict(x)
    folder = _registered_folder(uri, tmp_path / "model")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'other.db'}")
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(folder).predict(x), expected)


def test_register_points_the_alias_at_an_ensemble_run(store, registered):
    client = MlflowClient(store.uri)
    version = client.get_model_version_by_alias("ecg-mi", "champion")
    source = client.get_run(version.run_id)
    assert source.data.tags["kind"] == "ensemble" and source.data.tags["model"] == "resnet"
    assert source.info.run_name == "resnet-ensemble"


def test_registered_version_carries_its_model_card_and_tags(store, registered):
    client = MlflowClient(store.uri)
    version = client.get_model_version_by_alias("ecg-mi", "champion")
    for heading in ("## Intended use", "## Data source and cohort", "## Outcome", "## Predictors", "## Performance",
                    "## Calibration", "## Subgroups", "## Limitations"):  # fmt: skip
        assert heading in version.description
    source = client.get_run(version.run_id)
    assert mlflow.artifacts.load_text(f"{source.info.artifact_uri}/model_card.md") == version.description
    assert version.tags["data_hash"] == source.data.params["data.fold_hash"] and version.tags["model"] == "resnet"
    assert version.tags["test_auc"].startswith(f"{source.data.metrics['test_auc']:.3f} [")
    assert version.tags["folds"] == "0,1" and "incomplete" not in version.tags
    assert {"commit", "representation", "val_auc", "calibration_ece"} <= set(version.tags)


def test_the_ensemble_runs_model_carries_the_cards_figures(store, registered):
    client = MlflowClient(store.uri)
    version = client.get_model_version_by_alias("ecg-mi", "champion")
    source = client.get_run(version.run_id)
    [logged] = client.search_logged_models([source.info.experiment_id],
                                           filter_string=f"source_run_id = '{version.run_id}'")  # fmt: skip
    assert logged.name == "resnet-ensemble"
    linked = {m.key: m.value for m in logged.metrics}
    assert {"val_auc", "test_auc", "test_auc_low", "test_auc_high", "test_f1"} <= set(linked)
    assert linked["test_auc_low"] <= linked["test_auc"] <= linked["test_auc_high"]


@pytest.mark.slow
def test_register_with_allow_incomplete_uses_the_folds_there_are(store):
    from ecg_mi.evaluate.register import register_ensemble

    register_ensemble(EXPERIMENT, "xgboost", "ecg-mi-partial", "champion", store.uri, allow_incomplete=True)
    version = MlflowClient(store.uri).get_model_version_by_alias("ecg-mi-partial", "champion")
    assert version.tags["folds"] == "0" and version.tags["incomplete"] == "lacks fold(s) [1] of 2"
    assert "**Incomplete**: fold(s) [1] of 2" in version.description


def test_register_chosen_registers_the_complete_model_best_on_validation(store):
    from ecg_mi.evaluate.main import run

    # resnet is the store's only model with every fold (the others have one of two)
    run(compose_config("evaluate", f"experiment_name={EXPERIMENT}", "register=ecg-mi", "model_name=chosen",
                       "allow_incomplete=true", "alias=chosen", f"tracking.uri={store.uri}"))  # fmt: skip
    client = MlflowClient(store.uri)
    source = client.get_run(client.get_model_version_by_alias("ecg-mi", "chosen").run_id)
    assert source.data.tags["kind"] == "ensemble" and source.data.tags["model"] == "resnet"


def test_report_still_reads_only_fold_runs(store, registered):
    sweep = collect(EXPERIMENT, store.uri, allow_incomplete=True)  # xgboost has one fold of two
    assert set(sweep.runs["run_id"]) == {r.id for r in store.runs.values()}


def test_register_names_a_model_absent_from_the_experiment(store):
    from ecg_mi.evaluate.register import register_ensemble

    with pytest.raises(
        DataError,
        match=r"no finished fold run of model 'cnn'; models there: \['resnet', 'resnet_beat', 'resnet_hybrid', 'xgboost'\]",
    ):
        register_ensemble(EXPERIMENT, "cnn", "ecg-mi", "champion", store.uri)


def test_register_names_missing_folds_and_how_to_proceed(store):
    from ecg_mi.evaluate.register import register_ensemble

    with pytest.raises(DataError, match=r"'xgboost' lacks finished fold run\(s\) \[1\] of 2 .*train them .*"
                                        r"python train.py -m model=xgboost fold=1 .*or pass allow_incomplete=true"):
        register_ensemble(EXPERIMENT, "xgboost", "ecg-mi", "champion", store.uri)


def test_register_of_several_models_needs_every_fold_of_each(store):
    from ecg_mi.evaluate.register import register_ensemble

    with pytest.raises(DataError, match=r"'xgboost' lacks finished fold run\(s\) \[1\] of 2"):
        register_ensemble(EXPERIMENT, "resnet+xgboost", "ecg-mi", "champion", store.uri)


def test_register_refuses_runs_without_a_packaged_model(tmp_path):
    from test_evaluate import _fake_sweep

    from ecg_mi.evaluate.register import register_ensemble

    uri = os.environ["MLFLOW_TRACKING_URI"]  # this test's own empty store
    # Fold runs with their predictions but no model (tracking.log_model=false, or before packaging).
    _fake_sweep(uri, "old", {"resnet": 1.0}, folds=(0, 1), tmp=tmp_path)
    with pytest.raises(DataError, match="no packaged ecg-mi model"):
        register_ensemble("old", "resnet", "ecg-mi", "champion", uri)


def test_cli_register_without_a_model_is_one_line(run_cli):
    done = run_cli("evaluate.py", "register=ecg-mi")
    assert done.returncode == 2 and "register=ecg-mi needs model_name=" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_served_model_answers_with_the_pyfunc_probabilities(store, registered, tmp_path):
    x = store.records[("resnet", 0)][:2]
    expected = mlflow.pyfunc.load_model(registered).predict(x)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store.uri,
        "ECG_MI_CACHE": str(tmp_path / "empty-cache"),
        "PATH": f"{MLFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # serve execs uvicorn
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(MLFLOW), "models", "serve", "-m", registered, "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_until(lambda: _answers(f"http://127.0.0.1:{port}/ping"), "mlflow models serve",
                    server, log, timeout=120)  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": x.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())["predictions"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)  # the server and its workers (own session)
        server.wait(timeout=30)
    np.testing.assert_allclose(np.asarray(answer, dtype=np.float64), expected, rtol=1e-6)



def test_an_ensemble_refuses_a_site_recalibrated_part():
    from conftest import standin_info
    from ecg_mi.packaging import EcgMiPackage, Member, Packaged, ensemble, site_calibrated_package

    part = Packaged(EcgMiPackage(standin_info(), [Member("model", "classical", {"name": "features"})]), {"model": "m"})
    recalibrated = site_calibrated_package(part, {"method": "platt", "a": 1.0, "b": -0.5}, 0.15, "site A")
    assert recalibrated.info["threshold"] < part.info["threshold"]  # moved with the map
    with pytest.raises(DataError, match="recalibrated for a site"):
        ensemble([recalibrated, part])


@pytest.mark.parametrize("model", ["resnet_beat", "resnet_hybrid", "xgboost"])
def test_what_readers_derive_per_record_scores_as_the_package_does(store, model):
    from ecg_mi.representation import Derived

    pyfunc = _load(store.runs[(model, 0)].id)
    package, x = pyfunc.unwrap_python_model(), store.records[(model, 0)]
    parts = [Derived(x[i : i + 1], 100.0) for i in range(len(x))]  # as predict's workers derive them
    for part in parts:
        part.compute(package.derived_keys)
    joined = Derived.joined(parts)
    assert set(joined._cache) == set(package.derived_keys) != set()
    np.testing.assert_array_equal(package.predict_derived(joined), pyfunc.predict(x))


def test_reading_workers_score_as_one_process(store, tmp_path, write_wfdb):
    from ecg_mi.predict import run

    for i, signal_mv in enumerate(store.records[("resnet_hybrid", 0)]):
        write_wfdb(tmp_path / "in", f"r{i}", signal_mv)
    uri = logged_model_uri(store.runs[("resnet_hybrid", 0)].id, store.uri)
    tables = [run(compose_config("predict", f"model_uri={uri}", f"input={tmp_path / 'in'}", "batch_size=1",
                                 f"output={tmp_path / f'{workers}.csv'}", f"workers={workers}"))  # fmt: skip
              for workers in (0, 2)]
    assert (tables[0]["status"] == "ok").all() and len(tables[0]) == N_RECORDS
    pd.testing.assert_frame_equal(tables[0], tables[1])
