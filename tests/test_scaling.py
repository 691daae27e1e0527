"""Robust scaling of the clinical features a hybrid network reads (ecg_mi.features.scaling)."""

import numpy as np

from ecg_mi.features.scaling import CLIP, apply_scaling, fit_scaling


def test_scaling_centres_on_the_median_in_interquartile_ranges():
    features = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    center, scale = fit_scaling(features)
    assert center.tolist() == [2.0] and scale.tolist() == [2.0]
    np.testing.assert_allclose(apply_scaling(features, center, scale)[:, 0], [-1, -0.5, 0, 0.5, 1])


def test_unmeasured_features_sit_at_the_median():
    center, scale = fit_scaling(np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]]))
    assert center.tolist() == [2.0, 0.0] and scale[1] == 1.0  # never measured: 0 and 1
    assert apply_scaling(np.array([[np.nan, np.nan]]), center, scale).tolist() == [[0.0, 0.0]]


def test_a_constant_feature_keeps_unit_scale():
    center, scale = fit_scaling(np.full((4, 1), 7.0))
    assert scale.tolist() == [1.0] and apply_scaling(np.array([[8.0]]), center, scale).tolist() == [[1.0]]


def test_wild_values_are_clipped():
    center, scale = np.zeros(1), np.ones(1)
    scaled = apply_scaling(np.array([[1e9], [-1e9]]), center, scale)
    assert scaled.dtype == np.float32 and scaled[:, 0].tolist() == [CLIP, -CLIP]
