"""Median-beat input: a 10 s strip reduced to its typical beat (issue 18).

Every beat the delineator of the features finds (:func:`ecg_mi.features.delineate.detect_beats`)
is cut from the 0.5 Hz high-passed strip on ``[R − 250 ms, R + 550 ms)`` — the P wave's end
through the T wave's end at usual heart rates — minus its own PR-segment baseline (the median
of 60–20 ms before QRS onset, as every feature amplitude), and the sample-wise median over the
beats is the input: ``[12, 80]`` at 100 Hz. The median removes noise and ectopic beats and
aligns Q waves and ST segments, the morphology MI changes, at fixed positions, which a network
trained on a few hundred records otherwise has to learn to find anywhere in 10 s.

A strip without two usable beats (flat, or too noisy for the detector) gets an all-zero beat:
the network scores it like any other input, and :func:`median_beats` counts such records so the
caller can log them (suspicious input is counted, never silent).

A map over the beat (Grad-CAM) is shown on the strip by :func:`spread_over_beats`: the value at
offset ``t`` of the beat belongs to sample ``R + t`` of every beat that made the median.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_mi.data.store import SignalStore
from ecg_mi.features.delineate import _ms, bandpass, detect_beats
from ecg_mi.utils.io import atomic_path

PRE_R_MS = 250.0  # window start before the R peak (ms)
POST_R_MS = 550.0  # window end after the R peak (ms)
MIN_BEATS = 2
BEATS_VERSION = "1"  # bump on any change of the recipe: it keys the median-beat cache


@dataclass(frozen=True)
class MedianBeat:
    """The median beat ``[12, T]`` (mV) of one strip and the R peaks (samples) it came from."""

    beat: np.ndarray
    r_peaks: np.ndarray

    @property
    def found(self) -> bool:
        """Whether the strip had at least :data:`MIN_BEATS` usable beats."""
        return len(self.r_peaks) >= MIN_BEATS


def beat_offsets(fs: float) -> tuple[int, int]:
    """Samples before and after the R peak of the beat window at ``fs`` Hz."""
    return _ms(fs, PRE_R_MS), _ms(fs, POST_R_MS)


def beat_length(fs: float) -> int:
    """Samples of a median beat at ``fs`` Hz (80 at 100 Hz, 400 at 500 Hz)."""
    pre, post = beat_offsets(fs)
    return pre + post


def median_beat(signal: np.ndarray, fs: float) -> MedianBeat:
    """The median beat of a ``[12, L]`` mV strip at ``fs`` Hz (see the module docstring)."""
    signal = np.asarray(signal, dtype=np.float64)
    pre, post = beat_offsets(fs)
    length = signal.shape[1]
    beats = detect_beats(signal, fs)
    pr_start, pr_stop = _ms(fs, 60), _ms(fs, 20)
    usable = [(r, on) for r, on in zip(beats.r_peak, beats.qrs_on, strict=True)
              if r - pre >= 0 and r + post <= length and on - pr_start >= 0]  # fmt: skip
    if len(usable) < MIN_BEATS:
        return MedianBeat(np.zeros((signal.shape[0], pre + post), np.float32), np.zeros(0, int))
    highpassed = bandpass(signal, fs, 0.5, 0.45 * fs - 1e-6)
    cut = [highpassed[:, r - pre : r + post]
           - np.median(highpassed[:, on - pr_start : on - pr_stop + 1], axis=1, keepdims=True)
           for r, on in usable]  # fmt: skip
    return MedianBeat(np.median(cut, axis=0).astype(np.float32), np.array([r for r, _ in usable]))


def median_beats(signals: np.ndarray, fs: float) -> tuple[np.ndarray, int]:
    """Median beats ``[N, 12, T]`` float32 of strips ``[N, 12, L]`` (mV), and how many strips
    had no usable beats (all-zero rows)."""
    found = [median_beat(s, fs) for s in signals]
    return np.stack([m.beat for m in found]), sum(not m.found for m in found)


def load_or_compute_median_beats(store: SignalStore, cache_dir: str | Path) -> tuple[np.ndarray, int]:
    """:func:`median_beats` of every record of ``store`` (its row order), cached under the
    store's key (which covers the records, their files and the rate), so the folds and seeds
    of a sweep compute them once; the count of strips without beats is that of all-zero rows."""
    path = Path(cache_dir) / "beats" / f"{store.path.stem}-median-beat-v{BEATS_VERSION}.npy"
    if path.is_file():
        beats = np.load(path)
        return beats, int((~beats.any(axis=(1, 2))).sum())
    beats, n_without = median_beats(store.signals, store.sample_rate)
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, beats)
    return beats, n_without


def spread_over_beats(beat_map: np.ndarray, r_peaks: np.ndarray, length: int, fs: float) -> np.ndarray:
    """A map over the median beat ``[..., T]`` laid on the strip ``[..., length]``: each
    sample takes the largest value any beat window covering it gives (0 outside beats)."""
    pre, post = beat_offsets(fs)
    out = np.zeros((*beat_map.shape[:-1], length), dtype=beat_map.dtype)
    for r in r_peaks:
        window = out[..., r - pre : r + post]
        np.maximum(window, beat_map, out=window)
    return out


def maps_on_strips(beat_maps: np.ndarray, strips: np.ndarray, fs: float) -> np.ndarray:
    """Maps over each strip's median beat ``[N, ..., T]`` laid on the strips ``[N, 12, L]``
    (:func:`spread_over_beats` with the beats each strip's median was taken over)."""
    return np.stack([spread_over_beats(m, median_beat(s, fs).r_peaks, s.shape[-1], fs)
                     for m, s in zip(beat_maps, strips, strict=True)])  # fmt: skip
