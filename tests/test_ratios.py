"""Q-wave ratios computed from the 408 features (ecg_mi.features.ratios)."""

import numpy as np
import pytest

from ecg_mi.features import FEATURES, feature_names
from ecg_mi.features.ratios import MIN_R_MV, ratio_names, with_ratios


def _features(**per_lead: float) -> np.ndarray:
    """One record ``[1, 408]``: each named feature set to its value in every lead, others 0."""
    X = np.zeros((1, len(feature_names())))
    for name, value in per_lead.items():
        X[0, FEATURES.index(name) :: len(FEATURES)] = value
    return X


def test_ratio_names_are_lead_major_two_per_lead():
    names = ratio_names()
    assert len(names) == 24 and names[:3] == ["lead1_Q_R_ratio", "lead1_Q_area_share", "lead2_Q_R_ratio"]
    assert names[-1] == "lead12_Q_area_share"


def test_ratios_follow_the_408_unchanged():
    X = np.random.default_rng(0).normal(size=(5, 408))
    out = with_ratios(X)
    assert out.shape == (5, 432)
    np.testing.assert_array_equal(out[:, :408], X)


def test_q_r_ratio_and_area_share_of_known_waves():
    # Q -0.3 mV against R 1.2 mV; Q area -6 mV·ms against R area 18 mV·ms.
    out = with_ratios(_features(Q_amp_mean=-0.3, R_amp_mean=1.2, inteQ_mean=-6.0, inteR_mean=18.0))
    ratios = out[0, 408:].reshape(12, 2)
    np.testing.assert_allclose(ratios[:, 0], 0.25)
    np.testing.assert_allclose(ratios[:, 1], 0.25)


def test_a_lead_without_r_wave_divides_by_the_floor_not_zero():
    out = with_ratios(_features(Q_amp_mean=-0.2, R_amp_mean=0.0))
    np.testing.assert_allclose(out[0, 408::2], 0.2 / MIN_R_MV)
    assert np.all(out[0, 409::2] == 0)  # neither Q nor R area: a share of 0, not 0 / 0


def test_an_unmeasured_feature_gives_an_unmeasured_ratio():
    X = _features(Q_amp_mean=-0.1, R_amp_mean=1.0)
    X[0, FEATURES.index("R_amp_mean")] = np.nan  # lead I's R wave
    ratios = with_ratios(X)[0, 408:]
    assert np.isnan(ratios[0]) and np.isfinite(ratios[2:]).all()


def test_a_matrix_other_than_the_408_is_refused():
    with pytest.raises(ValueError, match="need the 408 features"):
        with_ratios(np.zeros((3, 20)))
