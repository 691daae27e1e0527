"""Grad-CAM figures: the 12 leads in the clinical 12 × 1 layout, trace in black, attention as
a colour band under the trace."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ecg_mi.data.record import STANDARD_LEADS  # noqa: E402
from ecg_mi.utils.reporting import save_figure  # noqa: E402


def pick_examples(labels: np.ndarray, probs: np.ndarray, n: int = 8) -> list[tuple[int, str]]:
    """Indices of the most confident true positives and true negatives and the worst
    errors (about a third each), with a short reason."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    third = max(1, n // 3)
    picked: list[tuple[int, str]] = []
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    picked += [(int(i), "true positive") for i in positives[np.argsort(-probs[positives])][:third]]
    picked += [(int(i), "true negative") for i in negatives[np.argsort(probs[negatives])][:third]]
    chosen = {i for i, _ in picked}
    errors = [int(i) for i in np.argsort(-np.abs(labels - probs)) if int(i) not in chosen]
    picked += [(i, "worst error") for i in errors[: n - len(picked)]]
    return picked[:n]


def gradcam_figure(signal: np.ndarray, cam: np.ndarray, fs: float, title: str, path: Path) -> Path:
    """Save the 12-lead Grad-CAM plot of one record (``signal`` ``[12, L]`` in mV)."""
    t = np.arange(signal.shape[1]) / fs
    fig, axes = plt.subplots(12, 1, figsize=(12, 14), sharex=True)
    for lead, ax in enumerate(axes):
        trace = signal[lead]
        low, high = float(trace.min()), float(trace.max())
        pad = 0.1 * (high - low + 1e-6)
        ax.imshow(cam[None, :], aspect="auto", cmap="Reds", vmin=0, vmax=1, alpha=0.8,
                  extent=(t[0], t[-1], low - pad, high + pad))  # fmt: skip
        ax.plot(t, trace, color="black", linewidth=0.7)
        ax.set_ylim(low - pad, high + pad)
        ax.set_ylabel(
            f"{STANDARD_LEADS[lead]}\n(mV)", rotation=0, ha="right", va="center", fontsize=8
        )
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title + "\nred: Grad-CAM attention (0–1)", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)
