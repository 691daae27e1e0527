"""Uncertainty for AUCs: patient-level bootstrap CIs and DeLong's paired test."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm
from sklearn.metrics import roc_auc_score


def bootstrap_auc_ci(
    labels: np.ndarray, probs: np.ndarray, patients: np.ndarray, n_resamples: int = 1000, seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:  # fmt: skip
    """AUC and its percentile bootstrap CI, resampling *patients* with replacement.

    A patient's records stay together (they are not independent). Resamples that draw a
    single class are redrawn-free skipped; at least ``n_resamples`` // 2 must be usable.
    Returns ``(auc, low, high)``.
    """
    labels, probs, patients = np.asarray(labels), np.asarray(probs), np.asarray(patients)
    auc = float(roc_auc_score(labels, probs))
    members = patient_members(patients)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_resamples):
        chosen = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[k] for k in chosen])
        if labels[idx].min() == labels[idx].max():
            continue
        stats.append(roc_auc_score(labels[idx], probs[idx]))
    if len(stats) < n_resamples // 2:
        return auc, float("nan"), float("nan")
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return auc, float(low), float(high)


def patient_members(patients: np.ndarray) -> list[np.ndarray]:
    """Record indices of each distinct patient (in sorted patient order)."""
    _, inverse = np.unique(np.asarray(patients), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.cumsum(np.bincount(inverse))[:-1])


def bootstrap_mean_ci(
    values: np.ndarray, patients: np.ndarray, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values``, resampling *patients* (a patient's
    records stay together, as for the AUC CIs). ``(nan, nan)`` for fewer than 2 patients."""
    values = np.asarray(values, dtype=float)
    members = patient_members(patients)
    if len(members) < 2:
        return float("nan"), float("nan")
    sums = np.array([values[m].sum() for m in members])
    counts = np.array([len(m) for m in members])
    chosen = np.random.default_rng(seed).integers(0, len(members), (n_resamples, len(members)))
    means = sums[chosen].sum(axis=1) / counts[chosen].sum(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def _midrank(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j < len(x) and sorted_x[j] == sorted_x[i]:
            j += 1
        ranks[i:j] = 0.5 * (i + j - 1) + 1
        i = j
    out = np.empty(len(x))
    out[order] = ranks
    return out


def delong_covariance(labels: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs ``[k]`` and their DeLong covariance ``[k, k]`` for ``predictions`` ``[k, n]``
    scored on the same records (fast midrank algorithm of Sun & Xu 2014)."""
    labels = np.asarray(labels).astype(bool)
    predictions = np.atleast_2d(np.asarray(predictions, dtype=float))
    pos, neg = predictions[:, labels], predictions[:, ~labels]
    m, n = pos.shape[1], neg.shape[1]
    tx = np.stack([_midrank(p) for p in pos])
    ty = np.stack([_midrank(p) for p in neg])
    tz = np.stack([_midrank(p) for p in np.concatenate([pos, neg], axis=1)])
    aucs = tz[:, :m].sum(axis=1) / m / n - (m + 1.0) / 2.0 / n
    v01 = (tz[:, :m] - tx) / n
    v10 = 1.0 - (tz[:, m:] - ty) / m
    cov = np.atleast_2d(np.cov(v01)) / m + np.atleast_2d(np.cov(v10)) / n
    return aucs, cov


def delong_test(
    labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray
) -> tuple[float, float, float]:
    """Paired DeLong test of AUC(a) = AUC(b) on the same records: ``(auc_a, auc_b, p)``."""
    aucs, cov = delong_covariance(labels, np.vstack([probs_a, probs_b]))
    variance = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    if variance <= 1e-15:
        return float(aucs[0]), float(aucs[1]), 1.0
    z = (aucs[0] - aucs[1]) / np.sqrt(variance)
    return float(aucs[0]), float(aucs[1]), float(2 * norm.sf(abs(z)))
