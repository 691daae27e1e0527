"""The model's input contract (ecg_mi.representation): fitting, transforming, its saved state."""

import numpy as np
import pytest

from ecg_mi.errors import ConfigError, EcgMiError
from ecg_mi.representation import (
    FEATURE_CLIP,
    STATE_FORMAT,
    Derived,
    Representation,
    fit_scaling,
    lead_statistics,
)


def scaler(features: np.ndarray) -> Representation:
    """A hybrid's representation with its feature scaling fitted on ``features``."""
    return Representation("window+features", "window", "scaled").fit(100, np.zeros((1, 12, 10)), np.arange(1), features)


# ---- the features' robust scaling (a hybrid's second input)


def test_scaling_centres_on_the_median_in_interquartile_ranges():
    features = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    center, scale = fit_scaling(features)
    assert center.tolist() == [2.0] and scale.tolist() == [2.0]
    np.testing.assert_allclose(scaler(features).scale_features(features)[:, 0], [-1, -0.5, 0, 0.5, 1])


def test_unmeasured_features_sit_at_the_median():
    center, scale = fit_scaling(np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]]))
    assert center.tolist() == [2.0, 0.0] and scale[1] == 1.0  # never measured: 0 and 1
    fitted = scaler(np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]]))
    assert fitted.scale_features(np.array([[np.nan, np.nan]])).tolist() == [[0.0, 0.0]]


def test_a_constant_feature_keeps_unit_scale():
    center, scale = fit_scaling(np.full((4, 1), 7.0))
    assert scale.tolist() == [1.0] and scaler(np.full((4, 1), 7.0)).scale_features(np.array([[8.0]])).tolist() == [[1.0]]


def test_wild_values_are_clipped():
    scaled = scaler(np.array([[-1.0], [0.0], [1.0]])).scale_features(np.array([[1e9], [-1e9]]))
    assert scaled.dtype == np.float32 and scaled[:, 0].tolist() == [FEATURE_CLIP, -FEATURE_CLIP]


# ---- the signal's standardisation


def test_lead_statistics_stream_the_chosen_rows():
    rng = np.random.default_rng(0)
    signals = rng.normal(size=(600, 12, 50)) * np.arange(1, 13)[None, :, None] + 3.0
    rows = np.arange(0, 600, 2)
    mean, std = lead_statistics(signals, rows)
    np.testing.assert_allclose(mean, signals[rows].mean(axis=(0, 2)))
    np.testing.assert_allclose(std, signals[rows].std(axis=(0, 2)))


def test_normalised_signal_has_zero_mean_and_unit_std_on_the_training_part():
    rng = np.random.default_rng(1)
    signals = (rng.normal(size=(40, 12, 100)) * 2.5 + 1.0).astype(np.float32)
    fitted = Representation("window").fit(100, signals, np.arange(40))
    x = fitted.normalise_signal(signals)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 2)), 1, atol=1e-4)


def test_without_normalisation_the_signal_passes_unchanged():
    signals = np.random.default_rng(2).normal(size=(5, 12, 30)).astype(np.float32)
    fitted = Representation("window", normalize=False).fit(100, signals, np.arange(5))
    np.testing.assert_array_equal(fitted.normalise_signal(signals), signals)


# ---- transforming windows


def test_transform_gives_each_representation_its_inputs(synthetic_windows):
    x, fs = synthetic_windows
    beat = Representation("median_beat", "median_beat").fit(fs, Derived(x, fs).median_beats, np.arange(len(x)))
    assert [a.shape for a in beat.transform(x)] == [(len(x), 12, beat.input_length(fs))]
    features = Representation("features", None, "raw").fit(fs)
    [raw] = features.transform(x)
    assert raw.shape == (len(x), 408) and np.isfinite(raw).any()


def test_derived_inputs_are_computed_once_for_every_reader(synthetic_windows, monkeypatch):
    import ecg_mi.features as features

    calls = []
    original = features.signal_features
    monkeypatch.setattr(features, "signal_features", lambda *a: calls.append(1) or original(*a))
    x, fs = synthetic_windows
    derived = Derived(x, fs)
    raw = Representation("features", None, "raw").fit(fs)
    hybrid = scaler(derived.features)
    calls.clear()
    raw.inputs(derived), hybrid.inputs(derived), raw.inputs(derived)
    assert calls == []  # computed once when first read above, then shared


# ---- what is valid, and the state that travels in a package


@pytest.mark.parametrize(("signal", "features", "match"), [
    ("strip", None, "representation.signal='strip'"), ("window", "log", "representation.features='log'"),
    (None, None, "neither a signal nor features"), (None, "scaled", "a feature model reads them raw"),
])  # fmt: skip
def test_an_impossible_representation_is_a_config_error(signal, features, match):
    with pytest.raises(ConfigError, match=match):
        Representation("bad", signal, features)


def test_an_unfitted_representation_refuses_to_transform():
    with pytest.raises(EcgMiError, match="not fitted"):
        Representation("window").transform(np.zeros((1, 12, 1000), np.float32))


def test_the_state_round_trips_and_transforms_identically(synthetic_windows):
    import json

    x, fs = synthetic_windows
    fitted = Representation("window+features", "window", "scaled").fit(fs, x, np.arange(len(x)), Derived(x, fs).features)
    again = Representation.from_state(json.loads(json.dumps(fitted.state())))
    assert again == fitted
    for a, b in zip(again.transform(x), fitted.transform(x), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_state_of_an_unknown_format_is_refused_naming_it():
    state = {**Representation("window").fit(100, np.zeros((1, 12, 5)), np.arange(1)).state(), "format": STATE_FORMAT + 1}
    with pytest.raises(EcgMiError, match=f"format {STATE_FORMAT + 1}; this ecg-mi reads formats 1, {STATE_FORMAT}"):
        Representation.from_state(state)


# ---- one implementation of the input contract

#: Where each step of turning a record into model inputs may be coded: nowhere else in src/.
CONTRACT_HOMES = {
    "median_beat": {"features/beats.py"}, "median_beats": {"features/beats.py", "representation.py"},
    "lead_mean": {"representation.py"}, "lead_std": {"representation.py"},
    "feature_center": {"representation.py"}, "feature_scale": {"representation.py"},
}  # fmt: skip


def names_used(path):
    """Every name and attribute a module reads or calls (not keyword arguments or strings)."""
    import ast

    tree = ast.parse(path.read_text())
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    }


def test_normalisation_and_beats_are_coded_in_one_module_each():
    from pathlib import Path

    import ecg_mi

    root = Path(ecg_mi.__file__).parent
    strays = sorted(f"{name} in {path.relative_to(root)}" for path in root.rglob("*.py")
                    for name in names_used(path) & set(CONTRACT_HOMES)
                    if str(path.relative_to(root)) not in CONTRACT_HOMES[name])  # fmt: skip
    assert not strays, "the input contract is coded outside its module: " + ", ".join(strays)
