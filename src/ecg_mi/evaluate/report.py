"""The paper's Table 2, subgroups (Fig. 4), ROC/PR curves and paired comparisons.

Every number comes from the fold runs' ``predictions.csv`` and metrics in MLflow:

* **Table 2**: per model, AUC and F1 mean ± sd over the test folds (as the paper), plus the
  pooled out-of-fold AUC (every cohort record predicted once) with a patient-level
  bootstrap 95 % CI; split into "clinical features" and "raw ECG" like the paper.
* **Comparisons**: DeLong's paired test on the pooled predictions — every model vs the best
  model, and the best raw-ECG model vs XGBoost.
* **Subgroups**: pooled AUC with bootstrap CI by sex and by age band; groups with fewer than
  ``min_group`` MI or non-MI records are flagged.
* **Chosen on validation**: every model and ensemble ranked by the mean AUC of its calibrated
  P(MI) on the folds' validation parts (``val_predictions.csv``), the choice of what to ship
  made without the test folds.
* **Calibration** (:mod:`ecg_mi.evaluate.reliability`): Brier score and ECE of the pooled
  predictions, raw → calibrated, and a reliability diagram.
* With ``paper=True`` the paper's UK Biobank Table 2 (``paper_table2.csv``; Wang, Qi & Xu
  2022, Table 2, typed from ../shared/PAPER.md) is shown beside ours.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from ecg_mi.evaluate.importance import importance_section  # noqa: E402
from ecg_mi.evaluate.reliability import calibration_markdown, calibration_table, reliability_figure  # noqa: E402
from ecg_mi.evaluate.runs import Sweep  # noqa: E402
from ecg_mi.evaluate.st_attention import st_attention_markdown, st_attention_section  # noqa: E402
from ecg_mi.evaluate.validation import validation_aucs  # noqa: E402
from ecg_mi.learners import ENSEMBLE_ARM  # noqa: E402
from ecg_mi.learners.base import HYBRID_ARM  # noqa: E402
from ecg_mi.learners.classical import ClassicalLearner  # noqa: E402
from ecg_mi.learners.network import NetworkLearner  # noqa: E402
from ecg_mi.stats import bootstrap_auc_ci, delong_test  # noqa: E402
from ecg_mi.utils.io import atomic_write_text  # noqa: E402
from ecg_mi.utils.reporting import markdown_table, save_figure, with_ci, write_csv  # noqa: E402

log = logging.getLogger(__name__)

def paper_table() -> pd.DataFrame:
    with resources.files("ecg_mi.evaluate").joinpath("paper_table2.csv").open() as fh:
        return pd.read_csv(fh).set_index("model")


@dataclass(frozen=True)
class Settings:
    n_bootstrap: int = 1000
    seed: int = 0
    age_bands: Sequence[Sequence[float]] = ((40, 55), (55, 70))
    min_group: int = 20
    paper: bool = False


def _pooled(sweep: Sweep, model: str) -> pd.DataFrame:
    return (
        sweep.predictions[sweep.predictions["model"] == model]
        .sort_values("record_id")
        .reset_index(drop=True)
    )


def table2(sweep: Sweep, s: Settings) -> pd.DataFrame:
    rows = []
    for model, group in sweep.runs.groupby("model"):
        pooled = _pooled(sweep, model)
        auc, low, high = bootstrap_auc_ci(
            pooled["label"], pooled["prob"], pooled["patient_id"], s.n_bootstrap, s.seed
        )
        rows.append({
            "arm": sweep.arm(model), "model": model, "name": sweep.display(model), "folds": len(group),
            "auc_mean": group["test_auc"].mean(), "auc_sd": group["test_auc"].std(ddof=1),
            "f1_mean": group["test_f1"].mean(), "f1_sd": group["test_f1"].std(ddof=1),
            "pooled_auc": auc, "pooled_auc_low": low, "pooled_auc_high": high,
            "n_records": len(pooled), "n_mi": int(pooled["label"].sum()),
            "incomplete": model in sweep.incomplete,
            # minutes of wall time, every fold's run summed (NaN when a run has no end time)
            "train_minutes": group["seconds"].sum(min_count=len(group)) / 60 if "seconds" in group else np.nan,
        })  # fmt: skip
    table = (
        pd.DataFrame(rows)
        .sort_values(["arm", "pooled_auc"], ascending=[True, False])
        .reset_index(drop=True)
    )
    complete = table[~table["incomplete"]] if (~table["incomplete"]).any() else table
    best = complete.loc[complete["pooled_auc"].idxmax(), "model"]
    table["p_vs_best"] = [
        _paired_p(sweep, m, best) if m != best else np.nan for m in table["model"]
    ]
    table["best"] = table["model"] == best
    if s.paper:
        paper = paper_table()
        for col in ("auc_mean", "auc_sd", "f1_mean", "f1_sd"):
            table[f"paper_{col}"] = table["model"].map(paper[col])
    return table


def _paired_p(sweep: Sweep, model_a: str, model_b: str) -> float:
    a, b = _pooled(sweep, model_a), _pooled(sweep, model_b)
    merged = a.merge(b[["record_id", "prob"]], on="record_id", suffixes=("_a", "_b"))
    if len(merged) < max(len(a), len(b)):
        log.warning(
            "%s and %s share %d of %d records", model_a, model_b, len(merged), max(len(a), len(b))
        )
    return delong_test(merged["label"], merged["prob_a"], merged["prob_b"])[2]


def comparisons(sweep: Sweep, table: pd.DataFrame) -> pd.DataFrame:
    """Best raw-ECG model vs XGBoost, and every model vs the overall best (DeLong)."""
    rows = []
    deep = table[table["arm"] == NetworkLearner.arm]
    if not deep.empty and "xgboost" in set(table["model"]):
        best_deep = deep.loc[deep["pooled_auc"].idxmax(), "model"]
        rows.append(_comparison(sweep, best_deep, "xgboost", "best raw-ECG model vs XGBoost"))
    best = table.loc[table["best"], "model"].iloc[0]
    rows += [_comparison(sweep, m, best, "vs best") for m in table["model"] if m != best]
    return pd.DataFrame(rows)


def _comparison(sweep: Sweep, a: str, b: str, what: str) -> dict:
    pa, pb = _pooled(sweep, a), _pooled(sweep, b)
    merged = pa.merge(pb[["record_id", "prob"]], on="record_id", suffixes=("_a", "_b"))
    auc_a, auc_b, p = delong_test(merged["label"], merged["prob_a"], merged["prob_b"])
    return {"comparison": what, "model_a": a, "model_b": b, "auc_a": auc_a, "auc_b": auc_b,
            "difference": auc_a - auc_b, "p_delong": p, "n_records": len(merged)}  # fmt: skip


def age_band(age: float, bands: Sequence[Sequence[float]]) -> str:
    """``"40–55"`` for 40 ≤ age < 55 (bands are half-open), ``"other"`` outside every band."""
    for low, high in bands:
        if low <= age < high:
            return f"{low:g}–{high:g}"
    return "other"


def subgroups(sweep: Sweep, s: Settings) -> pd.DataFrame:
    rows = []
    for model in sorted(sweep.runs["model"].unique()):
        pooled = _pooled(sweep, model)
        groups = {
            "sex": pooled["sex"].map({0: "male", 1: "female"}).fillna("unknown"),
            "age": pooled["age"].map(
                lambda a: age_band(a, s.age_bands) if pd.notna(a) else "unknown"
            ),
        }
        for variable, values in groups.items():
            for value in sorted(values.unique()):
                part = pooled[values == value]
                n_mi, n_ctrl = int(part["label"].sum()), int((part["label"] == 0).sum())
                auc = low = high = np.nan
                if n_mi and n_ctrl:
                    auc, low, high = bootstrap_auc_ci(
                        part["label"], part["prob"], part["patient_id"], s.n_bootstrap, s.seed
                    )
                rows.append({"model": model, "name": sweep.display(model), "variable": variable, "group": value,
                             "n": len(part), "n_mi": n_mi, "auc": auc, "auc_low": low, "auc_high": high,
                             "small": min(n_mi, n_ctrl) < s.min_group})  # fmt: skip
    return pd.DataFrame(rows)


def _fmt(mean: float, sd: float) -> str:
    return "–" if pd.isna(mean) else f"{mean:.3f} ± {sd:.3f}"


def _number(value: float, spec: str) -> str:
    return "–" if pd.isna(value) else format(value, spec)


def table2_markdown(table: pd.DataFrame, comparisons_table: pd.DataFrame, paper: bool) -> str:
    rows = [[r.arm, (f"**{r.name}**" if r.best else r.name) + (" (incomplete)" if r.incomplete else ""), r.folds,
             _fmt(r.auc_mean, r.auc_sd), _fmt(r.f1_mean, r.f1_sd), with_ci(r.pooled_auc, r.pooled_auc_low, r.pooled_auc_high),
             _number(getattr(r, "ece", np.nan), ".3f"), _number(getattr(r, "train_minutes", np.nan), ".1f"),
             "best" if r.best else f"{r.p_vs_best:.3g}",
             *([_fmt(r.paper_auc_mean, r.paper_auc_sd), _fmt(r.paper_f1_mean, r.paper_f1_sd)] if paper else [])]
            for r in table.itertuples()]  # fmt: skip
    columns = ["arm", "model", "folds", "AUC (mean ± sd)", "F1 (mean ± sd)", "pooled AUC [95% CI]", "ECE (calibrated)",
               "train time, all folds (min)", "p vs best",
               *(["paper AUC (UKB)", "paper F1 (UKB)"] if paper else [])]  # fmt: skip
    names = dict(zip(table["model"], table["name"], strict=True))
    tests = [[c.comparison, names[c.model_a], names[c.model_b], f"{c.auc_a:.3f}", f"{c.auc_b:.3f}",
              f"{c.difference:+.3f}", f"{c.p_delong:.3g}"] for c in comparisons_table.itertuples()]  # fmt: skip
    return (markdown_table(pd.DataFrame(rows, columns=columns)) + "\nPaired DeLong tests on pooled out-of-fold predictions:\n\n"
            + markdown_table(pd.DataFrame(tests, columns=["comparison", "A", "B", "AUC A", "AUC B", "A − B", "p"])))  # fmt: skip


def validation_table(sweep: Sweep, table: pd.DataFrame) -> pd.DataFrame:
    """:func:`ecg_mi.evaluate.validation.validation_aucs` with each model's name and pooled test
    AUC beside it (to report, not to choose) and ``chosen`` marking the first."""
    ranked = validation_aucs(sweep).merge(table[["model", "name", "pooled_auc", "pooled_auc_low", "pooled_auc_high"]],
                                          on="model", how="left")  # fmt: skip
    return ranked.assign(chosen=ranked.index == 0 if ranked["val_auc_mean"].notna().any() else False)


def validation_markdown(validation: pd.DataFrame) -> str:
    """The validation ranking, the chosen model in bold."""
    rows = [[f"**{r.name}**" if r.chosen else r.name, _fmt(r.val_auc_mean, r.val_auc_sd),
             with_ci(r.pooled_auc, r.pooled_auc_low, r.pooled_auc_high)] for r in validation.itertuples()]  # fmt: skip
    columns = ["model", "validation AUC (mean ± sd over folds)", "pooled test AUC [95% CI]"]
    return markdown_table(pd.DataFrame(rows, columns=columns))


def model_colours(n: int) -> list[tuple[float, float, float]]:
    """``n`` distinct colours for a figure's models (tab20, then tab20b): Table 2 has 21 rows,
    and matplotlib's default cycle repeats after 10."""
    palette = [*plt.get_cmap("tab20").colors, *plt.get_cmap("tab20b").colors]
    return [palette[i % len(palette)] for i in range(n)]


# The ROC figure's line style per arm, so the arm reads at a glance among 21 curves.
ARM_LINESTYLES = {NetworkLearner.arm: "-", ClassicalLearner.arm: "--", ENSEMBLE_ARM: "-.", HYBRID_ARM: (0, (1, 1))}


def roc_figure(sweep: Sweep, table: pd.DataFrame, path: Path) -> None:
    """Pooled out-of-fold ROC of every row of ``table``: one colour per model, the line
    style per arm (:data:`ARM_LINESTYLES`), the legend beside the axes so no curve hides."""
    fig, ax = plt.subplots(figsize=(11, 6))
    colours = model_colours(len(table))
    for i, r in enumerate(table.itertuples()):
        pooled = _pooled(sweep, r.model)
        fpr, tpr, _ = roc_curve(pooled["label"], pooled["prob"])
        ax.plot(fpr, tpr, linestyle=ARM_LINESTYLES.get(r.arm, "-"), color=colours[i],
                label=f"{r.name}: {with_ci(r.pooled_auc, r.pooled_auc_low, r.pooled_auc_high)}")  # fmt: skip
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set(xlabel="false positive rate (1 − specificity)", ylabel="true positive rate (sensitivity)", xlim=(0, 1),
           ylim=(0, 1.01), title="Pooled out-of-fold ROC (solid: raw ECG, dashed: clinical features,\n"
                                 "dash-dot: ensembles, dotted: raw ECG + features)")  # fmt: skip
    ax.set_aspect("equal")
    ax.legend(title="model: AUC [95% CI]", fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    save_figure(fig, path)


def pr_figure(sweep: Sweep, table: pd.DataFrame, path: Path) -> None:
    n = len(table)
    cols = min(5, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False, sharex=True, sharey=True
    )
    for ax, r in zip(axes.flat, table.itertuples(), strict=False):
        pooled = _pooled(sweep, r.model)
        precision, recall, _ = precision_recall_curve(pooled["label"], pooled["prob"])
        ax.plot(recall, precision)
        ax.axhline(pooled["label"].mean(), ls=":", color="grey")
        ax.set_title(r.name, fontsize=10)
        ax.set(xlabel="recall (MI)", ylabel="precision (MI)", xlim=(0, 1), ylim=(0, 1.02))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Precision–recall of the MI class (pooled out-of-fold; dotted: prevalence)")
    fig.tight_layout()
    save_figure(fig, path)


def subgroup_figure(groups: pd.DataFrame, path: Path, order: Sequence[str] | None = None) -> None:
    """Pooled AUC with its CI by sex and by age band, one bar per model (its own colour), the
    legend under the panels so no bar hides. ``order``: the models' display names in Table 2's
    order, so each keeps the ROC figure's colour (default: as they come in ``groups``)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for ax, variable in zip(axes, ("sex", "age"), strict=True):
        part = groups[groups["variable"] == variable]
        labels = sorted(part["group"].unique())
        present = dict.fromkeys(part["name"])
        models = [n for n in order if n in present] if order is not None else list(present)
        width, colours = 0.8 / max(len(models), 1), model_colours(len(models))
        for i, name in enumerate(models):
            rows = part[part["name"] == name].set_index("group").reindex(labels)
            x = np.arange(len(labels)) + i * width - 0.4 + width / 2
            err = np.vstack([rows["auc"] - rows["auc_low"], rows["auc_high"] - rows["auc"]])
            ax.bar(x, rows["auc"], width, yerr=np.nan_to_num(err), capsize=2, label=name, color=colours[i],
                   hatch=["//" if s else "" for s in rows["small"].fillna(True)])  # fmt: skip
        sizes = part.groupby("group")[["n", "n_mi"]].first().reindex(labels)
        ax.set_xticks(
            np.arange(len(labels)),
            [
                f"{g}\nn={n} (MI {m})"
                for g, n, m in zip(labels, sizes["n"], sizes["n_mi"], strict=True)
            ],
        )
        ax.set(
            title=f"AUC by {variable}",
            xlabel=variable if variable == "sex" else "age band (years)",
            ylim=(0.4, 1.0),
        )
    axes[0].set_ylabel("pooled AUC with 95% bootstrap CI")
    fig.suptitle("Subgroups (hatched: fewer than the minimum MI or non-MI records)")
    fig.tight_layout()
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, 0.0))
    save_figure(fig, path)


@dataclass(frozen=True)
class Tables:
    """The report's tables (one row per model, subgroups one per model × group)."""

    table2: pd.DataFrame
    comparisons: pd.DataFrame
    subgroups: pd.DataFrame
    calibration: pd.DataFrame
    validation: pd.DataFrame


def report_tables(sweep: Sweep, s: Settings) -> Tables:
    """Every table of the report, computed once."""
    table = table2(sweep, s)
    calibration = calibration_table(sweep, s.n_bootstrap, s.seed)
    table["ece"] = table["model"].map(calibration.set_index("model")["ece_calibrated"])  # Table 2 shows it too
    return Tables(table, comparisons(sweep, table), subgroups(sweep, s), calibration,
                  validation_table(sweep, table))  # fmt: skip


#: Table 2's headline columns logged per model as ``<model>/<column>`` metrics of the summary run.
HEADLINE = {"table2": ("auc_mean", "auc_sd", "f1_mean", "f1_sd", "pooled_auc", "pooled_auc_low", "pooled_auc_high"),
            "validation": ("val_auc_mean",), "calibration": ("brier_calibrated", "ece_calibrated")}  # fmt: skip


def metric_prefix(model: str) -> str:
    """``model`` as an MLflow metric-name prefix: the ``+`` of an ensemble and the ``@`` of a
    representation (not allowed in a metric name) become ``-``."""
    return re.sub(r"[^\w.\-]", "-", model)


def headline_metrics(tables: Tables) -> dict[str, float]:
    """``{"<model>/<column>": value}`` of :data:`HEADLINE` (finite values only), so the MLflow UI
    compares reports model by model."""
    metrics = {}
    for name, columns in HEADLINE.items():
        for row in getattr(tables, name).itertuples():
            for column in columns:
                value = float(getattr(row, column))
                if np.isfinite(value):
                    metrics[f"{metric_prefix(row.model)}/{column}"] = value
    return metrics


def build_report(
    sweep: Sweep, out_dir: Path, experiment: str, s: Settings, uri: str | None = None, tables: Tables | None = None
) -> dict[str, Path]:
    """Write every report file into ``out_dir`` (from ``tables`` when already computed); return
    them by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = tables or report_tables(sweep, s)
    table, comps, groups = tables.table2, tables.comparisons, tables.subgroups
    calibration, validation = tables.calibration, tables.validation
    files = {name: out_dir / name for name in ("table2.md", "table2.csv", "comparisons.csv", "subgroups.csv", "validation.csv",
                                               "calibration.csv", "roc.png", "pr.png", "subgroups.png",
                                               "calibration.png", "README.md")}  # fmt: skip
    atomic_write_text(files["table2.md"], table2_markdown(table, comps, s.paper))
    write_csv(table, files["table2.csv"])
    write_csv(comps, files["comparisons.csv"])
    write_csv(groups, files["subgroups.csv"])
    write_csv(validation, files["validation.csv"])
    roc_figure(sweep, table, files["roc.png"])
    pr_figure(sweep, table, files["pr.png"])
    subgroup_figure(groups, files["subgroups.png"], order=table["name"])
    write_csv(calibration, files["calibration.csv"])
    reliability_figure(sweep, calibration, files["calibration.png"])
    extra = importance_section(sweep, uri, out_dir) if uri else {}
    st_files = st_attention_section(sweep, uri, out_dir, s.seed) if uri else {}
    files.update(extra)
    files.update(st_files)
    runs = sweep.runs
    readme = [
        f"# Report: {experiment}", "",
        f"{runs['model'].nunique()} models × {runs['fold'].nunique()} folds; data `{runs['data'].iloc[0]}` at "
        f"{runs['sample_rate'].iloc[0]} Hz; fold file sha256 `{runs['fold_hash'].iloc[0]}`.",
        f"Bootstrap: {s.n_bootstrap} patient resamples, seed {s.seed}. Age bands: {[list(b) for b in s.age_bands]}.", "",
        "## Table 2", "", table2_markdown(table, comps, s.paper),
        "Files: [table2.csv](table2.csv), [comparisons.csv](comparisons.csv), [subgroups.csv](subgroups.csv)", "",
        "## Chosen on validation", "",
        "AUC on each fold's validation part, mean ± sd over the folds, of what the packaged model ranks by: "
        "a single model's raw P(MI) (its calibration is strictly increasing: same order), an ensemble's mean of "
        "its members' calibrated P(MI), each record calibrated by a map fitted on the part's other patients. "
        "Choose what to ship here: the test folds above only report.", "", validation_markdown(validation),
        "Files: [validation.csv](validation.csv)", "",
        "## ROC", "", "![ROC](roc.png)", "", "## Precision–recall", "", "![PR](pr.png)", "",
        "## Subgroups", "", "![subgroups](subgroups.png)", "",
        "## Calibration", "",
        "Pooled out-of-fold test predictions, raw P(MI) → calibrated (each fold's calibrator fitted on its "
        "validation part; Brier with a patient-bootstrap 95% CI; ECE over 10 equal-width bins).", "",
        calibration_markdown(calibration), "Files: [calibration.csv](calibration.csv)", "",
        "![calibration](calibration.png)", "",
    ]  # fmt: skip
    if st_files:
        readme += ["## ST-segment attention (Grad-CAM)", "",
                   "Share of Grad-CAM mass in ST segments ÷ share of time they occupy (1 = no preference); "
                   "per lead in [st_attention.csv](st_attention.csv).", "",
                   st_attention_markdown(st_files["st_attention.csv"])]  # fmt: skip
    if extra:
        readme += ["## Feature importance", ""]
        readme += [
            f"![{name}]({name})" if name.endswith(".png") else f"- [{name}]({name})"
            for name in extra
        ]
    atomic_write_text(files["README.md"], "\n".join(readme))
    return files
