"""What a researcher sees in the MLflow UI (issue 38), in a real browser: Playwright drives the
system Chromium against a real `mlflow ui` on loopback, over a small store made as a user would
(synthetic data, a `train.py -m` sweep of 2 models × 2 folds, 1 epoch, evaluate.py's report, a
registered fold ensemble).
Screenshots land in the test's tmp folder (the path is printed; pytest -s shows it).

Skipped, naming why, where Playwright or a Chromium is not installed (.ci/run installs Debian's
`chromium`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient
from test_server import MLFLOW, _answers, _stop_group, _wait_until, free_port

from conftest import REPO, TINY_RUN, compose_config

# In the default suite where a browser is installed (issue 36): ≈ 2 min on 2 cores for four tiny
# trainings, a report, a registration and the browser.

EXPERIMENT = "ui"
MODELS = ("resnet", "logistic_regression")
REGISTERED = "ecg-mi-ui"
#: The sweep's parent run: named after what it varies (ecg_mi.sweep).
SWEEP = f"sweep model={','.join(MODELS)} fold=0,1"
FOLD_RUNS = [f"{m}-fold{f}" for m in MODELS for f in (0, 1)]


def ui_url(port: int) -> str:
    """The URL `make ui` prints (the Makefile's ``UI_URL``) for ``port``."""
    [line] = [ln for ln in (REPO / "Makefile").read_text().splitlines() if ln.startswith("UI_URL")]
    return line.split("=", 1)[1].strip().replace("$(UI_PORT)", str(port))


@pytest.fixture(scope="module")
def store(chromium, tmp_path_factory) -> SimpleNamespace:
    """A SQLite store with the sweep (`train.py -m`: its parent run, the runs nested under it),
    evaluate.py's summary run and ``REGISTERED`` version 1 (resnet's folds)."""
    from ecg_mi.evaluate.main import run as evaluate

    root = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("ECG_MI_CACHE", str(root / "cache"))
        sweep = subprocess.run(
            [sys.executable, str(REPO / "train.py"), "-m", f"model={','.join(MODELS)}", "fold=0,1", *TINY_RUN,
             "trainer.max_epochs=1", "data.n_folds=2", "explain.enabled=false", f"experiment_name={EXPERIMENT}",
             f"hydra.sweep.dir={root / 'sweep'}"],
            cwd=REPO, capture_output=True, text=True, timeout=900, env=os.environ.copy(),
        )  # fmt: skip
        assert sweep.returncode == 0, sweep.stderr[-2000:]
        common = [f"experiment_name={EXPERIMENT}", "n_bootstrap=100", f"tracking.uri={uri}"]
        evaluate(compose_config("evaluate", *common, f"output_dir={root / 'report'}"))
        evaluate(compose_config("evaluate", *common, f"register={REGISTERED}", "model_name=resnet"))
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    return SimpleNamespace(uri=uri, root=root, client=client, experiment=experiment, runs=runs)


@pytest.fixture(scope="module")
def ui(store) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of `mlflow ui` over the store (as `make ui` starts it)."""
    port = free_port()
    log = store.root / "mlflow-ui.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(MLFLOW), "ui", "--backend-store-uri", store.uri, "--host", "127.0.0.1", "--port", str(port)],
            cwd=store.root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health"), "mlflow ui", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop_group(process)


@pytest.fixture
def page(browser, tmp_path) -> Iterator[object]:
    """A fresh browser page (no remembered UI settings) whose screenshot is saved at teardown."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    yield opened
    shot = tmp_path / "screenshot.png"
    opened.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    context.close()


def _open(page, url: str, expected: str) -> None:
    """Go to ``url`` and wait until ``expected`` shows (the UI renders after its API calls)."""
    page.goto(url)
    page.get_by_text(expected, exact=False).first.wait_for()


def _table(page, header: str) -> dict[str, list[str]]:
    """The rows of the table whose header row holds ``header``: first cell → the other cells."""
    rows = page.get_by_role("table").filter(has_text=header).first.get_by_role("row").all()
    cells = [row.inner_text().split("\n") for row in rows[1:]]
    assert len({c[0] for c in cells}) == len(cells), "a name shown twice"
    return {c[0]: c[1:] for c in cells}


def _registry_link(page) -> bool:
    """Whether the sidebar offers the Model registry (the model-training view; GenAI's has none)."""
    return page.get_by_role("link", name="Model registry").count() > 0


def _in_ml(ui: str, path: str) -> str:
    return f"{ui}/#/{path}?workflowType=machine_learning"


def test_make_ui_url_opens_the_model_training_view(ui, page):
    page.goto(ui_url(int(ui.rsplit(":", 1)[1])))  # in a browser that remembers no choice
    page.get_by_text(EXPERIMENT, exact=True).first.wait_for()
    assert _registry_link(page)


def test_one_click_on_model_training_keeps_that_view(ui, store, page):
    page.goto(f"{ui}/#/experiments")
    page.get_by_text("Model training", exact=True).first.click()  # as the README and `make ui` say
    page.get_by_role("link", name="Model registry").wait_for()
    _open(page, f"{ui}/#/experiments/{store.experiment.experiment_id}/models", "resnet-fold0")
    page.get_by_role("link", name="resnet-fold0").first.click()
    page.get_by_text("Metrics (").first.wait_for()
    assert _registry_link(page)


def test_logged_models_are_named_after_their_runs(ui, store, page):
    _open(page, _in_ml(ui, f"experiments/{store.experiment.experiment_id}/models"), "resnet-fold0")
    names = set(page.get_by_role("link").all_inner_texts())
    assert {f"{m}-fold{f}" for m in MODELS for f in (0, 1)} | {"resnet-ensemble"} <= names
    assert "model" not in names


@pytest.mark.parametrize("run_name", ["resnet-fold0", "logistic_regression-fold0"])
def test_run_page_lists_each_param_once_with_the_value_used(ui, store, page, run_name):
    run = store.runs[run_name]
    _open(page, _in_ml(ui, f"experiments/{store.experiment.experiment_id}/runs/{run.info.run_id}"), "Parameters (")
    params = _table(page, "Parameter")
    assert set(params) == set(run.data.params)  # each once (a repeated name fails in _table)
    assert not [k for k in params if k.endswith("_target_") or k.startswith("model.augment") or k == "fold_hash"]
    assert params["tracking.uri"] == [store.uri]
    if run_name.startswith("resnet"):
        assert params["trainer.max_epochs"] == ["1"] and int(params["n_params"][0]) > 0
    else:
        assert not [k for k in params if k.startswith(("trainer.", "callbacks.", "augment.")) or k == "n_params"]


def test_logged_model_shows_the_selected_checkpoints_metrics(ui, store, page):
    run = store.runs["resnet-fold0"]
    [model] = store.client.search_logged_models([store.experiment.experiment_id],
                                                filter_string=f"source_run_id = '{run.info.run_id}'")  # fmt: skip
    _open(page, _in_ml(ui, f"experiments/{store.experiment.experiment_id}/models/{model.model_id}"), "test_auc")
    metrics = _table(page, "Source run")
    for key in ("val_auc", "test_auc", "test_f1"):
        assert float(metrics[key][-1]) == pytest.approx(run.data.metrics[key]), key


def test_summary_run_shows_table2_as_metrics(ui, store, page):
    run = store.runs["summary"]
    _open(page, _in_ml(ui, f"experiments/{store.experiment.experiment_id}/runs/{run.info.run_id}"), "Metrics (")
    metrics = _table(page, "Metric")
    for model in MODELS:
        for column in ("pooled_auc", "pooled_auc_low", "pooled_auc_high", "auc_mean", "f1_mean", "val_auc_mean"):
            assert 0 <= float(metrics[f"{model}/{column}"][0]) <= 1


def test_model_version_page_shows_its_card_and_tags(ui, store, page):
    _open(page, _in_ml(ui, f"models/{REGISTERED}/versions/1"), "Intended use")
    text = page.inner_text("body")
    for heading in ("Model card", "Data source and cohort", "Outcome", "Predictors", "Performance", "Calibration",
                    "Subgroups", "Limitations"):  # fmt: skip
        assert heading in text
    tags = store.client.get_model_version(REGISTERED, "1").tags
    assert {"data_hash", "commit", "model", "representation", "val_auc", "test_auc", "calibration_ece"} <= set(tags)
    for key, value in tags.items():  # shown on the page
        assert key in text and value in text


def test_sweep_parent_run_groups_its_runs_in_the_runs_table(ui, store, page):
    _open(page, _in_ml(ui, f"experiments/{store.experiment.experiment_id}/runs"), SWEEP)
    table = page.get_by_role("grid").first
    assert not [name for name in FOLD_RUNS if name in table.inner_text()]  # folded under the parent
    page.get_by_role("row").filter(has_text=SWEEP).first.get_by_role("button").first.click()  # its expander
    for name in FOLD_RUNS:
        page.get_by_text(name, exact=True).first.wait_for()
    parent = store.runs[SWEEP].info.run_id
    assert {store.runs[name].data.tags["mlflow.parentRunId"] for name in FOLD_RUNS} == {parent}


def test_sweep_parent_run_shows_its_overrides_and_summary(ui, store, page):
    run = store.runs[SWEEP]
    _open(page, _in_ml(ui, f"experiments/{store.experiment.experiment_id}/runs/{run.info.run_id}"), "Parameters (")
    params = _table(page, "Parameter")
    assert params["model"] == [",".join(MODELS)] and params["fold"] == ["0,1"]
    _open(page, f"{ui}/#/experiments/{store.experiment.experiment_id}/runs/{run.info.run_id}/artifacts", "sweep_summary.md")
    for name in ("sweep_summary.csv", "sweep_auc.png", "multirun.yaml"):
        assert page.get_by_text(name, exact=True).count() > 0


def test_compare_view_shows_the_sweeps_runs_side_by_side(ui, store, page):
    ids = [store.runs[name].info.run_id for name in FOLD_RUNS]
    query = f"runs={json.dumps(ids)}&experiments={json.dumps([store.experiment.experiment_id])}"
    _open(page, f"{ui}/#/compare-runs?{query}", f"Comparing {len(ids)} Runs")
    page.get_by_text("Run details").first.wait_for()
    text = page.locator("body").inner_text()
    assert all(name in text for name in FOLD_RUNS)
    # The parallel-coordinates plot offers the flattened config's keys (params) beside the metrics.
    page.get_by_text("augment.crop", exact=True).first.wait_for()
