import numpy as np
import pytest

from ecg_mi.data.resample import check_sample_rate, resample
from ecg_mi.errors import ConfigError


def _power(x: np.ndarray) -> float:
    return float(np.mean(x[..., 100:-100] ** 2))  # ignore edge effects


@pytest.mark.parametrize(("fs_out", "length"), [(500, 5000), (250, 2500), (100, 1000)])
def test_resample_lengths(fs_out, length):
    assert resample(np.zeros((12, 5000), np.float32), 500, fs_out).shape == (12, length)


def test_decimation_keeps_passband_and_removes_aliases():
    t = np.arange(5000) / 500.0
    slow = np.sin(2 * np.pi * 5 * t)[None]  # 5 Hz: well below the new 50 Hz Nyquist
    fast = np.sin(2 * np.pi * 70 * t)[None]  # 70 Hz: would alias to 30 Hz without filtering
    assert _power(resample(slow, 500, 100)) == pytest.approx(_power(slow), rel=0.02)
    assert _power(resample(fast, 500, 100)) < 1e-4 * _power(fast)  # > 40 dB attenuation


def test_resample_returns_float32():
    assert resample(np.zeros((12, 5000)), 500, 250).dtype == np.float32


def test_unsupported_rate_is_a_config_error():
    with pytest.raises(ConfigError, match="data.sample_rate=360 is not supported"):
        check_sample_rate(360)
