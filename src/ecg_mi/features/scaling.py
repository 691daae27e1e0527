"""Robust scaling of the 408 clinical features for a network that reads them (a hybrid).

Fitted on the training part only and packaged with the model: each feature minus its
training median, over its training interquartile range, clipped to ±:data:`CLIP`; a feature
that could not be measured (NaN) is set to the median, i.e. 0 after scaling.
"""

from __future__ import annotations

import warnings

import numpy as np

CLIP = 5.0  # in interquartile ranges: one wild measurement must not dominate a batch


def fit_scaling(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(center, scale)`` ``[F]`` of ``features`` ``[N, F]`` (NaN = unmeasured): the median
    and the interquartile range per feature; 0 and 1 where a feature is never measured or
    constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        q1, center, q3 = np.nanpercentile(np.asarray(features, dtype=np.float64), [25, 50, 75], axis=0)
    spread = q3 - q1
    scale = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    return np.where(np.isfinite(center), center, 0.0), scale


def apply_scaling(features: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``features`` ``[N, F]`` scaled by :func:`fit_scaling`'s ``(center, scale)``, float32,
    unmeasured features at 0."""
    x = np.asarray(features, dtype=np.float64)
    z = (np.where(np.isfinite(x), x, center) - center) / scale
    return np.clip(z, -CLIP, CLIP).astype(np.float32)
