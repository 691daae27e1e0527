"""The median-beat input (ecg_mi.features.beats): geometry, robustness, counts, maps on the strip."""

import numpy as np
import pytest
from test_features import GEOMETRY, LEAD_GAINS, known_record

from ecg_mi.features.beats import (
    beat_length,
    beat_offsets,
    maps_on_strips,
    median_beat,
    median_beats,
    spread_over_beats,
)

FS = 500.0
R_MS = 40  # the known record's R peak, ms after QRS onset


def test_beat_is_centred_on_the_r_peak_with_its_amplitude():
    found = median_beat(known_record(FS), FS)
    pre, _ = beat_offsets(FS)
    assert found.beat.shape == (12, beat_length(FS)) == (12, 400) and found.found
    lead = int(np.argmax(np.abs(LEAD_GAINS)))
    assert abs(int(np.argmax(np.abs(found.beat[lead]))) - pre) <= 2
    assert found.beat[lead, pre] == pytest.approx(GEOMETRY["r"] * LEAD_GAINS[lead], abs=0.05)


def test_st_elevation_shows_at_its_place_in_the_beat():
    pre, _ = beat_offsets(FS)
    st = pre + int((GEOMETRY["qrs_ms"] + 40 - R_MS) * FS / 1000)  # 40 ms into the ST plateau
    raised = median_beat(known_record(FS, st_mv=0.2), FS).beat[:, st]
    flat = median_beat(known_record(FS), FS).beat[:, st]
    np.testing.assert_allclose(raised - flat, 0.2 * LEAD_GAINS, atol=0.05)


def test_one_disturbed_beat_leaves_the_median_beat_unchanged():
    clean = known_record(FS)
    found = median_beat(clean, FS)
    disturbed = clean.copy()
    r = int(found.r_peaks[3])
    disturbed[:, r + 50 : r + 150] += 1.5  # a 1.5 mV artefact across one beat's ST-T
    np.testing.assert_allclose(median_beat(disturbed, FS).beat, found.beat, atol=0.05)


def test_flat_strips_get_a_zero_beat_and_are_counted():
    strips = np.stack([known_record(FS), np.zeros((12, 5000), np.float32)])
    beats, n_without = median_beats(strips, FS)
    assert beats.shape == (2, 12, 400) and n_without == 1
    assert not beats[1].any() and beats[0].any()


def test_a_map_over_the_beat_lies_on_every_beat_of_the_strip():
    pre, post = beat_offsets(100.0)
    beat_map = np.linspace(0, 1, pre + post)
    strip = spread_over_beats(beat_map, np.array([100, 400]), 1000, 100.0)
    assert strip.shape == (1000,) and not strip[: 100 - pre].any() and not strip[400 + post :].any()
    np.testing.assert_array_equal(strip[100 - pre : 100 + post], beat_map)
    np.testing.assert_array_equal(strip[400 - pre : 400 + post], beat_map)


def test_overlapping_beats_keep_the_larger_value():
    pre, post = beat_offsets(100.0)
    beat_map = np.linspace(0, 1, pre + post)
    strip = spread_over_beats(beat_map, np.array([100, 150]), 1000, 100.0)
    overlap = slice(150 - pre, 100 + post)
    np.testing.assert_array_equal(strip[overlap], np.maximum(beat_map[50:], beat_map[: pre + post - 50]))


def test_maps_land_on_the_beats_each_strip_was_averaged_over():
    strip = known_record(FS)
    pre, post = beat_offsets(FS)
    beat_map = np.zeros(pre + post)
    beat_map[pre] = 1.0  # the R peak of the median beat
    [laid] = maps_on_strips(beat_map[None], strip[None], FS)
    np.testing.assert_array_equal(np.flatnonzero(laid), median_beat(strip, FS).r_peaks)
