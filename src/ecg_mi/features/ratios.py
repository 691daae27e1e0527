"""Q-wave ratios per lead, computed from the 408 features (``model.q_ratios``).

The Q wave of an old infarct is judged relative to the rest of the QRS — deeper than a quarter
of the R wave, a large share of the complex — and trees, which split one feature at a time,
cannot divide one feature by another. These 24 columns (2 per lead, lead-major like the 408)
hand them the ratios:

| feature | unit | definition |
|---|---|---|
| lead{N}_Q_R_ratio | 1 | abs(Q_amp_mean) / max(R_amp_mean, 0.05 mV) |
| lead{N}_Q_area_share | 1 | abs(inteQ_mean) / max(abs(inteQ_mean) + inteR_mean, 0.001 mV·ms) |

NaN where a feature they divide is NaN (the models impute them as the 408). Chosen on the
validation parts: BENCHMARKS.md, "Extra Trees".
"""

from __future__ import annotations

import numpy as np

from ecg_mi.features.extract import FEATURES, N_LEADS

RATIOS = ("Q_R_ratio", "Q_area_share")
N_FEATURES = N_LEADS * len(FEATURES)  # the 408 the ratios are computed from
MIN_R_MV = 0.05  # the floor T_R_ratio_mean uses: a lead without an R wave divides by this
MIN_AREA_MV_MS = 1e-3  # a QRS without Q and R area gets a share of 0, not 0 / 0


def ratio_names() -> list[str]:
    """The 24 names, lead-major: ``lead1_Q_R_ratio``, ``lead1_Q_area_share``, … ``lead12_…``."""
    return [f"lead{n}_{r}" for n in range(1, N_LEADS + 1) for r in RATIOS]


def _per_lead(X: np.ndarray, feature: str) -> np.ndarray:
    """``[n, 12]``: one of the 34 features in every lead."""
    return X[:, FEATURES.index(feature) :: len(FEATURES)]


def with_ratios(X: np.ndarray) -> np.ndarray:
    """``[n, 408]`` features (:func:`~ecg_mi.features.feature_names` order) → ``[n, 432]``:
    the 408, then the 24 ratios of :func:`ratio_names` (float64)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != N_FEATURES:
        raise ValueError(f"Q-wave ratios need the {N_FEATURES} features in feature_names() order; "
                         f"got {X.shape[-1] if X.ndim else 0} columns")  # fmt: skip
    q_amp = np.abs(_per_lead(X, "Q_amp_mean"))
    q_area = np.abs(_per_lead(X, "inteQ_mean"))
    ratio = q_amp / np.maximum(_per_lead(X, "R_amp_mean"), MIN_R_MV)
    share = q_area / np.maximum(q_area + _per_lead(X, "inteR_mean"), MIN_AREA_MV_MS)
    ratios = np.stack([ratio, share], axis=2).reshape(len(X), -1)  # lead-major, as ratio_names()
    return np.concatenate([X, ratios], axis=1)


__all__ = ["RATIOS", "ratio_names", "with_ratios"]
