"""Anti-aliased sample-rate conversion of ``[..., L]`` signals (scipy.signal)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ecg_mi.errors import ConfigError

SUPPORTED_RATES = (500, 250, 100)


def check_sample_rate(rate: float) -> int:
    """Return ``rate`` as int if ecg-mi supports it, else raise ConfigError."""
    if rate not in SUPPORTED_RATES:
        raise ConfigError(
            f"data.sample_rate={rate!r} is not supported; choose one of {list(SUPPORTED_RATES)} Hz"
        )
    return int(rate)


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Convert ``x`` (last axis = time) from ``fs_in`` to ``fs_out`` Hz, float32 out.

    Integer down-factors use zero-phase FIR decimation (``scipy.signal.decimate``), which
    low-passes below the new Nyquist before dropping samples; other ratios use polyphase
    resampling (``resample_poly``), also anti-aliased. Output length is ``L·fs_out/fs_in``.
    """
    if fs_in == fs_out:
        return x.astype(np.float32, copy=False)
    from scipy import signal as sps  # here: scoring at the model's own rate never loads it (~0.5 s)

    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    if ratio.numerator == 1:
        y = sps.decimate(x, ratio.denominator, ftype="fir", zero_phase=True, axis=-1)
    else:
        y = sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
    return np.ascontiguousarray(y, dtype=np.float32)
