"""Issue 18's ablation: each lever on its own, on the benchmark's cohort and fold file.

Every *arm* is an experiment config, ``conf/experiment/ablation/<arm>.yaml``: ``cpu_fast`` (the
shared PTB-XL cohort at 100 Hz), one model and the settings the arm changes, with what it tests
and the arm it is compared with under ``ablation``. Each is trained on the five folds in its own
MLflow experiment ``ecg-mi-ablation-<arm>-s<seed>``; a re-run reuses every finished run
(``skip_finished``). Validation and test parts are the cohort's in every arm — only what a
model trains on or how it is built changes — so all arms score the same 936 records, except
the sample-rate arms (``resnet_beat_500*``): 500 Hz files exist for part of the records only,
and those arms compare the rates on that part.

Per (arm, seed) the table gives the mean validation AUC (how a setting is chosen: never on
the test folds), the mean ± sd of the five test-fold AUCs, and the pooled out-of-fold test AUC
with its 95 % patient-bootstrap CI, from the raw and from the calibrated P(MI) (the packaged
model's output; calibration is fitted on each fold's validation part), with the paired DeLong
p against the cohort baseline of the same model and seed. *Ensembles* (``ENSEMBLES``) average
calibrated P(MI) record by record — each member arm over its seed runs first, then the arms with
equal weight (seeds of one arm, or networks with feature models); they are fixed here in
advance, not picked from the table.

Usage::

    python benchmarks/ablation.py --run [--arms resnet,resnet_all] [--seeds 42,1,2]
    python benchmarks/ablation.py            # report only: the table from finished runs
    python benchmarks/ablation.py --publish  # and write it into BENCHMARKS.md
    python benchmarks/ablation.py --arms a,b --section name --publish   # a,b as a table of their own
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from ecg_mi.errors import EcgMiError
from ecg_mi.evaluate.publish import commit, machine, replace_section
from ecg_mi.evaluate.runs import collect
from ecg_mi.paths import repo_root
from ecg_mi.stats import bootstrap_auc_ci, delong_test
from ecg_mi.tracking import resolve_tracking_uri
from ecg_mi.utils.reporting import markdown_table, with_ci

ROOT = repo_root()
FOLDS = "0,1,2,3,4"
ARMS_DIR = ROOT / "conf" / "experiment" / "ablation"  # one experiment config per arm


@dataclass(frozen=True)
class Arm:
    model: str
    what: str
    baseline: str  # the arm this one is compared with (itself for a baseline)


def load_arms(folder: Path = ARMS_DIR) -> dict[str, Arm]:
    """Every arm of ``folder`` by name: its model (the config's ``override /model``), and its
    ``ablation.what`` and ``ablation.baseline``."""
    arms = {}
    for path in sorted(folder.glob("*.yaml")):
        config = OmegaConf.load(path)
        [model] = [entry["override /model"] for entry in config.defaults if "override /model" in entry]
        arms[path.stem] = Arm(model, config.ablation.what, config.ablation.baseline)
    return arms


ARMS = load_arms()

BEAT_ARCHITECTURES = (("resnet_beat_all_statements_last", None), ("resnet1d_wang_beat_all_statements_last", None),
                      ("xresnet1d_beat_all_statements_last", None))  # fmt: skip

#: name → (what, members as (arm, seed or None = every seed run)).
ENSEMBLES: dict[str, tuple[str, tuple[tuple[str, int | None], ...]]] = {
    "resnet_all_aux_last x seeds": ("seed ensemble of the three-lever ResNet", (("resnet_all_aux_last", None),)),
    "resnet x seeds": ("seed ensemble of the benchmarked ResNet", (("resnet", None),)),
    "resnet_beat_all_aux_last x seeds": ("seed ensemble of the median-beat ResNet", (("resnet_beat_all_aux_last", None),)),
    "resnet_beat_all_statements_last x seeds": ("seed ensemble of the median-beat ResNet, statement targets",
                                                (("resnet_beat_all_statements_last", None),)),
    "resnet_beat_all_statements_teacher_last x seeds": ("seed ensemble of the distilled median-beat ResNet",
                                                        (("resnet_beat_all_statements_teacher_last", None),)),
    "resnet_beat_all_aux_last + resnet_all_aux_last x seeds": (
        "networks on the signal alone: median beat and 10 s strip", (("resnet_beat_all_aux_last", None),
                                                                     ("resnet_all_aux_last", None))),
    "random_forest_all + xgboost_paper": ("the two feature models", (("random_forest_all", 42), ("xgboost_paper", 42))),
    "random_forest_all + resnet_all_aux_last x seeds": (
        "features and signal, late fusion", (("random_forest_all", 42), ("resnet_all_aux_last", None))),
    "random_forest_all + resnet_beat_all_aux_last x seeds": (
        "features and median beat, late fusion", (("random_forest_all", 42), ("resnet_beat_all_aux_last", None))),
    "random_forest_all + resnet_beat_all_statements_last x seeds": (
        "features and median beat (statement targets), late fusion",
        (("random_forest_all", 42), ("resnet_beat_all_statements_last", None))),
    "resnet_hybrid_all_statements_last x seeds": ("seed ensemble of the hybrid",
                                                  (("resnet_hybrid_all_statements_last", None),)),
    "random_forest_all + resnet_hybrid_all_statements_last x seeds": (
        "features and hybrid, late fusion", (("random_forest_all", 42), ("resnet_hybrid_all_statements_last", None))),
    "resnet_beat_all_statements_swa x seeds": ("seed ensemble of the median-beat ResNet with weight averaging",
                                               (("resnet_beat_all_statements_swa", None),)),
    "resnet_beat_all_statements_teacher_swa x seeds": (
        "seed ensemble of the distilled median-beat ResNet with weight averaging",
        (("resnet_beat_all_statements_teacher_swa", None),)),
    "random_forest_all + resnet_beat_all_statements_teacher_last x seeds": (
        "features and the distilled median beat, late fusion",
        (("random_forest_all", 42), ("resnet_beat_all_statements_teacher_last", None))),
    "random_forest_all + resnet_beat_all_statements_teacher_swa x seeds": (
        "features and the distilled median beat with weight averaging, late fusion",
        (("random_forest_all", 42), ("resnet_beat_all_statements_teacher_swa", None))),
    "median-beat architectures x seeds": (
        "architecture ensemble on the median beat (signal alone): ResNet, resnet1d_wang, xresnet1d50",
        BEAT_ARCHITECTURES),
    "random_forest_all + median-beat architectures x seeds": (
        "features and the architecture ensemble, late fusion", (("random_forest_all", 42), *BEAT_ARCHITECTURES)),
    "extra_trees_all + resnet_beat_all_statements_teacher_last x seeds": (
        "Extra Trees and the distilled median beat, late fusion",
        (("extra_trees_all", 42), ("resnet_beat_all_statements_teacher_last", None))),
    "extra_trees_all + random_forest_all": ("the two forests", (("extra_trees_all", 42), ("random_forest_all", 42))),
}  # fmt: skip


def experiment_name(arm: str, seed: int) -> str:
    return f"ecg-mi-ablation-{arm}-s{seed}"


def train(arm: str, seed: int) -> None:
    command = [sys.executable, "train.py", "-m", f"experiment=ablation/{arm}", f"fold={FOLDS}", f"seed={seed}",
               "skip_finished=true", "explain.enabled=false", f"experiment_name={experiment_name(arm, seed)}"]  # fmt: skip
    print(f"[ablation] {arm} seed {seed}: {' '.join(command[1:])}", flush=True)
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise SystemExit(f"[ablation] {arm} seed {seed} failed; re-run to resume")


def predictions(arm: str, seed: int, uri: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(fold runs, pooled predictions sorted by record) of a finished arm, else None."""
    try:
        sweep = collect(experiment_name(arm, seed), uri)
    except EcgMiError:
        return None
    runs = sweep.runs[sweep.runs["model"] == ARMS[arm].model]
    pooled = sweep.predictions[sweep.predictions["model"] == ARMS[arm].model]
    return runs, pooled.sort_values("record_id").reset_index(drop=True)


def pooled_auc(pooled: pd.DataFrame, column: str) -> str:
    return with_ci(*bootstrap_auc_ci(pooled["label"], pooled[column], pooled["patient_id"], 1000, 0))


def arm_rows(arms: list[str], seeds: list[int], uri: str) -> tuple[list[dict], dict]:
    rows, found = [], {}
    for arm in arms:
        for seed in seeds:
            result = predictions(arm, seed, uri)
            if result is None:
                continue
            found[(arm, seed)] = result
    for (arm, seed), (runs, pooled) in found.items():
        base = found.get((ARMS[arm].baseline, seed))
        p = ""
        if base is not None and ARMS[arm].baseline != arm:
            _, _, p_value = delong_test(pooled["label"].to_numpy(), pooled["prob"].to_numpy(),
                                        base[1]["prob"].to_numpy())  # fmt: skip
            p = f"{p_value:.3g}"
        rows.append({
            "arm": arm, "what": ARMS[arm].what, "seed": seed, "val AUC": f"{runs['val_auc'].mean():.3f}",
            "test AUC (5 folds)": f"{runs['test_auc'].mean():.3f} ± {runs['test_auc'].std(ddof=1):.3f}",
            "pooled AUC": pooled_auc(pooled, "prob"), "pooled AUC, calibrated": pooled_auc(pooled, "prob_calibrated"),
            "p vs baseline": p,
        })  # fmt: skip
    return rows, found


def ensemble_rows(found: dict) -> list[dict]:
    """Each ensemble's pooled AUC: every member arm's calibrated P(MI) averaged over its seed
    runs first, then the member arms averaged with equal weight — so an arm run at three seeds
    weighs as much as one run once, not three times as much."""
    rows = []
    for name, (what, members) in ENSEMBLES.items():
        chosen = {arm: [seed for (a, seed) in found if a == arm and want in (None, seed)] for arm, want in members}
        runs = sum(len(seeds) for seeds in chosen.values())
        if runs < 2 or not all(chosen.values()):
            continue  # an ensemble of one run, or a member arm not run yet
        tables = {arm: [found[(arm, seed)][1] for seed in seeds] for arm, seeds in chosen.items()}
        first = next(iter(tables.values()))[0]
        if any(not np.array_equal(t["record_id"].to_numpy(), first["record_id"].to_numpy())
               for runs_of_arm in tables.values() for t in runs_of_arm):  # fmt: skip
            raise SystemExit(f"[ablation] {name}: members scored different records")
        per_arm = [np.mean([t["prob_calibrated"].to_numpy() for t in runs_of_arm], axis=0) for runs_of_arm in tables.values()]
        pooled = first[["record_id", "patient_id", "label"]].assign(prob_calibrated=np.mean(per_arm, axis=0))
        rows.append({"ensemble": name, "what": what, "members": len(chosen), "runs": runs,
                     "pooled AUC, calibrated": pooled_auc(pooled, "prob_calibrated")})  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="store_true", help="train the arms' missing runs first")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms to train")
    parser.add_argument("--seeds", default="42", help="comma-separated seeds")
    parser.add_argument("--publish", action="store_true", help="write the table into BENCHMARKS.md")
    parser.add_argument("--section", default="",
                        help="publish --arms as their own table (section ablation-<name>), leaving the main one")  # fmt: skip
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
    if args.run:
        for arm in arms:
            for seed in seeds:
                train(arm, seed)
    uri = resolve_tracking_uri(None)
    rows, found = arm_rows(arms, seeds, uri)
    if not rows:
        raise SystemExit("[ablation] no finished arm yet: run with --run")
    text = markdown_table(pd.DataFrame(rows))
    ensembles = ensemble_rows(found)
    if ensembles:
        text += ("\nEnsembles (each member arm's calibrated P(MI) averaged over its seed runs, then the arms "
                 "averaged with equal weight):\n\n") + markdown_table(pd.DataFrame(ensembles))
    print(text.rstrip())
    if args.publish:
        chosen = f" --arms {args.arms} --section {args.section}" if args.section else ""
        header = (f"`python benchmarks/ablation.py --run{chosen} --seeds {args.seeds}` · commit `{commit()}` · "
                  f"machine: {machine()}.\n\n")  # fmt: skip
        section = f"ablation-{args.section}" if args.section else "ablation"
        replace_section(ROOT / "BENCHMARKS.md", section, header + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
