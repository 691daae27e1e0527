"""Window/length policy: resampling to the model rate, 10 s windows, remainder, padding."""

import numpy as np
import pytest

from ecg_mi.data.record import Record
from ecg_mi.data.windows import model_windows, window_starts
from ecg_mi.errors import InputError


def sine_record(seconds: float, fs: float, hz: float = 1.5) -> Record:
    """12 identical leads of a ``hz`` sine (1 mV) lasting ``seconds`` at ``fs``."""
    t = np.arange(int(round(seconds * fs))) / fs
    signal = np.tile(np.sin(2 * np.pi * hz * t), (12, 1)).astype(np.float32)
    return Record(record_id="sine", signal=signal, fs=fs)


def test_exact_ten_seconds_at_the_model_rate_is_one_unchanged_window():
    record = sine_record(10, 500)
    windows = model_windows(record, 500)
    assert windows.shape == (1, 12, 5000) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows[0], record.signal)


@pytest.mark.parametrize("fs_in", [1000, 600, 257, 250, 240])
def test_any_input_rate_is_resampled_to_the_model_rate(fs_in):
    windows = model_windows(sine_record(10, fs_in), 500)
    t = np.arange(5000) / 500
    assert windows.shape == (1, 12, 5000)
    # away from the edges the resampled sine is the analytic sine at 500 Hz
    np.testing.assert_allclose(
        windows[0, 0, 250:-250], np.sin(2 * np.pi * 1.5 * t)[250:-250], atol=0.02
    )


def test_long_record_gives_consecutive_windows_plus_a_tail_window():
    windows = model_windows(sine_record(38.4, 1000), 500)  # PTB Diagnostic length
    assert windows.shape == (4, 12, 5000)


def test_window_starts_cover_a_long_remainder_with_an_end_aligned_window():
    assert window_starts(19200, 5000) == [0, 5000, 10000, 14200]


def test_window_starts_drop_a_short_remainder():
    assert window_starts(5500, 5000) == [0]  # Philips 11 s strip: 1 s dropped


def test_a_few_missing_samples_are_edge_padded():
    record = sine_record(9.99, 500)  # 5 samples short, within 20 ms
    windows = model_windows(record, 500)
    assert windows.shape == (1, 12, 5000)
    assert np.all(windows[0, :, -5:] == record.signal[:, -1:])


def test_too_short_record_is_refused_with_its_duration():
    with pytest.raises(
        InputError, match=r"sine: recording lasts 8\.00 s; the model needs at least 10 s"
    ):
        model_windows(sine_record(8, 500), 500)


def test_window_length_follows_the_model_rate():
    assert model_windows(sine_record(10, 500), 100).shape == (1, 12, 1000)
