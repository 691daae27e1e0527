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
from sklearn.base import BaseEstimator, ClassifierMixin, clone
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


def native_params(estimator: xgb.XGBClassifier, candidate: Mapping[str, Any]) -> dict[str, Any]:
    """``xgb.train`` parameters of ``estimator`` with ``candidate`` set, single-threaded."""
    params = clone(estimator).set_params(**candidate).get_xgb_params()
    params = {k: v for k, v in params.items() if v is not None and k != "n_jobs"}
    return {**params, "nthread": 1}


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

    def scores(self, split: int, params: dict, counts: Sequence[int]) -> list[float]:
        """Inner-fold ROC AUC of one booster grown to ``max(counts)`` trees, read at each of
        ``counts`` trees (the first ``t`` trees of a booster are the ``t``-tree booster)."""
        dtrain, dtest = self._matrices(split)
        booster = xgb.train(params, dtrain, num_boost_round=max(counts))
        truth = self.y[self.splits[split][1]]
        return [float(roc_auc_score(truth, booster.predict(dtest, iteration_range=(0, t)))) for t in counts]

    def stopped(self, split: int, params: dict, max_trees: int, rounds: int) -> tuple[float, int]:
        """``(AUC, trees)`` of one booster grown until its log loss on the inner fold's held-out
        part has not improved for ``rounds`` trees (at most ``max_trees``), read at its best tree
        count. The held-out part is inside the outer training part: nothing of validation or test."""
        dtrain, dtest = self._matrices(split)
        truth = self.y[self.splits[split][1]]
        dtest.set_label(truth)
        booster = xgb.train(params, dtrain, num_boost_round=max_trees, evals=[(dtest, "inner")],
                            early_stopping_rounds=rounds, verbose_eval=False)  # fmt: skip
        trees = booster.best_iteration + 1
        return float(roc_auc_score(truth, booster.predict(dtest, iteration_range=(0, trees)))), trees


def _score_candidates(workers: list[_Worker], members: list[int], params: list[dict],
                      counts: Sequence[int], stop_rounds: int | None = None) -> dict[int, np.ndarray]:  # fmt: skip
    """``{candidate: AUC [inner folds, counts]}``: each candidate of ``members`` scored on every
    inner fold at each tree count, the candidates shared out over the worker threads. With
    ``stop_rounds``: ``{candidate: [inner folds, (AUC, trees)]}`` of early-stopped boosters
    (:meth:`_Worker.stopped`, at most ``max(counts)`` trees)."""

    def fold_scores(worker: _Worker, split: int, c: int) -> Sequence[float]:
        if stop_rounds is None:
            return worker.scores(split, params[c], counts)
        return worker.stopped(split, params[c], max(counts), stop_rounds)

    def work(w: int) -> dict[int, np.ndarray]:
        worker = workers[w]
        return {c: np.array([fold_scores(worker, s, c) for s in range(len(worker.splits))])
                for c in members[w :: len(workers)]}  # fmt: skip

    scored: dict[int, np.ndarray] = {}
    with ThreadPoolExecutor(len(workers)) as pool:
        for done in pool.map(work, range(len(workers))):
            scored.update(done)
    return scored


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

    def _round(
        self, workers: list[_Worker], members: np.ndarray, params: list[dict], trees: int
    ) -> np.ndarray:
        """Mean inner-fold AUC of each candidate in ``members`` at ``trees`` trees."""
        fold_scores = _score_candidates(workers, members.tolist(), params, [trees])
        return np.array([fold_scores[c][:, 0] for c in members.tolist()]).mean(axis=1)

    def fit(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
    ) -> TreeBudgetHalving:
        candidates = list(ParameterGrid(self.grid))
        params = [native_params(self.estimator, c) for c in candidates]
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


class TreeCountSearch:
    """A seeded sample of an XGBoost grid, every candidate scored at full size.

    Why not halving: on ≈600 records the halving's first cut ranks thousands of grid points
    on 2-tree models, and picking the best of that many inflates the winner's inner-CV AUC
    (0.897 inner vs 0.874 test on fold 0). Here fewer candidates are compared, each as the
    model it will be: ``n_candidates`` non-tree grid points drawn without replacement
    (seeded; ``always`` — the paper's chosen point — is one of them when it lies in the
    grid), one booster per (candidate, inner fold) grown to the grid's largest
    ``n_estimators`` and scored at *every* ``n_estimators`` value of the grid by truncating
    it (``iteration_range``), so all tree counts cost one fit. The ``average_top`` points
    (candidate × tree count) with the best mean inner-fold AUC are refitted on the whole
    training part and their P(MI) averaged (:class:`MeanClassifier`; 1 = the single best):
    near-ties in the inner CV are noise at this size, and averaging them does not bet on one.

    With ``early_stopping_rounds`` the tree count is not a searched value: each (candidate,
    inner fold) booster stops once its log loss on the inner fold's held-out part has not
    improved for that many trees (at most the grid's largest ``n_estimators``) and is scored at
    its best count; a candidate's tree count is the mean of its inner folds' (what
    ``xgboost.cv`` reports), and ``average_top`` candidates are refitted with it. Boosters that
    stop early cost less, and every candidate gets the tree count its learning rate wants
    rather than one of the grid's three.

    Same search-object interface as :class:`TreeBudgetHalving`.
    """

    def __init__(
        self,
        estimator: xgb.XGBClassifier,
        grid: Mapping[str, Sequence[Any]],
        cv: Any,
        n_candidates: int,
        seed: int = 0,
        always: Mapping[str, Any] | None = None,
        n_jobs: int = 1,
        average_top: int = 1,
        early_stopping_rounds: int | None = None,
    ) -> None:
        if int(average_top) < 1:
            raise ConfigError(f"model.average_top={average_top!r} must be >= 1")
        if RESOURCE not in grid:
            raise ConfigError(f"model.grid needs {RESOURCE} values: the tree counts to score")
        if int(n_candidates) < 1:
            raise ConfigError(f"model.n_iter={n_candidates!r}: the search needs at least 1 candidate")
        self.estimator, self.grid, self.cv = estimator, dict(grid), cv
        self.n_candidates, self.seed, self.always = int(n_candidates), int(seed), dict(always or {})
        self.n_jobs, self.average_top = max(1, int(n_jobs)), int(average_top)
        self.early_stopping_rounds = None if early_stopping_rounds is None else int(early_stopping_rounds)

    def candidates(self) -> list[dict[str, Any]]:
        """The sampled non-tree grid points, ``always`` first when it is one of them."""
        grid = {k: v for k, v in self.grid.items() if k != RESOURCE}
        points = list(ParameterGrid(grid))
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(points)).tolist()
        prior = {k: self.always.get(k) for k in grid}
        if prior in points:  # the paper's point competes, whatever the draw
            first = points.index(prior)
            order = [first] + [i for i in order if i != first]
        return [points[i] for i in order[: self.n_candidates]]

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> TreeCountSearch:
        candidates = self.candidates()
        counts = sorted(int(t) for t in self.grid[RESOURCE])
        params = [
            native_params(self.estimator, {**c, RESOURCE: counts[-1]}) for c in candidates
        ]
        splits = list(self.cv.split(X, y, groups))
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y)
        max_bin = int(params[0].get("max_bin", 256))
        workers = [_Worker(splits, X, y, max_bin) for _ in range(self.n_jobs)]

        fold_scores = _score_candidates(workers, list(range(len(candidates))), params, counts,
                                        self.early_stopping_rounds)  # fmt: skip
        if self.early_stopping_rounds is None:
            scores = np.array([fold_scores[c].mean(axis=0) for c in range(len(candidates))])  # [cand, counts]
            points = [{**c, RESOURCE: t} for c in candidates for t in counts]
        else:  # [inner folds, (AUC, trees)] per candidate: its mean AUC at its mean tree count
            scores = np.array([fold_scores[c][:, 0].mean() for c in range(len(candidates))])
            points = [{**c, RESOURCE: max(1, round(fold_scores[i][:, 1].mean()))} for i, c in enumerate(candidates)]
        flat = np.nan_to_num(scores.ravel(), nan=-np.inf)
        top = np.argsort(-flat, kind="stable")[: self.average_top]  # best first, ties by order
        self.best_params_ = points[top[0]]
        self.best_score_ = float(flat[top[0]])
        self.top_params_ = [points[i] for i in top]
        self.cv_results_ = {"params": points, "mean_test_score": scores.ravel()}
        with ThreadPoolExecutor(self.n_jobs) as pool:  # the refits share the cores too
            fitted = list(pool.map(lambda i: clone(self.estimator).set_params(**points[i]).fit(X, y), top))
        self.best_estimator_ = fitted[0] if len(fitted) == 1 else MeanClassifier(fitted).fit(X, y)
        return self


class MeanClassifier(ClassifierMixin, BaseEstimator):
    """The mean ``predict_proba`` of already fitted classifiers (a search's best few).

    ``fit`` only checks they were fitted on the same classes; it does not refit them."""

    def __init__(self, estimators: Sequence[Any]) -> None:
        self.estimators = estimators

    def fit(self, X: np.ndarray, y: np.ndarray) -> MeanClassifier:
        classes = [tuple(e.classes_) for e in self.estimators]
        if len(set(classes)) != 1:
            raise ValueError(f"the averaged classifiers know different classes: {sorted(set(classes))}")
        self.classes_ = self.estimators[0].classes_
        self.n_features_in_ = self.estimators[0].n_features_in_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.mean([e.predict_proba(X) for e in self.estimators], axis=0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
