"""Distillation from a feature model (ecg_mi.targets.teacher): cross-fitted, patient-grouped soft
targets, checked settings."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import model_config
from ecg_mi.errors import ConfigError
from ecg_mi.models import create_model
from ecg_mi.targets.teacher import check_teacher, cross_fitted_probabilities, soft_targets


def _twins(n_patients: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise features with random labels, each patient's record present twice (two ECGs):
    only a teacher that saw a record's twin can predict its label."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_patients, 8))
    labels = rng.integers(0, 2, n_patients)
    twice = np.repeat(np.arange(n_patients), 2)
    return features[twice], labels[twice], twice


def test_no_soft_target_comes_from_a_teacher_that_saw_its_patient():
    features, labels, patients = _twins()
    probabilities = cross_fitted_probabilities(create_model("decision_tree", seed=0), features, labels, patients, 5)
    assert roc_auc_score(labels, probabilities) < 0.7  # a tree that had seen the twin scores 1.0
    # The same teacher fitted on every row memorises them: what cross-fitting prevents.
    seen = create_model("decision_tree", seed=0).fit(features, labels).predict_proba(features)[:, 1]
    assert roc_auc_score(labels, seen) == 1.0


def test_soft_target_mixes_label_and_teacher_by_weight():
    np.testing.assert_allclose(soft_targets(np.array([1, 0]), np.array([0.2, 0.9]), 0.5), [0.6, 0.45])
    np.testing.assert_allclose(soft_targets(np.array([1, 0]), np.array([0.2, 0.9]), 1.0), [0.2, 0.9])


def test_teacher_settings_are_checked():
    assert check_teacher(None) is None
    checked = check_teacher({"estimator": model_config("random_forest", n_estimators=7)})
    assert (checked["weight"], checked["folds"]) == (0.5, 5)
    assert checked["model"].model_name == "random_forest" and checked["model"].params == {"n_estimators": 7}
    with pytest.raises(ConfigError, match="known"):
        check_teacher({"estimator": model_config("forest")})
    with pytest.raises(ConfigError, match="a teacher is a feature model"):
        check_teacher({"estimator": model_config("resnet")})
    with pytest.raises(ConfigError, match="a model config"):
        check_teacher({"estimator": "random_forest"})
    with pytest.raises(ConfigError, match=r"weight=0.0 must be in \(0, 1\]"):
        check_teacher({"estimator": model_config("random_forest"), "weight": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        check_teacher({"estimator": model_config("random_forest"), "alpha": 0.5})
    with pytest.raises(ConfigError, match="data.teacher.estimator.params"):
        check_teacher({"estimator": model_config("random_forest", n_trees=10)})


def test_teacher_is_fitted_with_its_settings():
    features, labels, patients = _twins()
    stumps = cross_fitted_probabilities(check_teacher({"estimator": model_config("decision_tree", max_depth=1)})["model"],
                                        features, labels, patients, 5)  # fmt: skip
    full = cross_fitted_probabilities(check_teacher({"estimator": model_config("decision_tree")})["model"],
                                      features, labels, patients, 5)  # fmt: skip
    # Grown out, a tree's leaves are pure (P(MI) 0 or 1); a one-split tree's leaves are mixed.
    assert set(np.unique(full)) <= {0.0, 1.0} and not set(np.unique(stumps)) <= {0.0, 1.0}


def test_too_few_patients_for_the_teacher_folds_is_a_config_error():
    features, labels, patients = _twins(n_patients=3)
    with pytest.raises(ConfigError, match="only 3 patients"):
        cross_fitted_probabilities(create_model("decision_tree", seed=0), features, labels, patients, 5)
