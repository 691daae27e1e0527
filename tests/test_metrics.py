import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from ecg_mi import metrics


def test_auc_matches_scikit_learn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probs = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    assert metrics.auc(probs, labels) == pytest.approx(roc_auc_score(labels, probs))


def test_auc_is_nan_with_one_class():
    assert np.isnan(metrics.auc(np.array([0.1, 0.9]), np.array([1, 1])))


def test_f1_uses_greater_or_equal():
    probs, labels = np.array([0.0, 1.0, 1.0, 0.0]), np.array([0, 1, 1, 1])
    assert metrics.f1_at(probs, labels, 1.0) == pytest.approx(f1_score(labels, probs >= 1.0))


def test_max_f1_threshold_maximises_f1():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    probs = np.clip(labels * 0.25 + rng.random(300) * 0.75, 0, 1)
    best = metrics.max_f1_threshold(probs, labels)
    scan = max(f1_score(labels, probs >= t) for t in np.unique(probs))
    assert metrics.f1_at(probs, labels, best) == pytest.approx(scan)
