"""How much Grad-CAM attention falls on the ST segments (beyond the paper).

For a record, the ST mask marks J point → T onset of every beat (global J from the QRS
offset, T onset as the median over leads of the per-lead tangent-method onsets; beats
without a T onset use J → J + 80 ms), from :mod:`ecg_mi.features.delineate`. The ratio
``share of Grad-CAM mass inside the mask / share of time inside the mask`` is 1 when the
attention ignores the ST segment, above 1 when it concentrates there.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import mannwhitneyu

from ecg_mi.features.delineate import _ms, bandpass, delineate_t, detect_beats
from ecg_mi.stats import bootstrap_mean_ci


def st_mask(signal: np.ndarray, fs: float) -> np.ndarray:
    """Boolean ``[L]``: True inside an ST segment of ``signal`` (``[12, L]`` mV)."""
    mask = np.zeros(signal.shape[1], dtype=bool)
    beats = detect_beats(np.asarray(signal, dtype=np.float64), fs)
    if len(beats) == 0:
        return mask
    smooth = bandpass(np.asarray(signal, dtype=np.float64), fs, 0.5, 40.0)
    base = np.stack([np.median(smooth[:, max(on - _ms(fs, 60), 0) : max(on - _ms(fs, 20), 1)], axis=1)
                     for on in beats.qrs_on], axis=1)  # fmt: skip
    onsets = delineate_t(smooth, base, beats).onset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # beats where no lead has a T onset
        t_on = np.nanmedian(onsets, axis=0)
    for j, t in zip(beats.qrs_off, t_on, strict=True):
        end = int(round(t)) if np.isfinite(t) and t > j else j + _ms(fs, 80)
        mask[j : min(end, mask.size)] = True
    return mask


def st_ratio(cam: np.ndarray, mask: np.ndarray) -> float:
    """(Grad-CAM mass in the mask / total mass) / (mask time / total time); NaN if undefined."""
    total, share = cam.sum(), mask.mean()
    if total <= 0 or share == 0:
        return float("nan")
    return float(cam[mask].sum() / total / share)


def compare_groups(
    ratios: np.ndarray, labels: np.ndarray, patients: np.ndarray, n_resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Mean ratio in MI and non-MI records with 95 % CIs from a *patient* bootstrap (as the
    AUC CIs: a patient's records are not independent) and a Mann–Whitney p."""
    ratios, labels, patients = np.asarray(ratios, float), np.asarray(labels), np.asarray(patients)
    ok = np.isfinite(ratios)
    out: dict[str, float] = {}
    for name, value in (("mi", 1), ("non_mi", 0)):
        chosen = ok & (labels == value)
        values = ratios[chosen]
        out[f"st_ratio_{name}"] = float(values.mean()) if values.size else float("nan")
        if values.size > 1:
            out[f"st_ratio_{name}_low"], out[f"st_ratio_{name}_high"] = bootstrap_mean_ci(
                values, patients[chosen], n_resamples, seed
            )
        out[f"n_{name}"] = float(values.size)
    a, b = ratios[ok & (labels == 1)], ratios[ok & (labels == 0)]
    out["st_ratio_p_mannwhitney"] = (
        float(mannwhitneyu(a, b).pvalue) if a.size and b.size else float("nan")
    )
    return out
