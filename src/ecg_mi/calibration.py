"""Calibration of P(MI): the scores (Brier, ECE, reliability curve) and the calibrators.

**Scores** (probability units): the Brier score, the expected calibration error over
``n_bins`` equal-width bins of P(MI) and the reliability curve behind it. The train route,
the sweep report and external validation all use these functions.

**Calibrators** are fitted by the train route on the *validation* part only (the test fold
never sees them) and travel with the packaged model as plain JSON-able dicts (no pickled
estimator):

* ``{"method": "none"}`` — the raw probability;
* ``{"method": "platt", "a": a, "b": b}`` — ``sigmoid(a · logit(p) + b)``, fitted by
  maximum likelihood with Platt's (1999) smoothed targets, which keep ``a, b`` finite when
  the validation part is separable; ``a > 0`` (else the calibrator is rejected);
* ``{"method": "isotonic", "x": [...], "y": [...], "blend": ε}`` — scikit-learn's
  ``IsotonicRegression(out_of_bounds="clip")`` breakpoints, interpolated linearly, blended
  as ``(1 − ε)·iso(p) + ε·p`` with ε = 1e-6 so the map is *strictly* increasing.

Both maps are strictly increasing, so ranks (AUC) are unchanged and a threshold ``t`` on the
raw P(MI) maps to ``calibrate(t)`` with exactly the same decisions (F1 unchanged).

**Choice** (``calibration: auto``): Platt, isotonic and "none" are compared by the Brier
score of *cross-fitted* predictions inside the validation part — ``k``-fold (``k ≤ 5``),
stratified by label and grouped by patient; each fold is calibrated by a map fitted on the
other folds. In-sample, isotonic regression would always win (it fits the validation labels
themselves); out-of-fold its overfitting costs it. The Brier score (a proper scoring rule)
is used rather than the log-loss, which an isotonic 0 or 1 makes infinite. The lowest
out-of-fold Brier wins; ties go to the simpler map (none, then Platt, then isotonic), and
"none" is kept when the validation part has fewer than two records of either class. The
winner is refitted on the whole validation part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Equal-width bins of P(MI) for the ECE and the reliability curve.
N_CALIBRATION_BINS = 10
#: The config's choices (``calibration:`` in conf/train.yaml).
METHODS = ("auto", "platt", "isotonic", "none")
#: Simplest first: the order in which ties are broken.
CANDIDATES = ("none", "platt", "isotonic")
#: Weight of the identity in the isotonic map, making it strictly increasing (probability units).
ISOTONIC_BLEND = 1e-6
#: Inner folds of the cross-fit that chooses the method.
SELECTION_FOLDS = 5
# Probabilities are clipped this far from 0/1 before the logit (float32 outputs never get closer).
_LOGIT_EPS = 1e-12

Calibrator = dict[str, Any]
IDENTITY: Calibrator = {"method": "none"}


# ---------------------------------------------------------------------------- scores


def reliability_table(labels: np.ndarray, probs: np.ndarray, n_bins: int = N_CALIBRATION_BINS) -> pd.DataFrame:
    """Reliability curve: per equal-width bin of P(MI) over [0, 1] (last bin closed), the
    records in it, their mean P(MI) and their observed MI fraction (empty bins: n = 0, NaN)."""
    labels, probs = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(probs, edges[1:-1], right=False), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = bins == b
        n = int(inside.sum())
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "n": n,
                     "mean_prob": probs[inside].mean() if n else np.nan,
                     "frac_mi": labels[inside].mean() if n else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def expected_calibration_error(curve: pd.DataFrame) -> float:
    """ECE: Σ_bins (n_bin / N) · |mean P(MI) − observed MI fraction| (probability units)."""
    filled = curve[curve["n"] > 0]
    weights = filled["n"] / filled["n"].sum()
    return float((weights * (filled["mean_prob"] - filled["frac_mi"]).abs()).sum())


def ece(labels: np.ndarray, probs: np.ndarray, n_bins: int = N_CALIBRATION_BINS) -> float:
    """The ECE of ``probs`` against 0/1 ``labels`` (probability units)."""
    return expected_calibration_error(reliability_table(labels, probs, n_bins))


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared difference between P(MI) and the 0/1 label (0 = perfect)."""
    return float(np.mean((np.asarray(probs, dtype=float) - np.asarray(labels, dtype=float)) ** 2))


# ---------------------------------------------------------------------------- calibrators


def _logit(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=float), _LOGIT_EPS, 1 - _LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def apply_calibration(calibrator: Calibrator | None, probs: np.ndarray) -> np.ndarray:
    """Calibrated P(MI) ``[n]`` float64 of raw ``probs``; ``None`` or "none": unchanged."""
    probs = np.asarray(probs, dtype=float)
    method = (calibrator or IDENTITY)["method"]
    if method == "none":
        return probs
    if method == "platt":
        return _sigmoid(float(calibrator["a"]) * _logit(probs) + float(calibrator["b"]))
    if method == "isotonic":
        fitted = np.interp(probs, calibrator["x"], calibrator["y"])  # clips outside the range
        blend = float(calibrator.get("blend", ISOTONIC_BLEND))
        return (1.0 - blend) * fitted + blend * probs
    raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(CANDIDATES)}")


def prior_shift(probs: np.ndarray, source: float, target: float) -> np.ndarray:
    """P(MI) of a model calibrated where MI had prevalence ``source``, moved to a site where it
    has prevalence ``target`` (both fractions in (0, 1)): the odds are multiplied by the ratio of
    the prevalences' odds (Saerens, Latinne & Decaestecker 2002, assuming P(ECG | MI) and
    P(ECG | no MI) are the same at both sites). Strictly increasing: ranks are unchanged."""
    probs = np.clip(np.asarray(probs, dtype=float), 0.0, 1.0)
    ratio = (target / (1.0 - target)) / (source / (1.0 - source))
    return probs * ratio / (probs * ratio + (1.0 - probs))


def fit_platt(probs: np.ndarray, labels: np.ndarray) -> Calibrator | None:
    """Platt scaling on ``logit(probs)`` (smoothed targets); None when the fitted slope is
    not positive (a map that would reverse or flatten the ranking)."""
    from scipy.optimize import minimize

    z, y = _logit(probs), np.asarray(labels, dtype=float)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s = theta[0] * z + theta[1]
        # log(1 + e^s) − t·s, its gradient (σ(s) − t)·[z, 1]
        value = np.sum(np.logaddexp(0.0, s) - target * s)
        residual = _sigmoid(s) - target
        return float(value), np.array([np.sum(residual * z), np.sum(residual)])

    found = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in found.x)
    if not (np.isfinite(a) and np.isfinite(b)) or a <= 0:
        return None
    return {"method": "platt", "a": a, "b": b}


def fit_isotonic(probs: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Isotonic regression of the labels on ``probs`` (its breakpoints, see module doc)."""
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    fitted.fit(np.asarray(probs, dtype=float), np.asarray(labels, dtype=float))
    return {"method": "isotonic", "x": fitted.X_thresholds_.tolist(),
            "y": fitted.y_thresholds_.tolist(), "blend": ISOTONIC_BLEND}  # fmt: skip


def fit_method(method: str, probs: np.ndarray, labels: np.ndarray) -> Calibrator:
    """The calibrator of ``method`` fitted on ``probs``/``labels`` (identity when Platt
    cannot be fitted with a positive slope)."""
    if method == "platt":
        return fit_platt(probs, labels) or dict(IDENTITY)
    if method == "isotonic":
        return fit_isotonic(probs, labels)
    if method == "none":
        return dict(IDENTITY)
    raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(CANDIDATES)}")


def cross_fitted(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray, methods: Sequence[str],
                 seed: int = 0, n_splits: int = SELECTION_FOLDS) -> dict[str, np.ndarray]:  # fmt: skip
    """Each method's out-of-fold calibrated ``probs`` ``[n]`` (stratified, patient-grouped
    k-fold inside the given part: every record calibrated by a map fitted without it); empty
    when either class has < 2 records."""
    from sklearn.model_selection import StratifiedGroupKFold

    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels).astype(int)
    k = min(n_splits, int(labels.sum()), int((labels == 0).sum()), len(np.unique(groups)))
    if k < 2:
        return {}
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    out = {m: np.empty_like(probs) for m in methods}
    for fit_idx, held_idx in folds.split(probs, labels, groups):
        for method in methods:
            calibrator = fit_method(method, probs[fit_idx], labels[fit_idx])
            out[method][held_idx] = apply_calibration(calibrator, probs[held_idx])
    return out


def cross_fit_briers(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                     seed: int = 0, n_splits: int = SELECTION_FOLDS) -> dict[str, float]:  # fmt: skip
    """Brier score of each candidate's out-of-fold calibrated ``probs`` (:func:`cross_fitted`);
    empty when either class has < 2 records."""
    held_out = cross_fitted(probs, labels, groups, CANDIDATES, seed, n_splits)
    return {m: brier_score(np.asarray(labels).astype(int), p) for m, p in held_out.items()}


def choose_method(briers: dict[str, float]) -> str:
    """The candidate with the lowest out-of-fold Brier; ties (and no scores) go to the
    simpler map (order of :data:`CANDIDATES`)."""
    best = "none"
    for method in CANDIDATES:
        if method in briers and briers[method] < briers.get(best, np.inf):
            best = method
    return best


def fit_calibration(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                    method: str = "auto", seed: int = 0) -> tuple[Calibrator, dict[str, float]]:  # fmt: skip
    """The calibrator for ``method`` (``auto``: chosen by :func:`cross_fit_briers`) fitted
    on the whole of ``probs``/``labels`` (the validation part), and the out-of-fold Brier
    scores of the candidates (empty unless ``auto``)."""
    if method not in METHODS:
        raise ValueError(f"calibration={method!r}; choose one of {', '.join(METHODS)}")
    briers = cross_fit_briers(probs, labels, groups, seed) if method == "auto" else {}
    chosen = choose_method(briers) if method == "auto" else method
    return fit_method(chosen, probs, labels), briers


def calibration_scores(labels: dict[str, np.ndarray], raw: dict[str, np.ndarray],
                       calibrated: dict[str, np.ndarray]) -> dict[str, float]:  # fmt: skip
    """``{part}_brier``/``{part}_ece`` of the raw and (``_calibrated``) calibrated P(MI) of
    every part (the train route passes the validation part's cross-fitted calibrated P(MI))."""
    scores = {}
    for part in labels:
        for suffix, probs in (("", raw[part]), ("_calibrated", calibrated[part])):
            scores[f"{part}_brier{suffix}"] = brier_score(labels[part], probs)
            scores[f"{part}_ece{suffix}"] = ece(labels[part], probs)
    return scores


__all__ = ["CANDIDATES", "IDENTITY", "METHODS", "N_CALIBRATION_BINS", "Calibrator", "apply_calibration",
           "brier_score", "calibration_scores", "choose_method", "cross_fit_briers", "cross_fitted", "ece",
           "expected_calibration_error", "fit_calibration", "fit_isotonic", "fit_method", "fit_platt",
           "prior_shift", "reliability_table"]  # fmt: skip
