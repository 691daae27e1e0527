"""Test metrics with one threshold rule, computed with torchmetrics.

Threshold rule (for F1): the probability cut-off that maximises F1 on the *validation*
part (carved from the training folds); the test fold never influences it.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_f1_score,
    binary_precision_recall_curve,
)


def auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (NaN when only one class is present)."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(binary_auroc(_t(probs, torch.float64), _t(labels, torch.long)))


def f1_at(probs: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """F1 of the MI class when P(MI) ≥ ``threshold`` predicts MI.

    Binarised here with ``>=`` to match the precision-recall curve's thresholds
    (torchmetrics' own ``threshold`` argument uses ``>``, which never fires at 1.0).
    """
    predicted = _t(np.asarray(probs) >= threshold, torch.long)
    return float(binary_f1_score(predicted, _t(labels, torch.long)))


def max_f1_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The cut-off on ``probs`` that maximises F1 against ``labels``."""
    precision, recall, thresholds = binary_precision_recall_curve(
        _t(probs, torch.float64), _t(labels, torch.long)
    )
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    best = int(torch.argmax(f1[:-1]))  # the last point (recall 0) has no threshold
    return float(thresholds[best])


def _t(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(np.asarray(values), dtype=dtype)
