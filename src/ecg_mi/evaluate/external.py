"""External validation (``evaluate.py external=true model_uri=<URI> data=<set>``): score a labelled
data set the model never saw with its packaged preprocessing and report the paper's figures.

* **Records** come from the data config's source (``index()`` + ``read(row)``) restricted by
  the same cohort rule as training (``data.cohort``: every MI record plus ``ratio`` seeded
  controls per MI record; ``data.cohort.ratio=null`` keeps every record), read at the source's
  stored rate nearest the model's, and scored exactly like ``predict.py`` does
  (:func:`ecg_mi.predict.score_records`: the input gate, resample, 10 s windows, mean P(MI) over
  windows). A record the gate refuses (``gate.<key>=`` overrides its limits) or that cannot be
  read is left out and listed in ``skipped.csv`` with its ``status`` (refused, error).
* **Figures**: AUC with a patient-bootstrap 95 % CI; F1, sensitivity, specificity and PPV at
  the packaged threshold; calibration — Brier score, expected calibration error (ECE,
  ``n_bins`` equal-width bins of P(MI), weighted by their share of records) and a reliability
  curve; AUC by sex and by age band (the sweep report's subgroup code).
* **Files** under ``external_dir`` (default ``reports/external-<data.name>/``): ``metrics.csv``,
  ``predictions.csv``, ``reliability.csv``, ``subgroups.csv``, ``skipped.csv``,
  ``reliability.png``, ``subgroups.png``, ``README.md``; the summary table is printed and, unless
  ``external_experiment=null``, logged as an MLflow run tagged ``kind=external``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from ecg_mi.calibration import (  # noqa: E402  (shared with the train route and the report)
    N_CALIBRATION_BINS,
    apply_calibration,  # noqa: E402
    brier_score,
    expected_calibration_error,
    reliability_table,
)
from ecg_mi.data.cohort import select_cohort  # noqa: E402
from ecg_mi.errors import ConfigError, DataError  # noqa: E402
from ecg_mi.evaluate.report import Settings, subgroup_figure, subgroups  # noqa: E402
from ecg_mi.evaluate.runs import Sweep  # noqa: E402
from ecg_mi.metrics import f1_at  # noqa: E402
from ecg_mi.predict import (  # noqa: E402
    PackagedModel,
    at_prevalence,
    gate_overrides,
    load_for_scoring,
    progress,
    score_records,
)
from ecg_mi.stats import bootstrap_auc_ci  # noqa: E402
from ecg_mi.utils.io import atomic_write_text  # noqa: E402
from ecg_mi.utils.reporting import markdown_table, save_figure, with_ci, write_csv  # noqa: E402

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- figures (pure)


def threshold_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, float]:
    """F1, sensitivity, specificity and PPV of the MI class when P(MI) ≥ ``threshold``."""
    labels = np.asarray(labels).astype(int)
    predicted = np.asarray(probs) >= threshold
    tp = int((predicted & (labels == 1)).sum())
    fp = int((predicted & (labels == 0)).sum())
    positives, negatives = int((labels == 1).sum()), int((labels == 0).sum())
    return {
        "f1": f1_at(np.asarray(probs), labels, threshold),
        "sensitivity": tp / positives if positives else np.nan,
        "specificity": (negatives - fp) / negatives if negatives else np.nan,
        "ppv": tp / (tp + fp) if tp + fp else np.nan,
    }


def external_metrics(table: pd.DataFrame, threshold: float, n_bootstrap: int, seed: int,
                     n_bins: int = N_CALIBRATION_BINS) -> tuple[dict[str, Any], pd.DataFrame]:  # fmt: skip
    """The headline figures of scored records ``table`` (``label``, ``prob``, ``patient_id``)
    and the reliability curve."""
    labels, probs = table["label"].to_numpy(), table["prob"].to_numpy()
    auc, low, high = bootstrap_auc_ci(labels, probs, table["patient_id"].to_numpy(), n_bootstrap, seed)
    curve = reliability_table(labels, probs, n_bins)
    metrics = {
        "n_records": len(table), "n_patients": int(table["patient_id"].nunique()),
        "n_mi": int(labels.sum()), "auc": auc, "auc_low": low, "auc_high": high,
        "threshold": threshold, **threshold_metrics(labels, probs, threshold),
        "brier": brier_score(labels, probs), "ece": expected_calibration_error(curve),
    }  # fmt: skip
    return metrics, curve


def reliability_figure(curve: pd.DataFrame, probs: np.ndarray, metrics: dict[str, Any], path: Path,
                       after: pd.DataFrame | None = None) -> Path:  # fmt: skip
    """Reliability diagram (observed MI fraction vs mean P(MI) per bin) over a histogram;
    ``after``: the recalibrated model's curve beside it (its ECE in ``metrics['ece_recalibrated']``)."""
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(6, 7), sharex=True, height_ratios=[3, 1])
    filled = curve[curve["n"] > 0]
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    ax.plot(filled["mean_prob"], filled["frac_mi"], "o-", label="model")
    title = f"Reliability: Brier {metrics['brier']:.3f}, ECE {metrics['ece']:.3f}"
    if after is not None:
        shown = after[after["n"] > 0]
        ax.plot(shown["mean_prob"], shown["frac_mi"], "s--", label="recalibrated (cross-fitted)")
        title += f" → {metrics['ece_recalibrated']:.3f}"
    ax.set(ylabel="observed MI fraction", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(loc="upper left", fontsize=8)
    hist.hist(probs, bins=curve["bin_low"].tolist() + [1.0], color="grey")
    hist.set(xlabel="predicted P(MI)", ylabel="records")
    fig.tight_layout()
    return save_figure(fig, path)


def summary_markdown(metrics: dict[str, Any], groups: pd.DataFrame, title: str) -> str:
    """The printed table: headline figures, then AUC by subgroup."""
    m = metrics
    scores = ["F1", "sensitivity", "specificity", "PPV", "Brier", "ECE"]
    headline = pd.DataFrame([[f"{m['n_records']} ({m['n_mi']})", m["n_patients"], with_ci(m["auc"], m["auc_low"], m["auc_high"]),
                              *(f"{m[k.lower()]:.3f}" for k in scores)]],
                            columns=["records (MI)", "patients", "AUC [95% CI]", *scores])  # fmt: skip
    rows = [[f"{g.variable}: {g.group}", f"{g.n} ({g.n_mi})",
             ("–" if pd.isna(g.auc) else with_ci(g.auc, g.auc_low, g.auc_high)) + (" (small)" if g.small else "")]
            for g in groups.itertuples()]  # fmt: skip
    return (f"External validation: {title}\n\n{markdown_table(headline)}\n"
            f"F1, sensitivity, specificity, PPV at the packaged threshold {m['threshold']:.3f}.\n\n"
            + markdown_table(pd.DataFrame(rows, columns=["subgroup", "n (MI)", "AUC [95% CI]"])))  # fmt: skip


# ---------------------------------------------------------------------------- scoring


def native_rate_for(source: Any, model_rate: float, configured: int) -> int:
    """The stored rate to read for a model at ``model_rate`` Hz: the source's rate serving
    that rate, else the one serving ``data.sample_rate`` (the window policy resamples)."""
    try:
        return int(source.native_rate(int(round(model_rate))))
    except ConfigError:
        return int(source.native_rate(int(configured)))


def cohort_of(source: Any, cohort: dict[str, Any]) -> pd.DataFrame:
    """The records to score: the training cohort rule applied to the source's index."""
    return select_cohort(source.index(), ratio=cohort.get("ratio", 2),
                         controls=cohort.get("controls", "non_mi"), seed=cohort.get("seed", 0),
                         max_cases=cohort.get("max_cases"))  # fmt: skip


def score_source(source: Any, rows: pd.DataFrame, model: PackagedModel, native: int,
                 batch_records: int = 32) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Score every row of ``rows`` through the predict route; return the scored records
    (index columns + ``prob``, ``pred``) and the skipped ones (``record_id``, ``status``:
    refused by the input gate or error, ``error``: the reason)."""
    keys = progress(list(range(len(rows))), f"scoring {source.name}", enabled=len(rows) >= 50)
    scored, skipped = [], []
    for s in score_records(keys, lambda i: source.read(rows.iloc[i], native), model, batch_records):
        row = rows.iloc[s.key]
        if s.error is None:
            scored.append({**{k: row[k] for k in ("record_id", "patient_id", "age", "sex", "label")},
                           "prob": s.prob, "pred": int(s.prob >= model.threshold)})  # fmt: skip
        else:
            skipped.append({"record_id": row["record_id"], "status": "refused" if s.refused else "error",
                            "error": s.error})  # fmt: skip
    return (pd.DataFrame(scored, columns=["record_id", "patient_id", "age", "sex", "label", "prob", "pred"]),
            pd.DataFrame(skipped, columns=["record_id", "status", "error"]))  # fmt: skip


# ---------------------------------------------------------------------------- the route


def registered_name(uri: str) -> str | None:
    """The registered model of a ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` URI."""
    if not uri.startswith("models:/"):
        return None
    name = uri[len("models:/") :].split("/")[0].split("@")[0]
    return name or None


def recalibration(table: pd.DataFrame, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """The site's recalibrator (Platt, isotonic or none, chosen by cross-fitted Brier on the
    scored sample, :func:`~ecg_mi.calibration.fit_calibration`) and the sample's P(MI) under
    it cross-fitted (each patient's records mapped by a recalibrator fitted without them), the
    honest figure for its ECE."""
    from ecg_mi.calibration import cross_fitted, fit_calibration

    labels, probs = table["label"].to_numpy().astype(int), table["prob"].to_numpy()
    groups = table["patient_id"].astype(str).to_numpy()
    calibrator, _ = fit_calibration(probs, labels, groups, "auto", seed=seed)
    held_out = cross_fitted(probs, labels, groups, [calibrator["method"]], seed=seed)
    return calibrator, held_out.get(calibrator["method"], probs)


def log_recalibrated(cfg: DictConfig, calibrator: dict[str, Any], table: pd.DataFrame) -> str:
    """Log the packaged model recalibrated on ``table`` in the active run and register it as
    a new version of the model's registered name (or ``register=``); its ``models:/`` URI."""
    import tempfile

    import mlflow
    from mlflow import MlflowClient

    from ecg_mi.packaging import download_package, log_package, site_calibrated_package
    from ecg_mi.predict import model_location

    name = cfg.get("register") or registered_name(str(cfg.model_uri))
    source = f"{cfg.data.name}: {len(table)} records, {int(table['label'].sum())} MI"
    with tempfile.TemporaryDirectory(prefix="ecg_mi_recalibrate_") as where:
        location = model_location(str(cfg.model_uri), mlflow.get_tracking_uri())
        packaged = site_calibrated_package(download_package(location, where), calibrator,
                                           float(table["label"].mean()), source)  # fmt: skip
        logged = log_package(packaged, f"{packaged.info['model']}-site", registered_model_name=name,
                             tags={"model": str(packaged.info["model"]), "registered_model": name})  # fmt: skip
    version = logged.registered_model_version
    MlflowClient().update_model_version(name, version, description=(
        f"{cfg.model_uri} recalibrated ({calibrator['method']}) on {source}, prevalence "
        f"{table['label'].mean():.3f}; threshold {packaged.info['threshold_before_site']:.4f} → "
        f"{packaged.info['threshold']:.4f} (same decisions)."))  # fmt: skip
    return f"models:/{name}/{version}"


def check_external_config(cfg: DictConfig) -> None:
    """Raise one ConfigError for the keys the external route adds."""
    problems = []
    if cfg.get("recalibrate") and cfg.get("prevalence") is not None:
        problems.append("recalibrate=true and prevalence: pass one (the recalibration is fitted on the site's sample)")
    if cfg.get("recalibrate") and not (cfg.get("register") or registered_name(str(cfg.get("model_uri")))):
        problems.append("recalibrate=true: name the registered model for the new version (register=<name>), "
                        "or pass model_uri=models:/<name>@<alias>")
    if cfg.get("recalibrate") and not cfg.get("external_experiment"):
        problems.append("recalibrate=true needs external_experiment (the run that logs the new version)")
    if not isinstance(cfg.get("model_uri"), str) or not cfg.model_uri.strip():
        problems.append("model_uri: missing; pass model_uri=<MLflow model URI> (e.g. models:/ecg-mi@champion)")
    if "data" not in cfg or "source" not in cfg.data:
        problems.append("data: missing; pass data=<data set> (e.g. data=ptbxl data.root=/other/ptbxl)")
    if problems:
        raise ConfigError("; ".join(problems))


def _subgroups(table: pd.DataFrame, name: str, settings: Settings) -> pd.DataFrame:
    """AUC by sex and age band with the sweep report's code (a one-model 'sweep')."""
    sweep = Sweep(runs=pd.DataFrame({"model": [name]}), predictions=table.assign(model=name),
                  incomplete=set())  # fmt: skip
    return subgroups(sweep, settings)


def _log_run(cfg: DictConfig, uri: str, model: PackagedModel, metrics: dict, files: dict[str, Path],
             calibrator: dict[str, Any] | None = None, table: pd.DataFrame | None = None) -> str | None:  # fmt: skip
    import mlflow

    from ecg_mi.tracking import mlflow_run

    tags = {"kind": "external", "model_uri": model.uri, "data": str(cfg.data.name)}
    with mlflow_run(cfg.external_experiment, f"external-{cfg.data.name}", uri, tags):
        mlflow.log_params({"model_uri": model.uri, "data.name": cfg.data.name,
                           "model_sample_rate": model.sample_rate, "threshold": model.threshold,
                           "n_bootstrap": int(cfg.n_bootstrap), "seed": int(cfg.seed)})  # fmt: skip
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                            if isinstance(v, int | float) and np.isfinite(v)})  # fmt: skip
        for path in files.values():
            mlflow.log_artifact(str(path), artifact_path="external")
        if calibrator is not None and table is not None:
            return log_recalibrated(cfg, calibrator, table)
    return None


def run_external(cfg: DictConfig, uri: str, out_dir: Path) -> dict[str, Path]:
    """Externally validate ``cfg.model`` on ``cfg.data`` into ``out_dir`` (module docstring)."""
    check_external_config(cfg)
    model = load_for_scoring(cfg.model_uri, uri, gate_overrides(cfg))
    model = at_prevalence(model, cfg.get("prevalence"), cfg.get("train_prevalence"))
    source = instantiate(cfg.data.source)
    native = native_rate_for(source, model.sample_rate, cfg.data.sample_rate)
    rows = cohort_of(source, dict(cfg.data.get("cohort") or {}))
    table, skipped = score_source(source, rows, model, native)
    if skipped.shape[0]:
        log.warning("left out %d of %d records that could not be scored (see skipped.csv), e.g. %s",
                    len(skipped), len(rows), skipped["error"].iloc[0])  # fmt: skip
    if table.empty or table["label"].nunique() < 2:
        raise DataError(f"{cfg.data.name}: {len(table)} of {len(rows)} records scored, not both "
                        f"classes; {len(skipped)} could not be read (e.g. "
                        f"{skipped['error'].iloc[0] if len(skipped) else '-'})")  # fmt: skip
    settings = Settings(n_bootstrap=int(cfg.n_bootstrap), seed=int(cfg.seed), min_group=int(cfg.min_group),
                        age_bands=[tuple(b) for b in cfg.age_bands])  # fmt: skip
    metrics, curve = external_metrics(table, model.threshold, settings.n_bootstrap, settings.seed)
    metrics.update({"n_skipped": len(skipped), "model_sample_rate": model.sample_rate})
    calibrator, after = None, None
    if cfg.get("recalibrate"):
        calibrator, held_out = recalibration(table, settings.seed)
        after = reliability_table(table["label"].to_numpy().astype(int), held_out)
        metrics.update({"ece_recalibrated": expected_calibration_error(after),
                        "brier_recalibrated": brier_score(table["label"].to_numpy().astype(int), held_out),
                        "recalibration": calibrator["method"]})  # fmt: skip
        table = table.assign(prob_recalibrated=apply_calibration(calibrator, table["prob"].to_numpy()))
    name = str(model.info.get("model", "model"))
    groups = _subgroups(table, name, settings)
    title = f"{model.uri} ({name}, {model.info.get('family', '?')}) on {cfg.data.name}"
    summary = summary_markdown(metrics, groups, title)

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {n: out_dir / n for n in ("metrics.csv", "predictions.csv", "reliability.csv", "subgroups.csv",
                                      "skipped.csv", "reliability.png", "subgroups.png", "README.md")}  # fmt: skip
    write_csv(pd.DataFrame([{"model_uri": model.uri, "data": cfg.data.name, **metrics}]), files["metrics.csv"])
    write_csv(table, files["predictions.csv"])
    write_csv(curve, files["reliability.csv"])
    write_csv(groups, files["subgroups.csv"])
    write_csv(skipped, files["skipped.csv"])
    reliability_figure(curve, table["prob"].to_numpy(), metrics, files["reliability.png"], after)
    subgroup_figure(groups, files["subgroups.png"])
    atomic_write_text(files["README.md"], "\n".join([
        f"# {summary}", f"Read at {native} Hz, scored at the model's {model.sample_rate:g} Hz in "
        f"{model.window_s:g} s windows (P(MI) = mean over a record's windows); {len(skipped)} "
        f"record(s) could not be scored ([skipped.csv](skipped.csv)). Bootstrap: "
        f"{settings.n_bootstrap} patient resamples, seed {settings.seed}.", "",
        "![reliability](reliability.png)", "", "![subgroups](subgroups.png)", ""]))  # fmt: skip
    if cfg.get("external_experiment"):
        version = _log_run(cfg, uri, model, metrics, files, calibrator, table)
        if version:
            print(f"recalibrated ({calibrator['method']}; ECE {metrics['ece']:.3f} → {metrics['ece_recalibrated']:.3f} "
                  f"cross-fitted) and registered as {version}")  # fmt: skip
    print(summary)
    print(f"report: {files['README.md']}")
    return files
