"""One adapter for the classical models on the 408 clinical features.

Every classical model is a scikit-learn-style estimator (``fit(X, y, groups)``,
``predict_proba(X)``) registered in the same registry as the networks, so
``python train.py model=xgboost`` follows the same route, folds, metrics and artifacts.

* ``xgboost`` — tree booster, NaN handled natively; hyper-parameters from the paper's
  Table 1 grid (``conf/model/xgboost.yaml``), searched **inside the training part only**
  with patient-grouped inner cross-validation. ``search``: ``sampled`` (default: ``n_iter``
  seeded grid points, the paper's among them, each scored at full size and at every tree
  count of the grid, :class:`~ecg_mi.models.halving.TreeCountSearch`), ``halving``
  (scikit-learn's successive halving over the full grid with trees as the budget),
  ``grid`` (exhaustive), ``random`` (``n_iter`` draws) or ``none`` (the paper's chosen
  values, ``params``).
* ``decision_tree``, ``random_forest`` — library defaults; NaN imputed by the median fitted
  on the training part.
* ``extra_trees`` — extremely randomised trees (not one of the paper's methods): random
  split thresholds instead of the best ones; ``params`` from ``conf/model/extra_trees.yaml``
  (chosen on validation parts, BENCHMARKS.md); NaN imputed as for the forest. Either forest
  can be fitted on the top fraction of the features a first forest ranks (``top_features``;
  Extra Trees' config sets 0.5).
* ``logistic_regression`` — L2 penalty on standardised, imputed inputs.
* ``svm`` — ``kernel`` linear (paper's best) | poly | rbf | sigmoid on standardised,
  imputed inputs; P(MI) by Platt scaling (``probability=True``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (enables Halving*SearchCV)
from sklearn.feature_selection import SelectFromModel
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    RandomizedSearchCV,
    StratifiedGroupKFold,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from xgboost import XGBClassifier

from ecg_mi.errors import ConfigError
from ecg_mi.features import feature_names
from ecg_mi.features.ratios import ratio_names, with_ratios
from ecg_mi.models.halving import RESOURCE, TreeBudgetHalving, TreeCountSearch
from ecg_mi.models.registry import register_model

log = logging.getLogger(__name__)

SEARCHES = ("sampled", "halving", "grid", "random", "none")


class ClassicalModel(ClassifierMixin, BaseEstimator):
    """Base adapter, a scikit-learn classifier: build an estimator, optionally search its
    grid inside the training data, fit, predict P(MI). Binary labels only.

    Follows the estimator contract (checked by ``parametrize_with_checks`` in the tests):
    ``__init__`` only stores its arguments; settings are validated by
    :meth:`check_interface` (called by the registry when it builds a model) and again
    by ``fit``; fitted attributes end in ``_``.

    Args:
        params: fixed estimator parameters (the starting point of any search).
        grid: parameter grid ``{name: [values]}`` for ``search`` ≠ ``none``.
        search: ``halving`` | ``grid`` | ``random`` | ``none``; None = the model's
            ``default_search``.
        inner_folds: patient-grouped inner CV folds of the search (training part only).
        n_iter: draws for ``random``.
        min_resources: smallest budget of the halving search (see :meth:`_halving`).
        average_top: ``sampled`` search: average the P(MI) of this many best points (1 = the best).
        seed: random state of estimators and searches.
        n_jobs: parallel jobs for estimators/searches.
        top_features: fit on this fraction of the features, ranked on the training part
            (models with ``selects_features``: the forests); None = every feature.
        q_ratios: add the 24 Q-wave ratios (:mod:`ecg_mi.features.ratios`) to the 408
            features before anything else (``X`` must then be the 408, in their order).
        early_stopping_rounds: XGBoost only: boosters stop once their log loss on held-out
            training records has not improved for this many trees (None = never); see
            :meth:`XGBoostModel.fit_early_stopped` and :class:`TreeCountSearch`.

    ``n_jobs`` None or ≤ 0 means every core this process may use (:func:`available_cores`).
    """

    family = "classical"
    default_search = "none"
    n_params = ""
    # Whether make_estimator honours ``top_features`` (it needs a model that ranks features).
    selects_features = False
    # A model pickled before q_ratios existed lacks the attribute; it adds no ratios.
    q_ratios = False

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        grid: Mapping[str, list] | None = None,
        search: str | None = None,
        inner_folds: int = 3,
        n_iter: int = 60,
        min_resources: int = 2,
        seed: int = 0,
        n_jobs: int = 2,
        average_top: int = 1,
        top_features: float | None = None,
        q_ratios: bool = False,
        early_stopping_rounds: int | None = None,
    ) -> None:
        self.params = params
        self.grid = grid
        self.search = search
        self.inner_folds = inner_folds
        self.n_iter = n_iter
        self.min_resources = min_resources
        self.seed = seed
        self.n_jobs = n_jobs
        self.average_top = average_top
        self.top_features = top_features
        self.q_ratios = q_ratios
        self.early_stopping_rounds = early_stopping_rounds

    def _search(self) -> str:
        return self.default_search if self.search is None else self.search

    def check_interface(self) -> None:
        """ConfigError for settings no fit could use (unknown search, a search without grid)."""
        search = self._search()
        if search not in SEARCHES:
            raise ConfigError(f"model.search={search!r}; choose one of {list(SEARCHES)}")
        if search != "none" and not self.grid:
            raise ConfigError(f"model.search={search} needs a non-empty model.grid")
        if search == "sampled" and type(self)._sampled is ClassicalModel._sampled:
            raise ConfigError(f"model.search=sampled is not implemented for {type(self).__name__}; "
                              f"choose one of {[s for s in SEARCHES if s != 'sampled']}")  # fmt: skip
        if not isinstance(self.q_ratios, bool):
            raise ConfigError(f"model.q_ratios={self.q_ratios!r}; true or false")
        rounds = self.early_stopping_rounds
        if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1):
            raise ConfigError(f"model.early_stopping_rounds={rounds!r}; a whole number >= 1 or null")
        if rounds is not None and not isinstance(self, XGBoostModel):
            raise ConfigError(f"model.early_stopping_rounds is for XGBoost, not {type(self).__name__}")
        fraction = self.top_features
        if fraction is None:
            return
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ConfigError(f"model.top_features={fraction!r}; a fraction in (0, 1] or null")
        if not self.selects_features:
            raise ConfigError(f"model.top_features is for the forests (random_forest, extra_trees), "
                              f"not {type(self).__name__}")  # fmt: skip

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # MI vs not: AUC-scored searches are binary
        tags.input_tags.allow_nan = True  # unmeasurable features are NaN (imputed or routed)
        return tags

    def make_estimator(self) -> BaseEstimator:
        """The unfitted estimator with ``self.params`` applied (subclasses)."""
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return dict(self.params or {})

    def _jobs(self) -> int:
        """``n_jobs``, None or ≤ 0 resolved to the cores available."""
        return available_cores() if self.n_jobs is None or int(self.n_jobs) <= 0 else int(self.n_jobs)

    def _grid_for(self, estimator: BaseEstimator) -> dict[str, list]:
        """Grid keys addressed to the final step when the estimator is a pipeline."""
        grid = {k: list(v) for k, v in (self.grid or {}).items()}
        if isinstance(estimator, Pipeline):
            step = estimator.steps[-1][0]
            return {f"{step}__{k}": v for k, v in grid.items()}
        return grid

    def _halving(self, estimator: BaseEstimator, grid: dict[str, list], common: dict) -> Any:
        """Successive halving, factor 3, with the number of training samples as the budget
        (at least ``min_resources``, and 100 so each inner fold has both classes)."""
        return HalvingGridSearchCV(estimator, grid, factor=3, min_resources=max(int(self.min_resources), 100),
                                   random_state=self.seed, **common)  # fmt: skip

    def _sampled(self, estimator: BaseEstimator, grid: dict[str, list], common: dict) -> Any:
        """A seeded sample of ``n_iter`` grid points scored at full size (model-specific)."""
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> ClassicalModel:
        """Fit on ``X`` ``[n, features]`` (NaN = unmeasured) and binary ``y``; any search
        runs inside these records, grouped by ``groups`` (patients)."""
        self.check_interface()
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) > 2:
            raise ValueError("Only binary classification is supported; got classes "
                             f"{self.classes_.tolist()}")  # fmt: skip
        y = np.searchsorted(self.classes_, y)  # 0/1 whatever the labels (XGBoost needs 0..k-1)
        X = self.inputs(X)
        self.search_summary_: dict[str, Any] = {}
        if len(self.classes_) == 1:  # nothing to learn: P(class) = 1 (scikit-learn's convention)
            self.estimator_ = None
            return self
        estimator = self.make_estimator()
        search = self._search()
        if search == "none":
            self.estimator_ = self._fit_single(estimator, X, y, groups)
            return self
        cv = StratifiedGroupKFold(n_splits=int(self.inner_folds), shuffle=True, random_state=self.seed)
        grid = self._grid_for(estimator)
        common = dict(scoring="roc_auc", cv=cv, n_jobs=self._jobs(), refit=True)
        if search == "sampled":
            searcher = self._sampled(estimator, grid, common)
        elif search == "halving":
            searcher = self._halving(estimator, grid, common)
        elif search == "grid":
            searcher = GridSearchCV(estimator, grid, **common)
        else:
            searcher = RandomizedSearchCV(
                estimator, grid, n_iter=int(self.n_iter), random_state=self.seed, **common
            )
        searcher.fit(X, y, groups=groups)
        self.estimator_ = searcher.best_estimator_
        best = {k.split("__")[-1]: v for k, v in searcher.best_params_.items()}
        self.search_summary_ = {
            "inner_cv_auc": float(searcher.best_score_),
            "best_params": best,
            "candidates": int(len(searcher.cv_results_["params"])),
            "averaged": len(getattr(searcher, "top_params_", [None])),
        }
        return self

    def _fit_single(self, estimator: BaseEstimator, X: np.ndarray, y: np.ndarray,
                    groups: np.ndarray | None) -> BaseEstimator:  # fmt: skip
        """``estimator`` fitted on the whole training part (``search=none``)."""
        return estimator.fit(X, y)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``[n, 2]`` class probabilities (column 1 = P(MI))."""
        check_is_fitted(self)
        # A writeable copy: libsvm refuses read-only (memory-mapped) inputs.
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", copy=True)
        if self.estimator_ is None:
            return np.ones((len(X), 1))
        return self.estimator_.predict_proba(self.inputs(X))

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """What ``estimator_`` sees: ``X``, with its Q-wave ratios when ``q_ratios``."""
        return with_ratios(X) if self.q_ratios else X

    def input_names(self) -> list[str]:
        """The names of :meth:`inputs`' columns when ``X`` holds the 408 features."""
        return feature_names() + (ratio_names() if self.q_ratios else [])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class of each row."""
        probs = self.predict_proba(X)  # checks fitted before classes_ is read
        return self.classes_[np.argmax(probs, axis=1)]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a SLURM or container limit counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _log_round(itr: int, n_rounds: int, candidates: int, trees: int) -> None:
    log.info("halving round %d/%d: %d candidates x %d trees", itr + 1, n_rounds, candidates, trees)


def _imputed(*steps: BaseEstimator) -> Pipeline:
    """Median imputation (fitted on the training part) before ``steps``."""
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), *steps)


@register_model("xgboost", display="XGBoost")
class XGBoostModel(ClassicalModel):
    """XGBoost tree booster (``hist``); NaN features are routed natively. The default search
    (``sampled``) compares ``n_iter`` full-size candidates; see
    :class:`~ecg_mi.models.halving.TreeCountSearch` for why it replaced halving. Halving spends
    its budget in trees (:class:`~ecg_mi.models.halving.TreeBudgetHalving`, scikit-learn's
    halving computed faster): every grid point starts with ``min_resources`` trees and the
    survivors of each round get 3× more (capped by the grid's largest ``n_estimators``).
    With aggressive elimination and ``min_resources: 2`` the 3,888 non-tree grid points take
    8 rounds: 3888/1296/432/144 candidates at 2 trees, then 48 at 6, 16 at 18, 6 at 54 and the
    last 2 at 162; ``best_params`` reports the trees the winner was scored (and refitted) with."""

    default_search = "sampled"

    def _sampled(self, estimator: BaseEstimator, grid: dict[str, list], common: dict) -> Any:
        return TreeCountSearch(estimator, grid, common["cv"], int(self.n_iter), self.seed, always=self._params(),
                               n_jobs=self._jobs(), average_top=self.average_top,
                               early_stopping_rounds=self.early_stopping_rounds)  # fmt: skip

    def _halving(self, estimator: BaseEstimator, grid: dict[str, list], common: dict) -> Any:
        if RESOURCE not in grid:
            raise ConfigError(f"model.grid needs {RESOURCE} values: the halving budget's range")
        grid = dict(grid)
        max_trees = int(max(grid.pop(RESOURCE)))
        return TreeBudgetHalving(estimator, grid, common["cv"], self.min_resources, max_trees,
                                 n_jobs=self._jobs(), progress=_log_round)  # fmt: skip

    def make_estimator(self) -> BaseEstimator:
        # 64 histogram bins: plenty for ~10^3 records, and each of the search's thousands of
        # small fits builds its histograms ~3x faster than with the default 256.
        return XGBClassifier(
            booster="gbtree", tree_method="hist", max_bin=64, eval_metric="logloss",
            random_state=self.seed, n_jobs=1 if self._search() != "none" else self._jobs(), **self._params(),
        )  # fmt: skip

    def _fit_single(self, estimator: BaseEstimator, X: np.ndarray, y: np.ndarray,
                    groups: np.ndarray | None) -> BaseEstimator:  # fmt: skip
        if self.early_stopping_rounds is None:
            return estimator.fit(X, y)
        return self.fit_early_stopped(estimator, X, y, groups)

    def fit_early_stopped(self, estimator: XGBClassifier, X: np.ndarray, y: np.ndarray,
                          groups: np.ndarray | None) -> XGBClassifier:  # fmt: skip
        """Early stopping inside the training part: one patient-grouped inner fold
        (1/``inner_folds`` of the patients, seeded) is held out, a booster grows on the rest
        until its held-out log loss has not improved for ``early_stopping_rounds`` trees (at
        most ``params.n_estimators``), and the model is refitted on the whole training part with
        the best tree count. The validation part, which a search scores, is never looked at, so
        its AUC stays an honest estimate."""
        cv = StratifiedGroupKFold(n_splits=int(self.inner_folds), shuffle=True, random_state=self.seed)
        fit, held = next(cv.split(X, y, groups))
        probe = clone(estimator).set_params(early_stopping_rounds=int(self.early_stopping_rounds))
        probe.fit(X[fit], y[fit], eval_set=[(X[held], y[held])], verbose=False)
        self.search_summary_ = {"early_stopped_trees": int(probe.best_iteration) + 1}
        return clone(estimator).set_params(n_estimators=int(probe.best_iteration) + 1).fit(X, y)


@register_model("decision_tree", display="Decision Tree")
class DecisionTreeModel(ClassicalModel):
    def make_estimator(self) -> BaseEstimator:
        return _imputed(DecisionTreeClassifier(random_state=self.seed, **self._params()))


@register_model("random_forest", display="Random Forest")
class RandomForestModel(ClassicalModel):
    """A forest; with ``top_features`` (a fraction in (0, 1]) a first forest of the same
    settings, fitted on the training part, ranks the features by impurity importance and the
    model is fitted on the top fraction only."""

    forest = RandomForestClassifier
    selects_features = True

    def make_estimator(self) -> BaseEstimator:
        forest = self.forest(random_state=self.seed, n_jobs=self.n_jobs, **self._params())
        if self.top_features is None:
            return _imputed(forest)
        selector = SelectFromModel(clone(forest), threshold=-np.inf,
                                   max_features=partial(_top_count, fraction=self.top_features))  # fmt: skip
        return _imputed(selector, forest)


def _top_count(X: np.ndarray, fraction: float) -> int:
    """How many of ``X``'s columns a fraction keeps (at least one)."""
    return max(1, round(fraction * X.shape[1]))


@register_model("extra_trees", display="Extra Trees")
class ExtraTreesModel(RandomForestModel):
    """Extremely randomised trees; ``conf/model/extra_trees.yaml`` fits them on the top half of
    the 408 features (``top_features: 0.5``, chosen on validation parts, BENCHMARKS.md "Extra
    Trees": random split thresholds waste splits on the features that carry no MI signal)."""

    forest = ExtraTreesClassifier  # random split thresholds; otherwise built as the forest


@register_model("logistic_regression", display="Logistic Regression")
class LogisticRegressionModel(ClassicalModel):
    def make_estimator(self) -> BaseEstimator:
        params = {"C": 1.0, "max_iter": 5000, **self._params()}
        return _imputed(StandardScaler(), LogisticRegression(random_state=self.seed, **params))


@register_model("svm", display="SVM")
class SVMModel(ClassicalModel):
    """Support vector machine; ``kernel`` ∈ linear, poly, rbf, sigmoid."""

    KERNELS = ("linear", "poly", "rbf", "sigmoid")

    # The base signature repeated on purpose: scikit-learn's get_params reads the parameters
    # from __init__'s signature, so a subclass with one more (kernel) must spell them all.
    def __init__(
        self,
        kernel: str = "linear",
        params: Mapping[str, Any] | None = None,
        grid: Mapping[str, list] | None = None,
        search: str | None = None,
        inner_folds: int = 3,
        n_iter: int = 60,
        min_resources: int = 2,
        seed: int = 0,
        n_jobs: int = 2,
        average_top: int = 1,
        top_features: float | None = None,
        q_ratios: bool = False,
        early_stopping_rounds: int | None = None,
    ) -> None:
        self.kernel = kernel
        super().__init__(params, grid, search, inner_folds, n_iter, min_resources, seed, n_jobs, average_top,
                         top_features, q_ratios, early_stopping_rounds)  # fmt: skip

    def check_interface(self) -> None:
        if self.kernel not in self.KERNELS:
            raise ConfigError(f"model.kernel={self.kernel!r}; choose one of {list(self.KERNELS)}")
        super().check_interface()

    def make_estimator(self) -> BaseEstimator:
        svc = SVC(kernel=self.kernel, probability=True, random_state=self.seed, **self._params())
        return _imputed(StandardScaler(), svc)
