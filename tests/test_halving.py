"""The incremental tree-budget halving is scikit-learn's halving search, only faster."""

import numpy as np
import pytest
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV, StratifiedGroupKFold
from xgboost import XGBClassifier

from conftest import toy_features
from ecg_mi.errors import ConfigError
from ecg_mi.models.halving import TreeBudgetHalving, TreeCountSearch, halving_schedule, top_k

# 54 candidates, budgets 2 -> 12 trees: three rounds at 2 trees (aggressive elimination), then 6.
GRID = {
    "max_depth": [2, 3, 4],
    "learning_rate": [0.1, 0.3, 0.5],
    "subsample": [0.6, 1.0],
    "colsample_bytree": [0.6, 0.8, 1.0],
}
FIXED = dict(tree_method="hist", max_bin=64, eval_metric="logloss", random_state=0, n_jobs=1)


def _cv():
    return StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0)


@pytest.fixture(scope="module")
def both_searches():
    X, y, groups = toy_features(n=210, seed=3)
    ours = TreeBudgetHalving(XGBClassifier(**FIXED), GRID, _cv(), 2, 12, n_jobs=2).fit(X, y, groups)
    theirs = HalvingGridSearchCV(
        XGBClassifier(**FIXED), GRID, factor=3, resource="n_estimators", max_resources=12,
        min_resources=2, aggressive_elimination=True, cv=_cv(), scoring="roc_auc", refit=True,
    ).fit(X, y, groups=groups)  # fmt: skip
    return ours, theirs, X


def test_schedule_matches_scikit_learn(both_searches):
    ours, theirs, _ = both_searches
    assert ours.n_candidates_ == theirs.n_candidates_ == [54, 18, 6, 2]
    assert ours.n_resources_ == theirs.n_resources_ == [2, 2, 2, 6]


def test_every_round_scores_the_same_candidates_in_the_same_order(both_searches):
    ours, theirs, _ = both_searches
    assert ours.cv_results_["params"] == list(theirs.cv_results_["params"])
    np.testing.assert_array_equal(ours.cv_results_["iter"], theirs.cv_results_["iter"])
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"],
        theirs.cv_results_["mean_test_score"],
        rtol=0,
        atol=1e-12,
    )


def test_winner_and_refit_match_scikit_learn(both_searches):
    ours, theirs, X = both_searches
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, abs=1e-12)
    np.testing.assert_array_equal(
        ours.best_estimator_.predict_proba(X), theirs.best_estimator_.predict_proba(X)
    )


def test_threads_do_not_change_the_result(both_searches):
    ours, _, _ = both_searches  # fitted on 2 threads
    X, y, groups = toy_features(n=210, seed=3)
    serial = TreeBudgetHalving(XGBClassifier(**FIXED), GRID, _cv(), 2, 12, n_jobs=1).fit(
        X, y, groups
    )
    assert serial.best_params_ == ours.best_params_
    np.testing.assert_array_equal(
        serial.cv_results_["mean_test_score"], ours.cv_results_["mean_test_score"]
    )


def test_paper_grid_schedule():
    # 3,888 non-tree points of Table 1, 2 -> 200 trees: the schedule the docs quote.
    assert halving_schedule(3888, 2, 200) == [
        (3888, 2), (1296, 2), (432, 2), (144, 2), (48, 6), (16, 18), (6, 54), (2, 162)
    ]  # fmt: skip


def test_top_k_puts_nan_last_and_best_at_the_end():
    assert top_k(np.array([0.7, np.nan, 0.9, 0.8]), 2).tolist() == [3, 2]


def test_budget_in_grid_is_refused():
    with pytest.raises(ConfigError, match="n_estimators"):
        TreeBudgetHalving(XGBClassifier(), {"n_estimators": [5]}, _cv(), 2, 12)


def test_bad_budget_range_is_refused():
    with pytest.raises(ConfigError, match="min_resources"):
        halving_schedule(10, 20, 12)


# ---- TreeCountSearch: the default XGBoost search (a seeded sample, every candidate at full size)

COUNTS_GRID = {**GRID, "n_estimators": [4, 12]}


def test_tree_count_search_scores_every_count_as_its_own_model():
    """Truncating one booster to t trees scores exactly what a t-tree booster scores."""
    from sklearn.metrics import roc_auc_score

    X, y, groups = toy_features(n=210, seed=3)
    search = TreeCountSearch(XGBClassifier(**FIXED), COUNTS_GRID, _cv(), n_candidates=5).fit(X, y, groups)
    table = dict(zip(map(lambda p: tuple(sorted(p.items())), search.cv_results_["params"]),
                     search.cv_results_["mean_test_score"], strict=True))  # fmt: skip
    params = search.cv_results_["params"][1]  # the first candidate at 12 trees
    expected = np.mean([
        roc_auc_score(y[test], XGBClassifier(**FIXED, **params).fit(X[train], y[train]).predict_proba(X[test])[:, 1])
        for train, test in _cv().split(X, y, groups)
    ])  # fmt: skip
    assert table[tuple(sorted(params.items()))] == pytest.approx(expected, abs=1e-6)
    assert search.best_score_ == pytest.approx(max(search.cv_results_["mean_test_score"]))


def test_tree_count_search_always_compares_the_prior_point_and_is_seeded():
    prior = {"max_depth": 4, "learning_rate": 0.5, "subsample": 0.6, "colsample_bytree": 0.8}
    make = lambda seed: TreeCountSearch(XGBClassifier(**FIXED), COUNTS_GRID, _cv(), 6, seed, always=prior)  # noqa: E731
    assert make(0).candidates()[0] == prior and make(1).candidates()[0] == prior
    assert make(0).candidates() == make(0).candidates() != make(1).candidates()
    assert len(make(0).candidates()) == 6


def test_tree_count_search_refits_its_winner_on_all_records():
    X, y, groups = toy_features(n=210, seed=3)
    search = TreeCountSearch(XGBClassifier(**FIXED), COUNTS_GRID, _cv(), n_candidates=4, n_jobs=2).fit(X, y, groups)
    assert search.best_estimator_.get_params()["n_estimators"] == search.best_params_["n_estimators"]
    assert search.best_estimator_.n_features_in_ == X.shape[1]


def test_tree_count_search_needs_tree_counts_and_candidates():
    with pytest.raises(ConfigError, match="n_estimators"):
        TreeCountSearch(XGBClassifier(), GRID, _cv(), 4)
    with pytest.raises(ConfigError, match="at least 1 candidate"):
        TreeCountSearch(XGBClassifier(), COUNTS_GRID, _cv(), 0)


def test_tree_count_search_averages_its_best_points():
    X, y, groups = toy_features(n=210, seed=3)
    search = TreeCountSearch(XGBClassifier(**FIXED), COUNTS_GRID, _cv(), n_candidates=4, average_top=3).fit(X, y, groups)
    scores = dict(zip(map(lambda p: tuple(sorted(p.items())), search.cv_results_["params"]),
                      search.cv_results_["mean_test_score"], strict=True))  # fmt: skip
    ranked = sorted(scores.values(), reverse=True)
    assert [scores[tuple(sorted(p.items()))] for p in search.top_params_] == ranked[:3]
    members = search.best_estimator_.estimators
    expected = np.mean([m.predict_proba(X) for m in members], axis=0)
    np.testing.assert_allclose(search.best_estimator_.predict_proba(X), expected)
    assert [m.get_params()["n_estimators"] for m in members] == [p["n_estimators"] for p in search.top_params_]


def test_early_stopped_search_scores_each_candidate_at_its_stopping_point():
    """With early stopping, a candidate's inner fold is scored by a booster stopped on that
    fold's held-out part at its best tree count, and the refit uses the inner folds' mean count."""
    from sklearn.metrics import roc_auc_score

    X, y, groups = toy_features(n=210, seed=3)
    grid = {**GRID, "n_estimators": [4, 60]}
    search = TreeCountSearch(XGBClassifier(**FIXED), grid, _cv(), n_candidates=3,
                             early_stopping_rounds=3).fit(X, y, groups)  # fmt: skip
    params = search.cv_results_["params"][0]
    aucs, trees = [], []
    for train, test in _cv().split(X, y, groups):
        probe = XGBClassifier(**FIXED, **{**params, "n_estimators": 60}, early_stopping_rounds=3)
        probe.fit(X[train], y[train], eval_set=[(X[test], y[test])], verbose=False)
        trees.append(probe.best_iteration + 1)
        aucs.append(roc_auc_score(y[test], probe.predict_proba(X[test], iteration_range=(0, trees[-1]))[:, 1]))
    assert search.cv_results_["mean_test_score"][0] == pytest.approx(np.mean(aucs), abs=1e-6)
    assert params["n_estimators"] == max(1, round(np.mean(trees))) < 60
    assert search.best_estimator_.get_params()["n_estimators"] == search.best_params_["n_estimators"]


def test_early_stopped_search_is_seeded():
    X, y, groups = toy_features(n=210, seed=3)
    grid = {**GRID, "n_estimators": [4, 60]}
    fit = lambda: TreeCountSearch(XGBClassifier(**FIXED), grid, _cv(), n_candidates=3, n_jobs=2,  # noqa: E731
                                  early_stopping_rounds=3).fit(X, y, groups)  # fmt: skip
    first, second = fit(), fit()
    assert first.cv_results_["params"] == second.cv_results_["params"]
    np.testing.assert_array_equal(first.cv_results_["mean_test_score"], second.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(first.best_estimator_.predict_proba(X), second.best_estimator_.predict_proba(X))
