"""Calibration scores and calibrators (ecg_mi.calibration): known answers, the choice rule,
and the monotone maps that keep ranks and F1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecg_mi.calibration import (
    apply_calibration,
    brier_score,
    choose_method,
    cross_fitted,
    ece,
    fit_calibration,
    fit_isotonic,
    fit_platt,
    prior_shift,
)
from ecg_mi.metrics import auc, f1_at, max_f1_threshold


def _miscalibrated(kind: str, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, 0/1 labels and patient ids (2 records each) whose true P(MI) is
    ``kind``: "platt" (overconfident and shifted on the logit scale), "step" (a step in p,
    which no logistic map follows) or "none" (the probabilities themselves)."""
    rng = np.random.default_rng(seed)
    if kind == "step":
        probs = rng.uniform(0, 1, n)
        truth = np.where(probs < 0.5, 0.1, 0.8)
    else:
        truth = rng.uniform(0.02, 0.98, n)
        logit = np.log(truth / (1 - truth))
        probs = truth if kind == "none" else 1 / (1 + np.exp(-(3 * logit + 1)))
    labels = (rng.random(n) < truth).astype(int)
    return probs, labels, np.arange(n) // 2


def test_brier_and_ece_known_answers():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([0.1, 0.3, 0.6, 1.0])
    assert brier_score(labels, probs) == pytest.approx((0.01 + 0.09 + 0.16 + 0.0) / 4)
    # 10 bins: 0.1 | 0.3 | 0.6 | 1.0 each alone -> |0.1-0|, |0.3-0|, |0.6-1|, |1-1|, equal weights
    assert ece(labels, probs) == pytest.approx((0.1 + 0.3 + 0.4 + 0.0) / 4)
    assert ece(labels, probs, n_bins=2) == pytest.approx(0.5 * abs(0.2 - 0) + 0.5 * abs(0.8 - 1))


@pytest.mark.parametrize("kind, expected", [("platt", "platt"), ("step", "isotonic"), ("none", "none")])
def test_auto_chooses_the_map_that_fits_the_miscalibration(kind, expected):
    probs, labels, groups = _miscalibrated(kind)
    calibrator, briers = fit_calibration(probs, labels, groups, "auto", seed=0)
    assert calibrator["method"] == expected
    assert set(briers) == {"none", "platt", "isotonic"}


def test_platt_recovers_a_logistic_distortion():
    probs, labels, _ = _miscalibrated("platt", n=20_000)
    calibrator = fit_platt(probs, labels)
    # probs = sigmoid(3 logit(truth) + 1)  =>  truth = sigmoid(logit(probs) / 3 − 1/3)
    assert calibrator["a"] == pytest.approx(1 / 3, abs=0.03)
    assert calibrator["b"] == pytest.approx(-1 / 3, abs=0.05)


def test_calibration_lowers_the_brier_score_of_miscalibrated_probabilities():
    probs, labels, groups = _miscalibrated("platt")
    calibrator, _ = fit_calibration(probs, labels, groups, "auto")
    held_probs, held_labels, _ = _miscalibrated("platt", seed=1)  # new records, same distortion
    calibrated = apply_calibration(calibrator, held_probs)
    assert brier_score(held_labels, calibrated) < brier_score(held_labels, held_probs) - 0.01
    assert ece(held_labels, calibrated) < ece(held_labels, held_probs) / 2


def test_too_few_records_of_a_class_keep_the_raw_probabilities():
    probs, labels = np.array([0.2, 0.4, 0.6, 0.9]), np.array([0, 0, 0, 1])
    calibrator, briers = fit_calibration(probs, labels, np.arange(4), "auto")
    assert calibrator == {"method": "none"} and briers == {}


def test_ties_go_to_the_simpler_map():
    assert choose_method({"none": 0.2, "platt": 0.2, "isotonic": 0.2}) == "none"
    assert choose_method({"none": 0.3, "platt": 0.2, "isotonic": 0.2}) == "platt"
    assert choose_method({}) == "none"


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrated_maps_are_strictly_increasing(method):
    probs, labels, groups = _miscalibrated("step")
    calibrator, _ = fit_calibration(probs, labels, groups, method)
    grid = np.linspace(0, 1, 10_001)
    mapped = apply_calibration(calibrator, grid)
    assert (np.diff(mapped) > 0).all() and mapped.min() >= 0 and mapped.max() <= 1


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_f1_at_the_mapped_threshold_is_unchanged(method):
    val_probs, val_labels, groups = _miscalibrated("step", seed=0)
    test_probs, test_labels, _ = _miscalibrated("step", seed=1)
    threshold = max_f1_threshold(val_probs, val_labels)
    calibrator, _ = fit_calibration(val_probs, val_labels, groups, method)
    mapped = float(apply_calibration(calibrator, np.array([threshold]))[0])
    assert f1_at(apply_calibration(calibrator, test_probs), test_labels, mapped) == f1_at(
        test_probs, test_labels, threshold
    )


def test_calibrators_are_plain_json():
    probs, labels, _ = _miscalibrated("step", n=200)
    for calibrator in (fit_platt(probs, labels), fit_isotonic(probs, labels)):
        again = json.loads(json.dumps(calibrator))
        np.testing.assert_array_equal(apply_calibration(again, probs), apply_calibration(calibrator, probs))


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="auto, platt, isotonic, none"):
        fit_calibration(np.array([0.5]), np.array([1]), np.array([0]), "beta")


def test_cross_fitted_isotonic_does_not_learn_the_labels_it_is_scored_against():
    # On labels unrelated to P(MI), an isotonic map applied to the records it was fitted on
    # pools exactly their discordant pairs into ties once rounded (to 6 digits here, as
    # predictions.csv was written before it kept every digit; an ensemble's mean of such maps is
    # not even rank-preserving): its AUC rises above the raw one. Cross-fitted, no record's own
    # label shapes its value.
    in_sample, held_out = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        probs, labels = rng.uniform(size=200), (rng.uniform(size=200) < 0.3).astype(int)
        raw = auc(probs, labels)
        fitted = apply_calibration(fit_isotonic(probs, labels), probs)
        crossed = cross_fitted(probs, labels, np.arange(200), ["isotonic"], seed=0)["isotonic"]
        in_sample.append(auc(np.round(fitted, 6), labels) - raw)
        held_out.append(auc(np.round(crossed, 6), labels) - raw)
    assert np.mean(in_sample) > 0.02 and np.mean(held_out) < 0.005


# ---- a site's prevalence


def test_prior_shift_is_the_identity_at_the_same_prevalence():
    probs = np.linspace(0, 1, 11)
    np.testing.assert_allclose(prior_shift(probs, 0.3, 0.3), probs)


def test_prior_shift_moves_the_odds_by_the_prevalences_odds_ratio():
    shifted = prior_shift(np.array([0.5]), 1 / 3, 0.15)[0]
    assert shifted / (1 - shifted) == pytest.approx((0.15 / 0.85) / 0.5)


def test_prior_shift_recalibrates_a_sample_drawn_at_a_lower_prevalence():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=60_000)
    probs = 1 / (1 + np.exp(-(2 * scores - np.log(2))))  # calibrated: P(MI | score)
    labels = (rng.random(60_000) < probs).astype(int)
    source = labels.mean()  # ≈ 0.36
    keep = (labels == 0) | (rng.random(60_000) < 0.15 / 0.85 * (1 - source) / source)  # MI thinned to 15 %
    labels, probs = labels[keep], probs[keep]
    before, after = ece(labels, probs), ece(labels, prior_shift(probs, source, labels.mean()))
    assert before > 0.05 and after < 0.01
