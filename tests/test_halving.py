"""The incremental tree-budget halving is scikit-learn's halving search, only faster."""

import numpy as np
import pytest
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV, StratifiedGroupKFold
from xgboost import XGBClassifier

from conftest import toy_features
from ecg_mi.errors import ConfigError
from ecg_mi.models.halving import TreeBudgetHalving, halving_schedule, top_k

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
