"""The report's calibration section: per model, Brier score and ECE of the pooled out-of-fold
test predictions, raw → calibrated, and a reliability diagram.

The calibrated P(MI) is each fold run's ``prob_calibrated`` (its validation-fitted
calibrator, :mod:`ecg_mi.calibration`). Runs logged before calibration have no such column:
their calibrated P(MI) is the raw one and the model is flagged (``calibrated = False``).
The Brier scores get a patient-bootstrap 95 % CI (a Brier score is a mean over records, so
the CI costs one vectorised resampling); the ECE is reported without one.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ecg_mi.calibration import N_CALIBRATION_BINS, brier_score, ece, reliability_table  # noqa: E402
from ecg_mi.evaluate.runs import Sweep  # noqa: E402
from ecg_mi.stats import bootstrap_mean_ci  # noqa: E402
from ecg_mi.utils.reporting import markdown_table, save_figure, with_ci  # noqa: E402

CALIBRATED = "prob_calibrated"


def calibrated_probs(pooled: pd.DataFrame) -> tuple[np.ndarray, bool]:
    """The calibrated P(MI) of ``pooled`` predictions and whether every record had one
    (records of runs without ``prob_calibrated`` fall back to their raw ``prob``)."""
    if CALIBRATED not in pooled:
        return pooled["prob"].to_numpy(dtype=float), False
    values = pooled[CALIBRATED]
    return values.fillna(pooled["prob"]).to_numpy(dtype=float), bool(values.notna().all())


def _methods(sweep: Sweep, model: str) -> str:
    """The folds' calibration methods, e.g. ``"platt ×3, none ×2"`` ("–" when not logged)."""
    runs = sweep.runs[sweep.runs["model"] == model]
    if "calibration" not in runs:
        return "–"
    counts = runs["calibration"].fillna("–").value_counts()
    return ", ".join(f"{m} ×{n}" for m, n in counts.items())


def calibration_table(sweep: Sweep, n_bootstrap: int, seed: int, n_bins: int = N_CALIBRATION_BINS) -> pd.DataFrame:
    """One row per model: pooled Brier (with patient-bootstrap CI) and ECE, raw and
    calibrated (probability units), the folds' methods and the ``calibrated`` flag."""
    rows = []
    for model in sorted(sweep.runs["model"].unique()):
        pooled = sweep.predictions[sweep.predictions["model"] == model]
        labels, raw = pooled["label"].to_numpy(dtype=float), pooled["prob"].to_numpy(dtype=float)
        calibrated, complete = calibrated_probs(pooled)
        row = {"model": model, "name": sweep.display(model), "n_records": len(pooled),
               "method": _methods(sweep, model), "calibrated": complete}  # fmt: skip
        for suffix, probs in (("raw", raw), ("calibrated", calibrated)):
            low, high = bootstrap_mean_ci((probs - labels) ** 2, pooled["patient_id"].to_numpy(), n_bootstrap, seed)
            row.update({f"brier_{suffix}": brier_score(labels, probs), f"brier_{suffix}_low": low,
                        f"brier_{suffix}_high": high, f"ece_{suffix}": ece(labels, probs, n_bins)})  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def calibration_markdown(table: pd.DataFrame) -> str:
    """The calibration table: Brier [95 % CI] and ECE, raw → calibrated, per model."""
    rows = [[r.name if r.calibrated else f"{r.name} (not calibrated: runs without prob_calibrated)", r.method,
             with_ci(r.brier_raw, r.brier_raw_low, r.brier_raw_high),
             with_ci(r.brier_calibrated, r.brier_calibrated_low, r.brier_calibrated_high),
             f"{r.ece_raw:.3f}", f"{r.ece_calibrated:.3f}"] for r in table.itertuples()]  # fmt: skip
    columns = ["model", "folds' method", "Brier raw [95% CI]", "Brier calibrated [95% CI]", "ECE raw", "ECE calibrated"]
    return markdown_table(pd.DataFrame(rows, columns=columns))


def reliability_figure(sweep: Sweep, table: pd.DataFrame, path: Path, n_bins: int = N_CALIBRATION_BINS) -> Path:
    """One panel per model: observed MI fraction vs mean P(MI) per bin, raw (dashed) and
    calibrated (solid), over the diagonal of perfect calibration."""
    n = len(table)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows), squeeze=False, sharex=True, sharey=True)
    for ax, r in zip(axes.flat, table.itertuples(), strict=False):
        pooled = sweep.predictions[sweep.predictions["model"] == r.model]
        calibrated, _ = calibrated_probs(pooled)
        ax.plot([0, 1], [0, 1], ":", color="grey")
        for probs, style, label in ((pooled["prob"].to_numpy(dtype=float), "o--", f"raw (ECE {r.ece_raw:.3f})"),
                                    (calibrated, "o-", f"calibrated (ECE {r.ece_calibrated:.3f})")):  # fmt: skip
            curve = reliability_table(pooled["label"].to_numpy(), probs, n_bins)
            filled = curve[curve["n"] > 0]
            ax.plot(filled["mean_prob"], filled["frac_mi"], style, markersize=3, label=label)
        ax.set_title(r.name if r.calibrated else f"{r.name} (not calibrated)", fontsize=10)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="mean predicted P(MI)", ylabel="observed MI fraction")
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"Reliability, pooled out-of-fold ({n_bins} equal-width bins; dashed raw, solid calibrated)")
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["calibrated_probs", "calibration_markdown", "calibration_table", "reliability_figure"]
