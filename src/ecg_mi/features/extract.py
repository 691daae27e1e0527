"""The 34 clinical features per lead (408 per record) from the delineation.

Every feature is named ``lead{N}_{feature}`` with N = 1..12 in the order I, II, III, aVR,
aVL, aVF, V1–V6. Per beat and lead the quantities below are measured against the beat's
PR-segment baseline on the 0.5 Hz high-passed signal (slopes and T boundaries on the
0.5–40 Hz signal), then summarised over the record's beats (``_mean``/``_max``/``_min``/
``_std``). Beats whose windows run off the strip are dropped; a record with fewer than two
usable beats gets NaN everywhere (counted by the caller, never a crash).

| # | feature | unit | definition |
|---|---|---|---|
| 1–4 | R_amp_max, R_amp_min, R_amp_mean, R_amp_std | mV | largest positive QRS deflection (0 if none) over beats |
| 5 | inteR_mean | mV·ms | area of the positive part of the QRS (R-wave area) |
| 6 | R_dur_mean | ms | width of the positive deflection around the R peak |
| 7–9 | S_amp_max, S_amp_min, S_amp_mean | mV | deepest negative deflection after the R peak (≤ 0) |
| 10 | inteS_mean | mV·ms | area of the negative part after the R peak (≤ 0) |
| 11 | Q_amp_mean | mV | deepest negative deflection before the R peak (≤ 0) |
| 12 | Q_dur_mean | ms | duration of the initial negative deflection (0 if the QRS starts upward) |
| 13 | inteQ_mean | mV·ms | area of the negative part before the R peak (≤ 0) |
| 14–16 | T_amp_max, T_amp_min, T_amp_mean | mV | signed T-wave peak deviation |
| 17 | inteT_mean | mV·ms | signed T-wave area, T onset → T end |
| 18 | T_dur_mean | ms | T onset → T end (tangent method); NaN for flat T (< 0.03 mV) |
| 19–22 | ST_level_mean, ST_level_max, ST_level_min, ST_level_std | mV | level at J + 60 ms |
| 23 | ST_slope_mean | mV/s | slope from J to J + 80 ms |
| 24 | inte_ST | mV·ms | ST-segment area, J → T onset (J → J + 80 ms when T onset is unknown), mean over beats |
| 25 | ST_dur_mean | ms | J → T onset |
| 26–27 | RR_mean, RR_std | ms | R–R intervals (global, the same in every lead) |
| 28 | QRS_dur_mean | ms | global QRS onset → offset (the same in every lead) |
| 29 | QT_mean | ms | QRS onset → this lead's T end |
| 30 | QTc_mean | ms | Bazett: QT / sqrt(RR in s) |
| 31 | RS_ratio_mean | 1 | R / (R + abs(S)) |
| 32 | QRS_area_mean | mV·ms | net QRS area |
| 33 | QRS_p2p_mean | mV | QRS peak-to-peak amplitude |
| 34 | T_R_ratio_mean | 1 | T amplitude / max(R amplitude, 0.05 mV) |
"""

from __future__ import annotations

import warnings

import numpy as np

from ecg_mi.features.delineate import Beats, _ms, bandpass, delineate_t, detect_beats

FEATURE_VERSION = "1"  # bump on any change: it keys the feature cache

FEATURES: tuple[str, ...] = (
    "R_amp_max", "R_amp_min", "R_amp_mean", "R_amp_std", "inteR_mean", "R_dur_mean",
    "S_amp_max", "S_amp_min", "S_amp_mean", "inteS_mean",
    "Q_amp_mean", "Q_dur_mean", "inteQ_mean",
    "T_amp_max", "T_amp_min", "T_amp_mean", "inteT_mean", "T_dur_mean",
    "ST_level_mean", "ST_level_max", "ST_level_min", "ST_level_std", "ST_slope_mean", "inte_ST", "ST_dur_mean",
    "RR_mean", "RR_std", "QRS_dur_mean", "QT_mean", "QTc_mean",
    "RS_ratio_mean", "QRS_area_mean", "QRS_p2p_mean", "T_R_ratio_mean",
)  # fmt: skip
N_LEADS = 12


def feature_names() -> list[str]:
    """The 408 names, lead-major: ``lead1_R_amp_max`` … ``lead12_T_R_ratio_mean``."""
    return [f"lead{n}_{f}" for n in range(1, N_LEADS + 1) for f in FEATURES]


def _usable(beats: Beats, length: int) -> Beats:
    fs = beats.fs
    keep = (beats.qrs_on - _ms(fs, 60) >= 0) & (beats.qrs_off + _ms(fs, 100) < length)
    return Beats(beats.r_peak[keep], beats.qrs_on[keep], beats.qrs_off[keep], fs)


def per_beat_measurements(signal: np.ndarray, fs: float) -> dict[str, np.ndarray] | None:
    """Every per-beat quantity ``[12, n_beats]`` (units as in the module table), or None."""
    signal = np.asarray(signal, dtype=np.float64)
    length = signal.shape[1]
    beats = _usable(detect_beats(signal, fs), length)
    n = len(beats)
    if n < 2:
        return None
    highpassed = bandpass(signal, fs, 0.5, 0.45 * fs - 1e-6) if fs > 2 else signal
    smooth = bandpass(signal, fs, 0.5, 40.0)
    base = np.stack(
        [
            np.median(highpassed[:, on - _ms(fs, 60) : on - _ms(fs, 20) + 1], axis=1)
            for on in beats.qrs_on
        ],
        axis=1,
    )
    t = delineate_t(smooth, base, beats)
    to_ms = 1000.0 / fs
    m = {k: np.full((N_LEADS, n), np.nan) for k in (
        "R", "S", "Q", "inteR", "inteS", "inteQ", "R_dur", "Q_dur", "QRS_area", "QRS_p2p",
        "ST_level", "ST_slope", "inte_ST", "ST_dur", "inteT", "QT")}  # fmt: skip
    leads = np.arange(N_LEADS)
    for b, (on, off) in enumerate(zip(beats.qrs_on, beats.qrs_off, strict=True)):
        seg = highpassed[:, on : off + 1] - base[:, b : b + 1]
        r_idx = np.argmax(seg, axis=1)
        positive, negative = np.clip(seg, 0, None), np.clip(seg, None, 0)
        idx = np.arange(seg.shape[1])[None, :]
        before, after = idx < r_idx[:, None], idx > r_idx[:, None]
        m["R"][:, b] = np.clip(seg[leads, r_idx], 0, None)
        m["S"][:, b] = np.where(after, negative, 0).min(axis=1)
        m["Q"][:, b] = np.where(before, negative, 0).min(axis=1)
        m["inteR"][:, b] = positive.sum(axis=1) * to_ms
        m["inteS"][:, b] = np.where(after, negative, 0).sum(axis=1) * to_ms
        m["inteQ"][:, b] = np.where(before, negative, 0).sum(axis=1) * to_ms
        m["QRS_area"][:, b] = seg.sum(axis=1) * to_ms
        m["QRS_p2p"][:, b] = seg.max(axis=1) - seg.min(axis=1)
        for lead in leads:
            row, r = seg[lead], r_idx[lead]
            if row[r] > 0:
                left = np.flatnonzero(row[:r] <= 0)
                right = np.flatnonzero(row[r:] <= 0)
                start = left[-1] + 1 if left.size else 0
                stop = r + right[0] if right.size else row.size
                m["R_dur"][lead, b] = (stop - start) * to_ms
            else:
                m["R_dur"][lead, b] = 0.0
            first_up = np.flatnonzero(row[:r] > 0)
            q_end = first_up[0] if first_up.size else r
            m["Q_dur"][lead, b] = (
                q_end * to_ms if row[0] < 0 or m["Q"][lead, b] < -0.02 and q_end > 0 else 0.0
            )
        j60, j80 = off + _ms(fs, 60), off + _ms(fs, 80)
        m["ST_level"][:, b] = highpassed[:, j60] - base[:, b]
        m["ST_slope"][:, b] = (smooth[:, j80] - smooth[:, off]) / 0.08
        t_on = t.onset[:, b]
        st_end = np.where(np.isfinite(t_on), np.round(np.nan_to_num(t_on)), j80).astype(int)
        st_end = np.maximum(st_end, off + 1)
        for lead in leads:
            m["inte_ST"][lead, b] = (
                highpassed[lead, off : st_end[lead]] - base[lead, b]
            ).sum() * to_ms
            if np.isfinite(t.onset[lead, b]) and np.isfinite(t.end[lead, b]):
                a, z = int(round(t.onset[lead, b])), int(round(t.end[lead, b]))
                m["inteT"][lead, b] = (highpassed[lead, a : z + 1] - base[lead, b]).sum() * to_ms
        m["ST_dur"][:, b] = (t_on - off) * to_ms
        m["QT"][:, b] = (t.end[:, b] - on) * to_ms
    rr = np.diff(beats.r_peak) * to_ms
    m["RR"] = np.broadcast_to(rr, (N_LEADS, rr.size))
    m["QRS_dur"] = np.broadcast_to((beats.qrs_off - beats.qrs_on) * to_ms, (N_LEADS, n))
    m["T_amp"] = t.amplitude
    m["T_dur"] = (t.end - t.onset) * to_ms
    rr_s = np.append(rr, rr[-1] if rr.size else np.nan) / 1000.0
    m["QTc"] = m["QT"] / np.sqrt(rr_s)[None, :]
    m["RS_ratio"] = m["R"] / np.maximum(m["R"] - m["S"], 1e-6)
    m["T_R_ratio"] = m["T_amp"] / np.maximum(m["R"], 0.05)
    return m


def signal_features(x: np.ndarray, fs: float) -> np.ndarray:
    """The 408 features ``[N, 408]`` (NaN where unmeasurable) of signals ``x`` ``[N, 12, L]``
    mV at ``fs`` Hz, as the feature cache computes them for training."""
    return np.stack([record_features(np.asarray(signal), float(fs)) for signal in x])


def record_features(signal: np.ndarray, fs: float) -> np.ndarray:
    """The 408-vector of one ``[12, L]`` mV record (lead-major, :func:`feature_names` order)."""
    m = per_beat_measurements(signal, fs)
    if m is None:
        return np.full(N_LEADS * len(FEATURES), np.nan, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN beats of a flat lead
        summary = {
            "R_amp_max": np.nanmax(m["R"], 1), "R_amp_min": np.nanmin(m["R"], 1),
            "R_amp_mean": np.nanmean(m["R"], 1), "R_amp_std": np.nanstd(m["R"], 1),
            "inteR_mean": np.nanmean(m["inteR"], 1), "R_dur_mean": np.nanmean(m["R_dur"], 1),
            "S_amp_max": np.nanmax(m["S"], 1), "S_amp_min": np.nanmin(m["S"], 1),
            "S_amp_mean": np.nanmean(m["S"], 1), "inteS_mean": np.nanmean(m["inteS"], 1),
            "Q_amp_mean": np.nanmean(m["Q"], 1), "Q_dur_mean": np.nanmean(m["Q_dur"], 1),
            "inteQ_mean": np.nanmean(m["inteQ"], 1),
            "T_amp_max": np.nanmax(m["T_amp"], 1), "T_amp_min": np.nanmin(m["T_amp"], 1),
            "T_amp_mean": np.nanmean(m["T_amp"], 1), "inteT_mean": np.nanmean(m["inteT"], 1),
            "T_dur_mean": np.nanmean(m["T_dur"], 1),
            "ST_level_mean": np.nanmean(m["ST_level"], 1), "ST_level_max": np.nanmax(m["ST_level"], 1),
            "ST_level_min": np.nanmin(m["ST_level"], 1), "ST_level_std": np.nanstd(m["ST_level"], 1),
            "ST_slope_mean": np.nanmean(m["ST_slope"], 1), "inte_ST": np.nanmean(m["inte_ST"], 1),
            "ST_dur_mean": np.nanmean(m["ST_dur"], 1),
            "RR_mean": np.nanmean(m["RR"], 1), "RR_std": np.nanstd(m["RR"], 1),
            "QRS_dur_mean": np.nanmean(m["QRS_dur"], 1), "QT_mean": np.nanmean(m["QT"], 1),
            "QTc_mean": np.nanmean(m["QTc"], 1), "RS_ratio_mean": np.nanmean(m["RS_ratio"], 1),
            "QRS_area_mean": np.nanmean(m["QRS_area"], 1), "QRS_p2p_mean": np.nanmean(m["QRS_p2p"], 1),
            "T_R_ratio_mean": np.nanmean(m["T_R_ratio"], 1),
        }  # fmt: skip
    table = np.stack([summary[f] for f in FEATURES], axis=1)  # [12, 34]
    return table.reshape(-1).astype(np.float32)
