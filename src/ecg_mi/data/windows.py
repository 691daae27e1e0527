"""The window/length policy: how a Record of any rate and length becomes model input.

Models are trained on 10 s strips at one rate (PTB-XL: 100 or 500 Hz). A Record is
first resampled as a whole to the model's rate (:func:`ecg_mi.data.resample.resample`,
anti-aliased; 1000, 600, 257, 240 Hz ... all work), then cut:

* exactly ``window_s``: one window.
* shorter by at most ``pad_tolerance_s`` (default 20 ms, i.e. 10 samples at 500 Hz, what
  rounding in a cart or a rate conversion loses): one window, the last sample repeated
  (edge padding: zeros would add a step the network never saw).
* shorter than that: refused — InputError naming the record and its duration.
* longer: consecutive non-overlapping windows from the start. The remainder after the last
  full window is dropped when it is shorter than half a window; otherwise one more window
  is added that ends at the last sample (overlapping the one before), so no more than
  half a window of signal is ever ignored. A model averages P(MI) over the windows.
"""

from __future__ import annotations

import numpy as np

from ecg_mi.data.record import Record
from ecg_mi.data.resample import resample
from ecg_mi.errors import InputError

DEFAULT_WINDOW_S = 10.0
DEFAULT_PAD_TOLERANCE_S = 0.02


def window_starts(n_samples: int, window: int) -> list[int]:
    """Start indices of the windows of ``window`` samples over ``n_samples`` (policy above).

    ``n_samples`` must be at least ``window``.
    """
    n_full = n_samples // window
    starts = [i * window for i in range(n_full)]
    remainder = n_samples - n_full * window
    if remainder * 2 >= window:
        starts.append(n_samples - window)
    return starts


def model_windows(
    record: Record,
    fs_model: float,
    window_s: float = DEFAULT_WINDOW_S,
    pad_tolerance_s: float = DEFAULT_PAD_TOLERANCE_S,
) -> np.ndarray:
    """Cut ``record`` into model windows at ``fs_model`` Hz.

    Args:
        record: any Record (signal ``[12, L]`` in mV at ``record.fs`` Hz).
        fs_model: the rate the model was trained at (Hz).
        window_s: window length in seconds (the model's input length / fs).
        pad_tolerance_s: how much shorter than ``window_s`` a record may be and still be
            edge-padded to one window (seconds).

    Returns:
        float32 ``[W, 12, round(window_s * fs_model)]`` in mV, W ≥ 1.

    Raises:
        InputError: the record is shorter than ``window_s - pad_tolerance_s``.
    """
    window = int(round(window_s * fs_model))
    signal = resample(record.signal, float(record.fs), float(fs_model))
    n_samples = signal.shape[-1]
    if n_samples < window:
        short_s = (window - n_samples) / fs_model
        if short_s > pad_tolerance_s + 1e-9:
            raise InputError(
                f"{record.record_id}: recording lasts {record.duration_s:.2f} s; the model needs "
                f"at least {window_s:g} s (tolerance {pad_tolerance_s * 1000:g} ms)"
            )
        signal = np.pad(signal, ((0, 0), (0, window - n_samples)), mode="edge")
        n_samples = window
    starts = window_starts(n_samples, window)
    return np.ascontiguousarray(
        np.stack([signal[:, s : s + window] for s in starts]), dtype=np.float32
    )
