"""Successive halving over an XGBoost grid with trees as the budget, grown incrementally.

:class:`TreeBudgetHalving` runs *the same search* as scikit-learn's
``HalvingGridSearchCV(XGBClassifier(...), grid, resource="n_estimators", factor=3,
aggressive_elimination=True)``: the same rounds (candidates × trees), the same inner folds,
the same per-fold ROC AUC, the same ``_top_k`` ordering of survivors (ties included) and the
same winner, refitted on the whole training part. ``tests/test_halving.py`` checks that
round by round against scikit-learn on a small grid.

What it does differently is where the time goes. Measured on the PTB-XL cohort (≈400 inner
training records × 408 features, 2 cores), scikit-learn spends 30–60 ms per fit because each
of its ~17,500 fits goes through the estimator wrapper and re-bins the data. Here:

* each inner fold's training data is binned once (``QuantileDMatrix``) per worker and every
  booster is trained on it natively (``xgb.train``), bit-identical to ``XGBClassifier.fit``;
* aggressive-elimination rounds repeat the smallest budget, which re-scores identical
  models: their scores are taken from the first of those rounds instead of being refitted
  (3,888 × 3 fits instead of 5,760 × 3 at 2 trees for the paper's grid);
* boosters run one thread each (``nthread=1``) on ``n_jobs`` worker threads — XGBoost releases
  the GIL — and each worker owns its binned matrices.

Survivors are refitted from zero at each larger budget rather than continued: with
``subsample < 1`` XGBoost draws rows from one generator per *thread*, shared by every booster
trained there, so a continued booster would differ from the one scikit-learn fits. Refitting
the few survivors costs ≈3,700 trees per outer fold; the first round (11,664 small fits) is
where the time is.

``benchmarks/xgb_search.py`` times it against scikit-learn's search on the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from math import ceil, floor, log
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import ParameterGrid

from ecg_mi.errors import ConfigError

RESOURCE = "n_estimators"


def halving_schedule(
    n_candidates: int, min_resources: int, max_resources: int, factor: int = 3
) -> list[tuple[int, int]]:
    """``(candidates, trees)`` per round, as scikit-learn's halving with aggressive
    elimination plans them: enough rounds to leave fewer than ``factor`` candidates, the
    first ones repeated at ``min_resources`` trees when the budget range is too short."""
    if not 1 <= min_resources <= max_resources:
        raise ConfigError(
            f"halving needs 1 <= min_resources ({min_resources}) <= max_resources ({max_resources})"
        )
    n_required = 1 + floor(log(n_candidates, factor))
    n_possible = 1 + floor(log(max_resources // min_resources, factor))
    schedule, remaining = [], n_candidates
    for itr in range(n_required):
        power = max(0, itr - n_required + n_possible)
        schedule.append((remaining, min(int(factor**power * min_resources), max_resources)))
        remaining = ceil(remaining / factor)
    return schedule


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best ``scores`` in scikit-learn's ``_top_k`` order (NaN worst,
    best last; ``np.argsort``'s own tie order, which the next round inherits)."""
    order = np.roll(np.argsort(scores), np.count_nonzero(np.isnan(scores)))
    return order[-k:]


class _Worker:
    """One thread's binned inner-fold matrices (built on first use, one thread each)."""

    def __init__(self, splits: Sequence[tuple[np.ndarray, np.ndarray]], X: np.ndarray,
                 y: np.ndarray, max_bin: int) -> None:  # fmt: skip
        self.splits, self.X, self.y, self.max_bin = splits, X, y, max_bin
        self.matrices: dict[int, tuple[xgb.QuantileDMatrix, xgb.DMatrix]] = {}

    def _matrices(self, split: int) -> tuple[xgb.QuantileDMatrix, xgb.DMatrix]:
        if split not in self.matrices:
            train, test = self.splits[split]
            dtrain = xgb.QuantileDMatrix(
                self.X[train], self.y[train], max_bin=self.max_bin, missing=np.nan, nthread=1
            )
            self.matrices[split] = (dtrain, xgb.DMatrix(self.X[test], missing=np.nan, nthread=1))
        return self.matrices[split]

    def score(self, split: int, params: dict, trees: int) -> float:
        """Inner-fold ROC AUC of a booster with ``params`` grown to ``trees`` trees."""
        dtrain, dtest = self._matrices(split)
        booster = xgb.train(params, dtrain, num_boost_round=trees)
        return float(roc_auc_score(self.y[self.splits[split][1]], booster.predict(dtest)))


class TreeBudgetHalving:
    """Successive halving (factor 3, aggressive elimination) of an ``XGBClassifier`` grid with
    ``n_estimators`` as the budget; a drop-in for the scikit-learn search object the
    classical adapter uses (``fit``, ``best_params_``, ``best_score_``, ``best_estimator_``,
    ``cv_results_``, ``n_candidates_``, ``n_resources_``).

    Args:
        estimator: the unfitted ``XGBClassifier`` carrying the fixed parameters.
        grid: ``{parameter: [values]}`` without ``n_estimators``.
        cv: a splitter with ``split(X, y, groups)`` (patient-grouped inner folds).
        min_resources, max_resources: trees of the first and the largest round.
        factor: elimination factor (3 keeps a third each round).
        n_jobs: worker threads, each booster single-threaded.
        progress: called with ``(round, n_rounds, candidates, trees)`` before each round.
    """

    def __init__(
        self,
        estimator: xgb.XGBClassifier,
        grid: Mapping[str, Sequence[Any]],
        cv: Any,
        min_resources: int,
        max_resources: int,
        factor: int = 3,
        n_jobs: int = 1,
        progress: Callable[[int, int, int, int], None] | None = None,
    ) -> None:
        if RESOURCE in grid:
            raise ConfigError(f"{RESOURCE} is the halving budget; remove it from the grid")
        self.estimator, self.grid, self.cv = estimator, dict(grid), cv
        self.min_resources, self.max_resources = int(min_resources), int(max_resources)
        self.factor, self.n_jobs, self.progress = int(factor), max(1, int(n_jobs)), progress

    def _native_params(self, candidate: Mapping[str, Any]) -> dict[str, Any]:
        params = clone(self.estimator).set_params(**candidate).get_xgb_params()
        params = {k: v for k, v in params.items() if v is not None and k != "n_jobs"}
        return {**params, "nthread": 1}

    def _round(
        self, workers: list[_Worker], members: np.ndarray, params: list[dict], trees: int
    ) -> np.ndarray:
        """Mean inner-fold AUC of each candidate in ``members`` at ``trees`` trees."""
        n_splits = len(workers[0].splits)

        def work(w: int) -> dict[int, list[float]]:
            mine = members.tolist()[w :: len(workers)]
            return {
                c: [workers[w].score(s, params[c], trees) for s in range(n_splits)] for c in mine
            }

        fold_scores: dict[int, list[float]] = {}
        with ThreadPoolExecutor(len(workers)) as pool:
            for done in pool.map(work, range(len(workers))):
                fold_scores.update(done)
        return np.array([fold_scores[c] for c in members.tolist()]).mean(axis=1)

    def fit(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
    ) -> TreeBudgetHalving:
        candidates = list(ParameterGrid(self.grid))
        params = [self._native_params(c) for c in candidates]
        splits = list(self.cv.split(X, y, groups))
        schedule = halving_schedule(
            len(candidates), self.min_resources, self.max_resources, self.factor
        )
        max_bin = int(params[0].get("max_bin", 256))
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y)
        members = np.arange(len(candidates))
        results: dict[str, list] = {
            "params": [],
            "iter": [],
            "n_resources": [],
            "mean_test_score": [],
        }
        cached: dict[int, float] = {}
        cached_trees = None
        workers = [_Worker(splits, X, y, max_bin) for _ in range(self.n_jobs)]
        for itr, (n_members, trees) in enumerate(schedule):
            if self.progress:
                self.progress(itr, len(schedule), n_members, trees)
            if trees == cached_trees:  # aggressive elimination: same models, same scores
                scores = np.array([cached[c] for c in members])
            else:
                scores = self._round(workers, members, params, trees)
                cached, cached_trees = dict(zip(members.tolist(), scores, strict=True)), trees
            results["params"] += [{**candidates[c], RESOURCE: trees} for c in members]
            results["iter"] += [itr] * len(members)
            results["n_resources"] += [trees] * len(members)
            results["mean_test_score"] += scores.tolist()
            if itr < len(schedule) - 1:
                members = members[top_k(scores, ceil(len(members) / self.factor))]
        best = int(np.nanargmax(scores)) if not np.isnan(scores).all() else 0
        self.best_params_ = {**candidates[members[best]], RESOURCE: schedule[-1][1]}
        self.best_score_ = float(scores[best])
        self.cv_results_ = {k: np.asarray(v) if k != "params" else v for k, v in results.items()}
        self.n_candidates_ = [c for c, _ in schedule]
        self.n_resources_ = [t for _, t in schedule]
        self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_).fit(X, y)
        return self
