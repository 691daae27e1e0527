"""Delineation and the 408 features: known geometry, NaN path, cache, real records."""

import numpy as np
import pytest

from ecg_mi.data.sources import PtbxlSource, SyntheticSource
from ecg_mi.data.store import load_or_build
from ecg_mi.features import FEATURES, feature_names, record_features
from ecg_mi.features import cache as feature_cache
from ecg_mi.features.delineate import detect_beats

LEAD_GAINS = np.array([1.0, 0.9, 0.5, -0.8, 0.6, 0.7, 0.4, 0.8, 1.2, 1.1, 1.0, 0.9])
GEOMETRY = {
    "q": -0.15,
    "r": 1.0,
    "s": -0.3,
    "t": 0.3,
    "qrs_ms": 90,
    "st_ms": 80,
    "t_ms": 160,
    "rr_ms": 1000,
}


def triangle(u: np.ndarray, start: float, stop: float, peak: float) -> np.ndarray:
    """A triangle wave of height ``peak`` from ``start`` to ``stop`` (ms) on time axis ``u``."""
    half = (stop - start) / 2
    return np.where((u >= start) & (u <= stop), peak * (1 - np.abs(u - start - half) / half), 0)


def known_record(fs: float = 500.0, st_mv: float = 0.0, seed: int = 0) -> np.ndarray:
    """Beats of exactly known geometry (times in ms from QRS onset):
    Q triangle 0–20 (depth q), R triangle 20–60 (peak r at 40), S triangle 60–90 (depth s),
    ST plateau at ``st_mv`` 90–170, T half-sine 170–330 (peak t) on the plateau, return to
    baseline over 40 ms; onsets every ``rr_ms``; lead k = beat × LEAD_GAINS[k] + noise."""
    g = GEOMETRY
    t_ms = np.arange(int(10 * fs)) * 1000.0 / fs
    beat = np.zeros_like(t_ms)
    for onset in np.arange(300.0, 10_000.0 - 500, g["rr_ms"]):
        u = t_ms - onset
        beat += (
            triangle(u, 0, 20, g["q"]) + triangle(u, 20, 60, g["r"]) + triangle(u, 60, 90, g["s"])
        )
        t_on = g["qrs_ms"] + g["st_ms"]
        plateau = (u >= g["qrs_ms"]) & (u < t_on + g["t_ms"])
        beat += np.where(plateau, st_mv, 0)
        beat += np.where(
            (u >= t_on + g["t_ms"]) & (u < t_on + g["t_ms"] + 40),
            st_mv * (1 - (u - t_on - g["t_ms"]) / 40),
            0,
        )
        in_t = (u >= t_on) & (u < t_on + g["t_ms"])
        beat += np.where(in_t, g["t"] * np.sin(np.pi * (u - t_on) / g["t_ms"]), 0)
    noise = np.random.default_rng(seed).normal(0, 0.005, size=(12, t_ms.size))
    return (LEAD_GAINS[:, None] * beat[None, :] + noise).astype(np.float32)


def features_of(signal: np.ndarray, fs: float) -> dict[str, float]:
    return dict(zip(feature_names(), record_features(signal, fs), strict=True))


def test_names_are_408_lead_major_with_the_papers_examples():
    names = feature_names()
    assert len(FEATURES) == 34 and len(names) == 408 == len(set(names))
    assert names[0] == "lead1_R_amp_max" and names[-1] == "lead12_T_R_ratio_mean"
    assert {"lead11_inte_ST", "lead5_inteT_mean", "lead5_inteR_mean"} <= set(names)


@pytest.mark.parametrize("fs", [500.0, 250.0])
def test_beats_are_found_once_each(fs):
    beats = detect_beats(known_record(fs), fs)
    onsets_ms = beats.qrs_on * 1000 / fs
    expected = np.arange(300.0, 9500, 1000)
    assert len(beats) == len(expected)
    assert np.median(np.abs(onsets_ms - expected)) <= 10


@pytest.mark.parametrize("fs", [500.0, 250.0])
def test_intervals_within_10_ms_on_known_geometry(fs):
    f = features_of(known_record(fs), fs)
    g = GEOMETRY
    expected = {
        "QRS_dur_mean": g["qrs_ms"], "RR_mean": g["rr_ms"], "T_dur_mean": g["t_ms"],
        "ST_dur_mean": g["st_ms"], "QT_mean": g["qrs_ms"] + g["st_ms"] + g["t_ms"],
    }  # fmt: skip
    errors = {k: abs(f[f"lead1_{k}"] - v) for k, v in expected.items()}
    assert all(e <= 10 for e in errors.values()), errors


def test_amplitudes_within_0_05_mv_on_known_geometry():
    f = features_of(known_record(500.0), 500.0)
    g = GEOMETRY
    for lead, gain in ((1, 1.0), (10, 1.1)):
        assert f[f"lead{lead}_R_amp_mean"] == pytest.approx(g["r"] * gain, abs=0.05)
        assert f[f"lead{lead}_S_amp_mean"] == pytest.approx(g["s"] * gain, abs=0.05)
        assert f[f"lead{lead}_Q_amp_mean"] == pytest.approx(g["q"] * gain, abs=0.05)
        assert f[f"lead{lead}_T_amp_mean"] == pytest.approx(g["t"] * gain, abs=0.05)


def test_inverted_lead_has_negative_t_and_small_r():
    f = features_of(known_record(500.0), 500.0)  # lead 4 (aVR) is the beat × -0.8
    assert f["lead4_T_amp_mean"] == pytest.approx(-0.3 * 0.8, abs=0.05)
    assert f["lead4_R_amp_mean"] == pytest.approx(
        0.3 * 0.8, abs=0.05
    )  # the inverted S is the largest upward wave


def test_st_elevation_is_measured():
    flat, raised = (
        features_of(known_record(500.0), 500.0),
        features_of(known_record(500.0, st_mv=0.2), 500.0),
    )
    assert flat["lead1_ST_level_mean"] == pytest.approx(0.0, abs=0.05)
    assert raised["lead1_ST_level_mean"] == pytest.approx(0.2, abs=0.05)
    assert raised["lead1_inte_ST"] > flat["lead1_inte_ST"] + 5  # mV·ms


@pytest.mark.parametrize(
    "signal", [np.zeros((12, 5000), np.float32), np.ones((12, 5000), np.float32)]
)
def test_record_without_beats_gives_nan_not_a_crash(signal):
    values = record_features(signal, 500.0)
    assert values.shape == (408,) and np.isnan(values).all()


def test_features_are_cached_once(tmp_path, monkeypatch):
    source = SyntheticSource(n_records=20)
    calls = []
    real = feature_cache.record_features
    monkeypatch.setattr(
        feature_cache, "record_features", lambda s, fs: calls.append(1) or real(s, fs)
    )
    first = feature_cache.load_or_compute_features(source, source.index(), 100, tmp_path)
    second = feature_cache.load_or_compute_features(source, source.index(), 100, tmp_path)
    assert len(calls) == 20 and first.values.shape == (20, 408)
    np.testing.assert_array_equal(first.values, second.values)


def test_features_separate_synthetic_mi_from_controls(tmp_path):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    source = SyntheticSource(n_records=200)
    table = feature_cache.load_or_compute_features(source, source.index(), 500, tmp_path).frame()
    labels = source.index().set_index("record_id").loc[table.index, "label"]
    model = make_pipeline(
        SimpleImputer(), StandardScaler(), LogisticRegression(C=0.05, max_iter=2000)
    )
    assert cross_val_score(model, table.to_numpy(), labels, cv=3, scoring="roc_auc").mean() > 0.75


@pytest.mark.integration
def test_real_ptbxl_records_have_physiological_intervals(shared_ptbxl):
    source = PtbxlSource(shared_ptbxl)
    rows = source.index().iloc[::40]  # 43 records across the id range
    values = np.stack(
        [record_features(source.read(r, 100).signal, 100.0) for _, r in rows.iterrows()]
    )
    names = feature_names()
    failed = np.isnan(values).all(axis=1).mean()
    qrs = values[:, names.index("lead1_QRS_dur_mean")]
    qt = values[:, names.index("lead2_QT_mean")]
    assert failed <= 0.02
    assert np.mean((qrs >= 60) & (qrs <= 160)) >= 0.95
    assert np.nanmedian(qt) == pytest.approx(390, abs=60)


def test_feature_workers_give_the_in_process_features(tmp_path, monkeypatch):
    source = SyntheticSource(n_records=24)
    store = load_or_build(source, source.index(), 100, tmp_path)
    monkeypatch.setattr(feature_cache, "CHUNK", 8)  # three chunks over two worker processes
    monkeypatch.setenv("ECG_MI_FEATURE_WORKERS", "2")
    assert feature_cache.feature_workers(24) == 2
    pooled = feature_cache.compute_features(store.path, 24, 100.0)
    monkeypatch.setenv("ECG_MI_FEATURE_WORKERS", "1")
    np.testing.assert_array_equal(pooled, feature_cache.compute_features(store.path, 24, 100.0))


def test_few_records_are_featurised_in_process():
    assert feature_cache.feature_workers(feature_cache.CHUNK) == 1
