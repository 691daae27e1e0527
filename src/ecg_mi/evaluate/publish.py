"""Publish a finished benchmark into the repository: a generated section of ``BENCHMARKS.md``
and the figures it shows under ``docs/figures/``.

Everything in the section comes from the run: the report that ``evaluate.py`` wrote
(``table2.md``/``table2.csv``, ``comparisons.csv``, ``st_attention.csv``, figures), Grad-CAM
examples logged by a network run, the stage timings the runner measured, the commit and the
machine. The only text not produced by the run is the literature reference below, cited.
A section lives between ``<!-- generated: NAME begin -->`` and ``<!-- generated: NAME end -->``
markers and is replaced whole on each publish; the rest of the file is left alone.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from ecg_mi.evaluate.runs import fetch
from ecg_mi.evaluate.st_attention import st_attention_markdown
from ecg_mi.learners import ENSEMBLE_ARM
from ecg_mi.learners.classical import ClassicalLearner
from ecg_mi.learners.network import NetworkLearner
from ecg_mi.paths import repo_root
from ecg_mi.utils.io import atomic_path, atomic_write_text
from ecg_mi.utils.reporting import markdown_table

# Strodthoff N. et al., "Deep learning for ECG analysis: benchmarks and insights from PTB-XL",
# IEEE J-BHI 25(5), 2021, Table (superdiagnostic, 100 Hz, best model): macro-AUC 0.930.
PUBLISHED_PTBXL = ("Strodthoff et al. 2021, PTB-XL superdiagnostic (5 classes, macro-AUC, "
                   "100 Hz, recommended 10-fold split, ~17k training records)", 0.930)  # fmt: skip
# Quality targets of issue 7 (mean test AUC over the folds).
TARGETS = {"resnet": 0.90, "best network": 0.92, "xgboost": 0.88}
FIGURES = ("roc.png", "subgroups.png", "importance_xgboost.png")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- generated: {name} begin -->", f"<!-- generated: {name} end -->"


def replace_section(path: Path, name: str, body: str) -> None:
    """Put ``body`` between ``name``'s markers in ``path`` (appended when absent), atomically."""
    begin, end = markers(name)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = f"{text.rstrip()}\n\n{block}\n" if text else f"{block}\n"
    atomic_write_text(path, text)


#: What Table 2's numbers depend on: a change under these after the commit the published table
#: names makes it stale (:func:`stale_table`).
TABLE_SOURCES = ("src/ecg_mi/models", "src/ecg_mi/learners", "conf/model")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def published_commit(document: Path, name: str = "benchmark") -> str:
    """The commit named in the ``Command: … · commit `<id>` …`` line of generated section ``name``."""
    begin, end = markers(name)
    text = document.read_text(encoding="utf-8")
    section = text[text.find(begin) : text.find(end)] if begin in text and end in text else ""
    found = re.search(r"commit `([^`]+)`", section)
    if found is None:
        raise ValueError(f"{document}: no generated {name!r} section naming its commit")
    return found.group(1)


def stale_table(document: Path, root: Path | None = None, sources: Sequence[str] = TABLE_SOURCES) -> str | None:
    """Why the table published in ``document`` no longer describes the code, or None when it does:
    it came from uncommitted changes, or one of ``sources`` changed after its commit (the last
    commit touching them is not an ancestor of, or equal to, the table's)."""
    root = root or repo_root()
    table = published_commit(document)
    if table.endswith("-dirty") or not re.fullmatch(r"[0-9a-f]{7,40}", table):
        return f"{document.name}: Table 2 came from {table!r}, not from a commit; re-run make benchmark on a clean checkout"
    if _git(root, "cat-file", "-e", f"{table}^{{commit}}").returncode != 0:
        return f"{document.name}: Table 2's commit {table} is not in this repository's history"
    last = _git(root, "log", "-1", "--format=%h %s", "--", *sources).stdout.strip()
    last_commit = last.split(" ", 1)[0]
    if last_commit and _git(root, "merge-base", "--is-ancestor", last_commit, table).returncode != 0:
        return (f"{document.name}: Table 2 is stale: it came from commit {table}, but {', '.join(sources)} "
                f"changed since ({last}); re-run make benchmark")  # fmt: skip
    return None


def commit() -> str:
    """``git describe``-like id of the working tree: the commit, ``-dirty`` with tracked changes."""
    root = repo_root()
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}-dirty" if dirty else head


def machine() -> str:
    """CPU model, cores, memory and the versions that decide the numbers."""
    import sklearn
    import torch
    import xgboost

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1).strip() if found else cpu
    memory = ""
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = f", {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores{memory}, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, xgboost {xgboost.__version__}, scikit-learn {sklearn.__version__}")  # fmt: skip


def copy_figure(source: Path, target: Path) -> Path:
    with atomic_path(target, suffix=source.suffix) as tmp:
        shutil.copyfile(source, tmp)
    return target


def gradcam_examples(
    uri: str, run_id: str, kinds: Sequence[str] = ("true_positive", "true_negative")
) -> dict[str, Path]:
    """The first logged Grad-CAM figure of each kind (``gradcam/<kind>_<record>.png``) of a run."""
    names = [a.path for a in MlflowClient(uri).list_artifacts(run_id, "gradcam")]
    picked = {}
    for kind in kinds:
        matches = sorted(n for n in names if Path(n).name.startswith(kind))
        if matches:
            picked[kind] = Path(fetch(uri, run_id, matches[0]))
    return picked


def target_lines(table: pd.DataFrame) -> list[str]:
    """One line per quality target: the measured mean test AUC and whether it is met."""
    auc = table.set_index("model")["auc_mean"]
    networks = table[table["arm"] == NetworkLearner.arm]
    features = table[table["arm"] == ClassicalLearner.arm]
    measured = {"resnet": auc.get("resnet")}
    if not networks.empty:
        best = networks.loc[networks["auc_mean"].idxmax()]
        measured["best network"] = best["auc_mean"]
    measured["xgboost"] = auc.get("xgboost")
    lines = []
    for what, target in TARGETS.items():
        value = measured.get(what)
        if value is None or pd.isna(value):
            continue
        lines.append(f"- {what} mean test AUC {value:.3f} vs target ≥ {target:.2f}: "
                     f"**{'met' if value >= target else 'not met'}**")  # fmt: skip
    if not networks.empty and not features.empty:
        best_net = networks.loc[networks["pooled_auc"].idxmax()]
        best_feat = features.loc[features["pooled_auc"].idxmax()]
        verdict = "beat" if best_net["pooled_auc"] > best_feat["pooled_auc"] else "do **not** beat"
        lines.append(f"- the deep networks {verdict} the features on pooled AUC: best network "
                     f"{best_net['name']} {best_net['pooled_auc']:.3f} vs best feature model "
                     f"{best_feat['name']} {best_feat['pooled_auc']:.3f} (the paper: +0.04 for the networks)")  # fmt: skip
    return lines


def benchmark_section(
    report_dir: Path,
    figures_dir: Path,
    record: Mapping[str, Any],
    gradcams: Mapping[str, Path] | None = None,
    document: Path | None = None,
) -> str:
    """The Markdown of the generated benchmark section; copies its figures to ``figures_dir``.

    ``record``: what the runner measured: ``command``, ``commit``, ``machine`` and ``stages``
    (rows ``{"stage", "seconds", "trained", "reused"}``);
    ``gradcams``: ``{kind: figure}`` examples, published as ``gradcam_<kind>.png`` (a stable
    name, so a re-publish replaces rather than accumulates); ``document``: the Markdown file
    the section goes into (figure links are relative to it; default: one in the repo root).
    """
    table = pd.read_csv(report_dir / "table2.csv")
    base = (document or repo_root() / "BENCHMARKS.md").resolve().parent
    rel = Path(os.path.relpath(figures_dir.resolve(), base)).as_posix()
    shown = [
        copy_figure(report_dir / n, figures_dir / n) for n in FIGURES if (report_dir / n).is_file()
    ]
    shown += [
        copy_figure(p, figures_dir / f"gradcam_{kind}.png") for kind, p in (gradcams or {}).items()
    ]
    stages = record["stages"]
    total = sum(float(s["seconds"]) for s in stages)
    timing = [[s["stage"], f"{float(s['seconds']) / 60:.1f} min", s.get("trained", ""), s.get("reused", "")] for s in stages]
    timing.append(["**total**", f"**{total / 60:.1f} min**", "", ""])
    trained = table.loc[table["arm"] != ENSEMBLE_ARM, "train_minutes"] if "train_minutes" in table else pd.Series(dtype=float)
    lines = [
        f"Command: `{record['command']}` · commit `{record['commit']}` · machine: {record['machine']}.", "",
        markdown_table(pd.DataFrame(timing, columns=["stage", "wall time", "runs trained", "runs reused (already finished)"])),
        *([f"Every model's fold runs, start to end, reused ones included: **{trained.sum():.1f} min** of training "
           f"({len(trained)} models; Table 2's train-time column).", ""] if trained.notna().all() and len(trained) else []),
        "### Table 2 on PTB-XL (ours) beside the paper's UK Biobank Table 2", "",
        (report_dir / "table2.md").read_text(encoding="utf-8").rstrip(), "",
        f"Published reference on PTB-XL — a different task and split, not comparable number for number: "
        f"{PUBLISHED_PTBXL[0]}: {PUBLISHED_PTBXL[1]:.3f}.", "",
        "### Targets", "", *target_lines(table), "",
    ]  # fmt: skip
    st_csv = report_dir / "st_attention.csv"
    if st_csv.is_file():
        lines += ["### ST-segment attention of the networks (Grad-CAM, pooled test folds)", "",
                  "Share of Grad-CAM mass in ST segments ÷ share of time they occupy (1 = no preference).", "",
                  st_attention_markdown(st_csv).rstrip(), ""]  # fmt: skip
    lines += ["### Figures", ""]
    lines += [f"![{p.stem}]({rel}/{p.name})" for p in shown]
    return "\n".join(lines) + "\n"
