"""The classical adapter: every model on the same route, search inside training folds."""

import os

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import open_dict
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import toy_features
from ecg_mi.errors import ConfigError
from ecg_mi.models import create_model, list_models
from ecg_mi.tracking import logged_model_uri
from ecg_mi.train import run

CLASSICAL = list_models("classical")
# Checks that cannot apply, with why (parametrize_with_checks expects them to fail).
EXPECTED_FAILED_CHECKS = {
    "svm": {
        "check_estimators_pickle": "libsvm's predict_proba cannot read the read-only memory-mapped "
        "support vectors this check unpickles; SVC(probability=True) itself fails it",
    },
}


@parametrize_with_checks(
    [create_model(name, search="none", n_jobs=1) for name in CLASSICAL]
    + [create_model("extra_trees", top_features=0.5, search="none", n_jobs=1)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(est.model_name, {}),
)
def test_classical_models_follow_the_scikit_learn_estimator_contract(estimator, check):
    check(estimator)


@pytest.mark.parametrize("name", CLASSICAL)
def test_models_handle_nan_and_rank_the_signal(name):
    X, y, groups = toy_features()
    model = create_model(name, search="none", n_jobs=1).fit(X[:160], y[:160], groups[:160])
    probs = model.predict_proba(X[160:])[:, 1]
    assert probs.shape == (80,) and np.all((probs >= 0) & (probs <= 1))
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[160:], probs) > (
        0.55 if name == "decision_tree" else 0.7
    )  # one unpruned tree is weak


def test_extra_trees_keeps_the_top_fraction_of_the_features_a_first_forest_ranks():
    X, y, groups = toy_features()  # 20 columns, the first two informative
    model = create_model("extra_trees", top_features=0.25, search="none", n_jobs=1, seed=0).fit(X, y, groups)
    kept = model.estimator_[1].get_support()
    assert kept.sum() == 5 and kept[:2].all()
    assert model.estimator_[-1].n_features_in_ == 5


@pytest.mark.parametrize("fraction", [0, 1.5, "half", True])
def test_extra_trees_feature_fraction_is_checked(fraction):
    with pytest.raises(ConfigError, match="top_features"):
        create_model("extra_trees", top_features=fraction)


def test_feature_fraction_is_refused_where_no_forest_ranks_the_features():
    with pytest.raises(ConfigError, match="for the forests"):
        create_model("logistic_regression", top_features=0.5)


def _q_wave_data(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """408 features where MI is a Q deeper than a third of the R wave in lead II, whatever
    the amplitudes: a ratio no single feature carries."""
    from ecg_mi.features import FEATURES

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 408))
    lead2 = len(FEATURES)  # lead II's first column
    r = rng.uniform(0.3, 2.0, n)
    q = -r * rng.uniform(0, 0.6, n)
    X[:, lead2 + FEATURES.index("R_amp_mean")], X[:, lead2 + FEATURES.index("Q_amp_mean")] = r, q
    return X, (-q / r > 0.3).astype(int)


def test_q_ratios_let_a_tree_split_on_the_q_to_r_ratio():
    from sklearn.metrics import roc_auc_score

    X, y = _q_wave_data()
    aucs = {}
    for q_ratios in (False, True):
        stump = create_model("decision_tree", params={"max_depth": 1}, q_ratios=q_ratios).fit(X[:200], y[:200])
        aucs[q_ratios] = roc_auc_score(y[200:], stump.predict_proba(X[200:])[:, 1])
    assert aucs[True] > 0.97 and aucs[False] < 0.85


def test_q_ratios_are_named_among_the_inputs_the_estimator_sees():
    X, y = _q_wave_data()
    model = create_model("extra_trees", params={"n_estimators": 10}, q_ratios=True, n_jobs=1).fit(X, y)
    assert model.estimator_.n_features_in_ == 432 and len(model.input_names()) == 432
    assert model.input_names()[408] == "lead1_Q_R_ratio" and model.n_features_in_ == 408


def test_a_model_pickled_before_q_ratios_existed_still_predicts():
    import pickle

    X, y, groups = toy_features()
    model = create_model("logistic_regression", n_jobs=1).fit(X, y, groups)
    del model.__dict__["q_ratios"]  # as unpickled from a version without the setting
    old = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))


def test_q_ratios_must_be_a_boolean():
    with pytest.raises(ConfigError, match="q_ratios"):
        create_model("extra_trees", q_ratios="yes")


def test_halving_search_spends_trees_as_budget_and_reports_its_choice():
    X, y, groups = toy_features()
    grid = {"max_depth": [2, 3], "learning_rate": [0.1, 0.3], "n_estimators": [9, 27]}
    model = create_model("xgboost", grid=grid, search="halving", min_resources=3, n_jobs=1).fit(
        X, y, groups
    )
    summary = model.search_summary_
    assert 0.5 < summary["inner_cv_auc"] <= 1.0 and summary["candidates"] >= 4
    assert summary["best_params"]["n_estimators"] == 27 and summary["best_params"]["max_depth"] in (
        2,
        3,
    )


def test_default_xgboost_search_compares_full_size_candidates_and_reports_its_choice():
    X, y, groups = toy_features()
    grid = {"max_depth": [2, 3], "learning_rate": [0.1, 0.3], "n_estimators": [9, 27]}
    model = create_model("xgboost", grid=grid, n_iter=3, n_jobs=1).fit(X, y, groups)
    summary = model.search_summary_
    assert model._search() == "sampled" and summary["candidates"] == 3 * 2  # 3 points x 2 tree counts
    assert 0.5 < summary["inner_cv_auc"] <= 1.0 and summary["best_params"]["n_estimators"] in (9, 27)


def test_xgboost_without_search_early_stops_inside_the_training_part():
    """search=none + early stopping: a booster stopped on held-out training patients, then the
    model refitted on every training record with that many trees; the same twice (seeded)."""
    X, y, groups = toy_features()
    make = lambda: create_model("xgboost", search="none", early_stopping_rounds=3, n_jobs=1,  # noqa: E731
                                params={"n_estimators": 200, "learning_rate": 0.3}).fit(X, y, groups)  # fmt: skip
    model = make()
    trees = model.search_summary_["early_stopped_trees"]
    assert 1 <= trees < 200
    assert model.estimator_.get_params()["n_estimators"] == trees
    assert model.estimator_.n_features_in_ == X.shape[1]  # refitted on the whole training part
    np.testing.assert_array_equal(model.predict_proba(X), make().predict_proba(X))


def test_early_stopping_is_refused_where_no_booster_stops():
    with pytest.raises(ConfigError, match="early_stopping_rounds is for XGBoost"):
        create_model("random_forest", early_stopping_rounds=5)
    with pytest.raises(ConfigError, match="early_stopping_rounds=0"):
        create_model("xgboost", search="none", early_stopping_rounds=0)


def test_sampled_search_is_refused_where_no_model_implements_it():
    with pytest.raises(ConfigError, match="search=sampled is not implemented"):
        create_model("random_forest", grid={"n_estimators": [10]}, search="sampled")


@pytest.mark.parametrize("search", ["grid", "random"])
def test_other_searches_run(search):
    X, y, groups = toy_features()
    grid = {"C": [0.1, 1.0]}
    model = create_model("logistic_regression", grid=grid, search=search, n_iter=2, n_jobs=1).fit(
        X, y, groups
    )
    assert model.search_summary_["best_params"]["C"] in (0.1, 1.0)


def test_unknown_search_and_kernel_are_config_errors():
    with pytest.raises(ConfigError, match="model.search='bayes'"):
        create_model("xgboost", search="bayes")
    with pytest.raises(ConfigError, match="model.kernel='cubic'"):
        create_model("svm", kernel="cubic")


@pytest.mark.parametrize("kernel", ["linear", "poly", "rbf", "sigmoid"])
def test_svm_kernels_are_selectable(kernel):
    X, y, groups = toy_features()
    assert create_model("svm", kernel=kernel, n_jobs=1).fit(X, y, groups).predict_proba(
        X
    ).shape == (240, 2)


@pytest.mark.parametrize("name", CLASSICAL)
def test_train_route_logs_classical_runs_like_networks(compose_train, name):
    cfg = compose_train(f"model={name}")
    if name == "xgboost":
        with open_dict(cfg):
            cfg.model.grid = {"max_depth": [2, 3], "n_estimators": [9, 27]}
            cfg.model.min_resources = 3
    results = run(cfg)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    [logged] = client.search_runs([client.get_experiment_by_name("ecg-mi-synthetic").experiment_id])
    assert logged.info.run_name == f"{name}-fold0" and logged.info.status == "FINISHED"
    for key in ("val_auc", "test_auc", "test_f1", "test_threshold"):
        assert logged.data.metrics[key] == pytest.approx(results[key])
    assert len(logged.data.params["data.fold_hash"]) == 64
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert "predictions.csv" in artifacts and "checkpoint" not in artifacts  # the model is stored once
    packaged = mlflow.models.get_model_info(logged_model_uri(logged.info.run_id, os.environ["MLFLOW_TRACKING_URI"]))
    assert packaged.metadata["ecg_mi"]["model"] == name
    if name == "xgboost":
        assert (
            "search.best.max_depth" in logged.data.params and "inner_cv_auc" in logged.data.metrics
        )


@pytest.mark.slow
def test_classical_and_network_runs_share_the_fold_file(compose_train):
    net = compose_train("model=resnet")
    tree = compose_train("model=random_forest")
    run(net)
    run(tree)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("ecg-mi-synthetic").experiment_id])
    assert len({r.data.params["data.fold_hash"] for r in runs}) == 1
    assert len({r.data.params["data.n_test"] for r in runs}) == 1
