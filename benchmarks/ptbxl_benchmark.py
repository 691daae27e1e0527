"""The full benchmark on real PTB-XL with one command (``make benchmark``).

Stages, each timed, with the count of runs trained and of runs reused (a re-run skips every
run that already FINISHED with the same config and fold hash, ``skip_finished``):

1. ``classical``: ``python train.py -m experiment=benchmark_cpu model=<every classical model
   config of conf/model/> fold=0,1,2,3,4`` (the first run builds the signal cache, the fold
   file and the 408 features);
2. ``networks``: the same with every network model config (the median-beat, hybrid and
   PTB-XL-benchmark recipes included: :func:`model_configs`);
3. ``evaluate``: ``python evaluate.py experiment_name=… paper=true ensembles=[…]`` →
   ``reports/<experiment>/`` (Table 2 with the :data:`ENSEMBLES` rows, ECE and train time);
4. publish (skipped with ``--no-publish``): the generated ``benchmark`` section of
   ``BENCHMARKS.md`` and its figures under ``docs/figures/`` (``ecg_mi.evaluate.publish``).

The stage timings, the command, the commit and the machine (taken before the runs) are kept in
``reports/<experiment>/stages.json``; ``--publish-only`` publishes that record again without
running anything (e.g. after editing the publishing code).

Every stage prints its progress (Hydra's job lines, the runs' logs); a failed stage stops the
benchmark with a non-zero exit and the stage named, and the next run resumes where it stopped.

Usage::

    python benchmarks/ptbxl_benchmark.py [--experiment benchmark_cpu|benchmark_gpu]
        [--folds 0,1,2,3,4] [--set KEY=VALUE ...] [--classical-set …] [--network-set …]
        [--no-publish] [--publish-only]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from ecg_mi.evaluate.publish import (
    benchmark_section,
    commit,
    gradcam_examples,
    machine,
    replace_section,
)
from ecg_mi.learners import architecture, learner_for
from ecg_mi.paths import repo_root
from ecg_mi.tracking import resolve_tracking_uri
from ecg_mi.utils.io import atomic_write_text

ROOT = repo_root()


def model_configs(family: str) -> tuple[str, ...]:
    """Every model config of ``conf/model/`` (its file name is the ``model=`` key) whose registered
    architecture belongs to ``family``: the median-beat, hybrid and other recipes of an
    architecture are models of their own in Table 2, and a new one joins by its config."""
    from hydra import compose, initialize_config_dir

    names = sorted(path.stem for path in (ROOT / "conf" / "model").glob("*.yaml"))
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):  # a config may extend another
        return tuple(n for n in names if learner_for(architecture(compose("train", [f"model={n}"]).model)).family == family)


CLASSICAL = model_configs("classical")
NETWORKS = model_configs("network")
# The ensembles Table 2 shows beside the models: the best recipe's candidates (make best).
ENSEMBLES = ("resnet_beat+extra_trees+xgboost", "resnet_beat+extra_trees", "extra_trees+xgboost",
             "resnet_beat+xgboost")  # fmt: skip


def finished_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], "attributes.status = 'FINISHED' and tags.kind = 'fold'",
                              max_results=50_000)  # fmt: skip


def run_stage(name: str, command: list[str], uri: str, experiment: str, expected: int) -> dict:
    """Run one stage in a subprocess (output streamed), timed; count runs trained/reused."""
    print(f"[benchmark] stage {name}: {shlex.join(command)}", flush=True)
    before = len(finished_runs(uri, experiment))
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"[benchmark] stage {name} failed (exit {done.returncode}); "
                         "re-run the same command to resume: finished runs are skipped")  # fmt: skip
    trained = len(finished_runs(uri, experiment)) - before
    row = {"stage": name, "seconds": round(seconds, 1)}
    if expected:
        row.update(trained=trained, reused=expected - trained)
    print(f"[benchmark] stage {name}: {seconds / 60:.1f} min", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="benchmark_cpu", help="conf/experiment/<name>.yaml")
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--set", action="append", default=[], help="override for every train run")
    parser.add_argument(
        "--classical-set", action="append", default=[], help="override for the classical runs"
    )
    parser.add_argument(
        "--network-set", action="append", default=[], help="override for the network runs"
    )
    parser.add_argument(
        "--evaluate-set", action="append", default=[], help="override for evaluate.py"
    )
    parser.add_argument(
        "--no-publish", action="store_true", help="leave BENCHMARKS.md and docs/figures alone"
    )
    parser.add_argument(
        "--publish-only",
        action="store_true",
        help="publish the last finished benchmark (its stages.json) without running anything",
    )
    parser.add_argument("--benchmarks-md", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--figures-dir", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--reports-dir", type=Path, default=ROOT / "reports")
    args = parser.parse_args()

    config = OmegaConf.load(ROOT / "conf" / "experiment" / f"{args.experiment}.yaml")
    experiment = str(config.experiment_name)
    uri = resolve_tracking_uri(None)
    n_folds = len(args.folds.split(","))
    python = sys.executable
    train = [
        python,
        "train.py",
        "-m",
        f"experiment={args.experiment}",
        f"fold={args.folds}",
        *args.set,
    ]
    report_dir = args.reports_dir / experiment
    record_path = report_dir / "stages.json"
    if args.publish_only:
        if not record_path.is_file():
            raise SystemExit(
                f"[benchmark] --publish-only: no {record_path}; run the benchmark first"
            )
        record = json.loads(record_path.read_text())
    else:
        # Commit and machine are taken before the runs, so the record names what trained them.
        command = "make benchmark" + (f" ARGS='{shlex.join(sys.argv[1:])}'" if sys.argv[1:] else "")
        record = {"command": command, "commit": commit(), "machine": machine()}
        record["stages"] = [
            run_stage("classical models (408 features)", [*train, f"model={','.join(CLASSICAL)}", *args.classical_set],
                      uri, experiment, len(CLASSICAL) * n_folds),
            run_stage("networks (signals)", [*train, f"model={','.join(NETWORKS)}", *args.network_set],
                      uri, experiment, len(NETWORKS) * n_folds),
            run_stage("evaluate", [python, "evaluate.py", f"experiment_name={experiment}", "paper=true",
                                   f"ensembles=[{','.join(ENSEMBLES)}]",
                                   f"output_dir={report_dir}", f"hydra.run.dir={args.reports_dir / 'hydra' / experiment}",
                                   *args.evaluate_set], uri, experiment, 0),  # its Hydra log beside the reports
        ]  # fmt: skip
        atomic_write_text(record_path, json.dumps(record, indent=2))
    if args.no_publish:
        return 0
    resnet = [r for r in finished_runs(uri, experiment) if r.data.params.get("model") == "resnet"]
    first_fold = (
        min(resnet, key=lambda r: (int(r.data.params["fold"]), -r.info.start_time))
        if resnet
        else None
    )
    gradcams = gradcam_examples(uri, first_fold.info.run_id) if first_fold else {}
    body = benchmark_section(report_dir, args.figures_dir, record, gradcams, args.benchmarks_md)
    replace_section(args.benchmarks_md, "benchmark", body)
    print(f"[benchmark] published: {args.benchmarks_md} and {args.figures_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
