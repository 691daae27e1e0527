"""The model card of a registered model version: Markdown following the TRIPOD+AI reporting
items that apply to a model ecg-mi registers (intended use, data source and cohort rule,
outcome, predictors, performance with CIs, calibration, subgroups, limitations), and the
version's tags.

Every figure comes from the report's own tables (:func:`ecg_mi.evaluate.report.report_tables`)
computed on the registered model's fold runs alone: the pooled out-of-fold test predictions
(each record scored by the fold model that never trained on it) — a cross-validated estimate
for the registered model, which averages those fold models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from ecg_mi.evaluate.report import Tables

#: MLflow keeps a model version's description in a 5,000-character column (PostgreSQL enforces it).
MAX_DESCRIPTION = 5000
#: What signal a member reads (its representation's ``signal``), in words.
SIGNALS = {"window": "the 10 s 12-lead strip, each lead standardised with the training part's mean and sd",
           "median_beat": "the median beat of each lead (beats aligned on R peaks)"}  # fmt: skip
#: What features a member reads (its representation's ``features``), in words.
FEATURES = {"raw": "the 408 clinical ECG features (34 per lead: Q, R, S, ST and T amplitudes, areas and durations, RR, QRS, QT; src/ecg_mi/features/extract.py)",
            "scaled": "the 408 clinical ECG features, scaled by the training part's median and interquartile range"}  # fmt: skip


@dataclass(frozen=True)
class Card:
    """What a model card says, gathered at registration."""

    name: str  # registered model
    model: str  # ecg-mi's model name (``a+b`` for an ensemble of models)
    display: str
    experiment: str
    run_ids: Sequence[str]  # the fold runs it packages
    folds: Sequence[int]
    n_folds: int
    config: DictConfig  # a source run's config.yaml (data, cohort rule, seed)
    outcome: str  # the data source's ``outcome``
    info: dict[str, Any]  # the package's ecg-mi metadata
    members: Sequence[dict[str, Any]]  # the package members' representation states
    tables: Tables  # the report's tables of this model alone
    commit: str
    data_hash: str  # the fold file's sha256

    @property
    def row(self) -> pd.Series:
        """Table 2's row of the model."""
        return _row(self.tables.table2, self.model)

    @property
    def missing(self) -> list[int]:
        return sorted(set(range(self.n_folds)) - set(self.folds))


def _row(table: pd.DataFrame, model: str) -> pd.Series:
    return table[table["model"] == model].iloc[0]


def _ci(value: float, low: float, high: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _sd(mean: float, sd: float) -> str:
    return "–" if not np.isfinite(mean) else f"{mean:.3f} ± {sd:.3f}" if np.isfinite(sd) else f"{mean:.3f}"


def test_auc_ci(card: Card) -> str:
    """Pooled out-of-fold test AUC with its patient-bootstrap 95 % CI, e.g. ``0.912 [0.894, 0.931]``."""
    row = card.row
    return _ci(row.pooled_auc, row.pooled_auc_low, row.pooled_auc_high)


def val_auc(card: Card) -> float:
    """Mean AUC over the folds' validation parts (NaN when the runs logged none)."""
    return float(_row(card.tables.validation, card.model).val_auc_mean)


def calibration_ece(card: Card) -> float:
    """ECE of the pooled calibrated test P(MI) (10 equal-width bins)."""
    return float(_row(card.tables.calibration, card.model).ece_calibrated)


def representation(card: Card) -> str:
    """The representation(s) the model reads: one name, or ``model: name`` per part."""
    parts = card.info.get("parts")
    if parts:
        return ", ".join(f"{p['model']}: {p['representation']}" for p in parts)
    return str(card.info.get("representation"))


def version_tags(card: Card) -> dict[str, str]:
    """The registered version's tags a reviewer filters on."""
    tags = {"model": card.model, "representation": representation(card), "data": str(card.config.data.name),
            "data_hash": card.data_hash, "commit": card.commit,
            "folds": ",".join(map(str, card.folds)), "val_auc": _fmt(val_auc(card)), "test_auc": test_auc_ci(card),
            "calibration_ece": _fmt(calibration_ece(card))}  # fmt: skip
    if card.missing:
        tags["incomplete"] = f"lacks fold(s) {card.missing} of {card.n_folds}"
    return tags


def _fmt(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "–"


def model_card(card: Card) -> str:
    """The card in Markdown (see the module docstring)."""
    row, data, cohort = card.row, card.config.data, card.config.data.cohort
    calibration = _row(card.tables.calibration, card.model)
    prevalence = row.n_mi / row.n_records if row.n_records else float("nan")
    lines = [
        f"# Model card: {card.name} — {card.display}", "",
        f"ecg-mi model `{card.model}`, {len(card.folds)} fold model(s) averaged (P(MI) mean; threshold "
        f"{card.info['threshold']:.3f} on the calibrated scale). Trained in experiment `{card.experiment}`, "
        f"commit `{card.commit}`, ecg-mi {card.info.get('ecg_mi_version', '?')}.", "",
        "## Intended use", "",
        "Research on detecting myocardial infarction (MI) from a resting 12-lead ECG: to rank or flag ECGs for a "
        "clinician's review and to compare methods. Not a medical device: not for diagnosis, triage or treatment "
        "decisions, and not evaluated prospectively.", "",
        "## Data source and cohort", "",
        f"- Data: `{data.name}` at {data.sample_rate} Hz; cohort of {row.n_records} records, {row.n_mi} with MI "
        f"({prevalence:.0%}).",
        f"- Cohort rule: every MI record plus controls from `{cohort.controls}` at {cohort.ratio} per MI record "
        f"(seed {cohort.seed}{'' if cohort.max_cases is None else f', at most {cohort.max_cases} MI records'}); "
        f"training pool `{data.get('train_pool', 'cohort')}`.",
        f"- Splits: {card.n_folds} test folds grouped by patient (a patient's ECGs in one fold); a patient-grouped "
        f"validation part ({data.val_fraction:.0%} of the training folds) selects the epoch, the threshold and the "
        f"calibration. Fold file sha256 `{card.data_hash}`.", "",
        "## Outcome", "", f"{card.outcome}.", "",
        "## Predictors (input)", "",
        f"One 10 s resting 12-lead ECG in mV at {card.info['sample_rate']} Hz (leads {', '.join(card.info['leads'])}); "
        "longer recordings are cut into 10 s windows and their P(MI) averaged. The model reads "
        f"{_reads(card.members)}. Output: calibrated P(MI) and MI yes/no at the threshold.", "",
        "## Performance (cross-validated, test folds)", "",
        "| measure | value |", "|---|---|",
        f"| AUC, pooled out-of-fold [95% CI, patient bootstrap] | {test_auc_ci(card)} |",
        f"| AUC, mean ± sd over {len(card.folds)} test folds | {_sd(row.auc_mean, row.auc_sd)} |",
        f"| F1 at the validation-chosen threshold, mean ± sd | {_sd(row.f1_mean, row.f1_sd)} |",
        f"| AUC on the validation parts, mean ± sd | "
        f"{_sd(val_auc(card), float(_row(card.tables.validation, card.model).val_auc_sd))} |", "",
        "## Calibration", "",
        f"Fitted on each fold's validation part ({calibration.method}). Pooled test predictions: Brier "
        f"{_ci(calibration.brier_raw, calibration.brier_raw_low, calibration.brier_raw_high)} raw → "
        f"{_ci(calibration.brier_calibrated, calibration.brier_calibrated_low, calibration.brier_calibrated_high)} "
        f"calibrated; ECE {calibration.ece_raw:.3f} → {calibration.ece_calibrated:.3f}.", "",
        "## Subgroups (pooled test AUC [95% CI])", "",
        "| group | records (MI) | AUC | note |", "|---|---|---|---|",
        *_subgroup_lines(card.tables.subgroups, card.model), "",
        "## Limitations", "", *_limitations(card, prevalence),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _reads(members: Sequence[dict[str, Any]]) -> str:
    """What the members read, in words (each distinct representation once)."""
    described = []
    for state in members:
        parts = [SIGNALS[state["signal"]]] if state.get("signal") else []
        parts += [FEATURES[state["features"]]] if state.get("features") else []
        described.append(" and ".join(parts) or str(state.get("name")))
    return "; ".join(dict.fromkeys(described))


def _subgroup_lines(groups: pd.DataFrame, model: str) -> list[str]:
    mine = groups[groups["model"] == model]
    return [f"| {g.variable}: {g.group} | {g.n} ({g.n_mi}) | {_ci(g.auc, g.auc_low, g.auc_high)} | "
            f"{'small' if g.small else ''} |" for g in mine.itertuples()]  # fmt: skip


def _limitations(card: Card, prevalence: float) -> list[str]:
    """The card's limitations: those every ecg-mi model has, and those of this one."""
    items = [
        f"- Case–control cohort: MI makes up {prevalence:.0%} of it by design, not the prevalence of any clinical "
        "setting; P(MI), the threshold and F1 hold at this prevalence. Recalibrate before use elsewhere.",
        f"- Internal validation only (cross-validation on `{card.config.data.name}`); run `evaluate.py external=true` "
        "on another data set before trusting it elsewhere.",
        "- The threshold maximises F1 on the validation parts; another operating point needs another threshold.",
        "- Inputs unlike the training ECGs (other devices, filters, paced rhythms, heavy noise) were not studied.",
    ]  # fmt: skip
    if card.config.data.name == "synthetic":
        items.insert(0, "- **Trained on synthetic ECGs**: a demonstration model, of no clinical value.")
    if card.missing:
        items.insert(0, f"- **Incomplete**: fold(s) {card.missing} of {card.n_folds} were not trained; the figures "
                        "cover the other folds' test records only.")  # fmt: skip
    small = card.tables.subgroups[(card.tables.subgroups["model"] == card.model) & card.tables.subgroups["small"]]
    if len(small):
        groups = ", ".join(f"{g.variable} {g.group}" for g in small.itertuples())
        items.append(f"- Subgroups marked small ({groups}) have few MI or non-MI records: wide or missing CIs.")
    return items


def description(card_text: str, run_id: str) -> str:
    """``card_text`` as a version description, cut to :data:`MAX_DESCRIPTION` characters (at a
    line) with a pointer to the full card, the ``model_card.md`` artifact of run ``run_id``."""
    if len(card_text) <= MAX_DESCRIPTION:
        return card_text
    note = f"\n\n… the full card: artifact `model_card.md` of run {run_id}.\n"
    return card_text[: card_text.rfind("\n", 0, MAX_DESCRIPTION - len(note))] + note


__all__ = ["Card", "calibration_ece", "description", "model_card", "test_auc_ci", "val_auc", "version_tags"]
