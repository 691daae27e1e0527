"""How the cost grows with the number of records, up to UK Biobank's 42,648 (issue 37, item 2).

For each size n (``--sizes``, default 1000,5000,20000; 42648 accepted) the benchmark writes a
UKB-like cohort of n synthetic 12-lead records (500 Hz, 10 s, MI : non-MI = 1 : 2) in PTB-XL's
layout — ``ptbxl_database.csv``, ``scp_statements.csv``, ``records500/`` WFDB format-16 files —
and runs the real entry points on it (``data=ptbxl data.root=<that folder>``), each stage in its
own process, timed (wall s) and its memory measured:

1. ``cache``: the signal cache (:func:`ecg_mi.data.store.load_or_build`, a memory-mapped
   ``float32 [n, 12, L]`` array) of the fold DataModule's records, and the fold file;
2. ``features``: the 408 features of those records (:func:`ecg_mi.features.cache.load_or_compute_features`);
3. ``resnet``: ``train.py model=resnet trainer.max_epochs=1`` — one training epoch (with its
   validation pass; ``epoch_s``, from Lightning's ``Timer`` callback in the checkpoint) inside the
   whole run a user gets (set-up, prediction of the validation and test parts, calibration,
   Grad-CAM on the test fold, packaging, MLflow logging);
4. ``xgboost``: ``train.py model=xgboost model.search=none`` — one fit with the paper's
   parameters (``conf/model/xgboost.yaml``'s ``params``, 200 trees), not the default nested
   search (81 points × 5 inner folds + 5 refits); ``fit_s`` is the run's ``fit_seconds``;
5. ``scoring``: ``predict.py`` with the ResNet's packaged model on ``--score-n`` of the
   generated files (0: all n; its default ``workers=auto``); records/s.

Generating the records is set-up, not a measured stage (its time and disk are reported; the
records of the largest size are written once under ``<work-dir>/data`` and each size reads a
prefix of them). The page cache is left as it is: the records were just written, so the cache
build reads them warm.

Memory: while a stage runs, its whole process tree (the stage's process, DataLoader workers,
predict's reading workers, …: ``/proc/<pid>/task/*/children``, recursively) is sampled every
``--sample-interval`` s from ``/proc/<pid>/status``. ``rss`` is the peak of the tree's summed
``VmRSS``, and at least the largest single process's ``ru_maxrss`` from ``wait4`` (which catches
a peak between two samples); ``anon`` is the peak of the summed ``RssAnon`` — memory that only
swap could free. A sum counts the pages a forked worker still shares with its parent once per
process (an upper bound; the same at every size, so the ratios hold); ``pss_anon``, the peak of
the summed ``Pss_Anon`` (``smaps_rollup``: a shared page divided among its sharers, so it counts
once), is read every 5 s only, since one read walks the page tables (~60 ms for a torch process). ``rss`` also counts the
pages of memory-mapped files (the signal cache) that the processes touched: the kernel drops
those under pressure, so a memmap stage's ``rss`` may grow with n while its ``anon`` does not;
the memory target is checked on ``anon``.

Fits: the growth exponent k of each stage (time ∝ n^k) by least squares on log-log over every
size, and between the two largest sizes; the peak-memory ratio between the two largest sizes.
Projections (42,648 records and the paper's full study) continue each stage from the two
largest sizes (:func:`project`): as n^k when it grew faster than linearly there, else along the
line through the two points (a start-up plus a cost per record); the study is composed as

    cache + features + 5 folds × (5 networks × [resnet run + (epochs − 1) × resnet epoch]
                                  + 5 classical models × xgboost run)

i.e. every network costed as the ResNet and every classical model as one XGBoost fit without
search, each run with its set-up and reporting, ``--epochs`` epochs each (conf/trainer/cpu.yaml:
20; early stopping may end sooner), on this machine.

Targets (issue 37): every stage's exponent between 5k and 20k ≤ 1.1; peak memory at 20k ≤ 1.3 ×
at 5k (on ``anon``; ``rss`` printed beside it); cache + features + the one-epoch ResNet run at
20k ≤ 30 min on 2 cores (projected when 20k was not measured).

Everything is written under ``--work-dir`` (default ``$TMPDIR/ecg_mi_scale``; never the
checkout): the records, per size a signal/feature cache (``ECG_MI_CACHE``), a SQLite MLflow
store (``MLFLOW_TRACKING_URI``), the runs' folders, and ``scale.json``. ``--publish`` writes the
table into BENCHMARKS.md's generated ``scale`` section.

Usage::

    python benchmarks/scale.py [--sizes 1000,5000,20000] [--stages cache,features,resnet,xgboost,scoring]
        [--work-dir DIR] [--sample-rate 500] [--num-workers 2] [--score-n 0] [--epochs 20]
        [--set KEY=VALUE ...] [--keep] [--publish]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
UKB_N = 42_648
STAGES = ("cache", "features", "resnet", "xgboost", "scoring")
LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
FS = 500  # Hz of the generated records (UK Biobank's rate)
GAIN = 1000.0  # ADC units per mV of the written format-16 samples (PTB-XL's)
# SCP code of each synthetic infarct territory (PTB-XL's diagnostic class MI), controls NORM.
TERRITORY_CODES = {"inferior": "IMI", "anterior": "ASMI", "lateral": "LMI"}
STATEMENTS = {"IMI": "MI", "ASMI": "MI", "LMI": "MI", "NORM": "NORM"}
# Issue 37's targets.
MAX_EXPONENT = 1.1
MAX_MEMORY_RATIO = 1.3
MAX_PIPELINE_S = 30 * 60.0
TARGET_SIZES = (5000, 20000)
# The paper's full study: 5 folds × (5 networks + 5 classical models).
FOLDS, NETWORKS, CLASSICAL = 5, 5, 5


# ---------------------------------------------------------------------------- fits


def growth_exponent(ns: Sequence[float], seconds: Sequence[float]) -> float:
    """k of ``seconds ∝ ns^k``: least-squares slope of log(seconds) on log(ns); NaN with fewer
    than two distinct sizes or a non-positive time."""
    x, y = np.log(np.asarray(ns, dtype=float)), np.asarray(seconds, dtype=float)
    if len(np.unique(x)) < 2 or not (y > 0).all():
        return float("nan")
    return float(np.polyfit(x, np.log(y), 1)[0])


def two_largest(ns: Sequence[float], values: Sequence[float]) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((n_a, n_b), (v_a, v_b))`` at the two largest distinct sizes, ``n_a < n_b``."""
    pairs = sorted(dict(zip(ns, values, strict=True)).items())
    if len(pairs) < 2:
        raise ValueError("two distinct sizes are needed")
    (n_a, v_a), (n_b, v_b) = pairs[-2], pairs[-1]
    return (n_a, n_b), (v_a, v_b)


def pairwise_exponent(ns: Sequence[float], seconds: Sequence[float]) -> float:
    """k between the two largest sizes: ``log(t_b / t_a) / log(n_b / n_a)`` (NaN if undefined)."""
    try:
        (n_a, n_b), (t_a, t_b) = two_largest(ns, seconds)
    except ValueError:
        return float("nan")
    if t_a <= 0 or t_b <= 0:
        return float("nan")
    return math.log(t_b / t_a) / math.log(n_b / n_a)


def project(ns: Sequence[float], seconds: Sequence[float], n: float) -> float:
    """Seconds at ``n`` (beyond the sizes measured) from the two largest sizes: as ``n^k`` when the
    stage grew faster than linearly between them (k > 1), else along the line through them —
    a fixed start-up plus a cost per record (a sub-linear k only says the start-up still weighs,
    and a power law would let it shrink the per-record cost). One size: proportional."""
    try:
        (n_a, n_b), (t_a, t_b) = two_largest(ns, seconds)
    except ValueError:
        return float(seconds[0]) * n / float(ns[0])
    k = pairwise_exponent(ns, seconds)
    if np.isfinite(k) and k > 1:
        return t_b * (n / n_b) ** k
    per_record = max((t_b - t_a) / (n_b - n_a), 0.0)
    return t_b + per_record * (n - n_b)


# ---------------------------------------------------------------------------- the records


def cohort_index(n: int, seed: int = 0) -> pd.DataFrame:
    """The first ``n`` records of the master list: ``ceil(n/3)`` MI and the rest non-MI, drawn from
    :func:`ecg_mi.data.sources.synthetic.generate_index` (its ages, sexes, patients and seeds), so
    the cohort rule (ratio 2, non-MI controls) keeps every record. Columns: those of
    ``generate_index`` plus ``ecg_id`` (1-based) and ``scp_codes``."""
    from ecg_mi.data.sources.synthetic import generate_index, heart_for

    n_mi = -(-n // 3)
    index, draw = pd.DataFrame(), max(2 * n, 100)
    while (index.empty or (index["label"] == 1).sum() < n_mi or (index["label"] == 0).sum() < n - n_mi):
        index, draw = generate_index(draw, seed), 2 * draw  # P(MI) ≈ 0.28: a larger draw has enough
    picked = pd.concat([index[index["label"] == 1].head(n_mi), index[index["label"] == 0].head(n - n_mi)])
    picked = picked.sort_index().reset_index(drop=True)  # generation order: patients stay together
    codes = [f"{{'{TERRITORY_CODES[heart_for(row).territory]}': 100.0}}" if row["label"] else "{'NORM': 100.0}"
             for _, row in picked.iterrows()]  # fmt: skip
    return picked.assign(ecg_id=np.arange(1, n + 1), scp_codes=codes)


def subset(master: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n``-record cohort inside ``master`` (:func:`cohort_index` of the largest size): its first
    ``ceil(n/3)`` MI and first ``n - ceil(n/3)`` non-MI records, in ``master``'s order, so every
    size reads records written once and a smaller cohort lies inside a larger one."""
    n_mi = -(-n // 3)
    if n > len(master):
        raise ValueError(f"{n} records asked of a master list of {len(master)}")
    mi = master.index[master["label"] == 1][:n_mi]
    non_mi = master.index[master["label"] == 0][: n - n_mi]
    return master.loc[sorted([*mi, *non_mi])].reset_index(drop=True)


def record_name(ecg_id: int) -> str:
    """PTB-XL's 500 Hz path of record ``ecg_id``, relative to the data root, without extension."""
    return f"records500/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_hr"


def write_wfdb16(stem: Path, signal: np.ndarray, fs: float = FS) -> None:
    """``stem.hea`` + ``stem.dat``: ``signal`` ``[12, L]`` mV as one WFDB format-16 file (little-endian
    int16, samples interleaved, gain :data:`GAIN`/mV, baseline 0, checksums), PTB-XL's layout."""
    digital = np.clip(np.round(np.asarray(signal, dtype=np.float64) * GAIN), -32767, 32767).astype("<i2")
    digital.T.tofile(stem.with_suffix(".dat"))  # [L, 12]: sample-major, as format 16 interleaves
    checksums = digital.sum(axis=1, dtype=np.int64) % 65536
    lines = [f"{stem.name} {len(digital)} {fs:g} {digital.shape[1]}"]
    lines += [f"{stem.name}.dat 16 {GAIN:.1f}(0)/mV 16 0 {int(d[0])} {int(c)} 0 {lead}"
              for d, c, lead in zip(digital, checksums, LEADS, strict=True)]  # fmt: skip
    stem.with_suffix(".hea").write_text("\n".join(lines) + "\n")


def _write_chunk(args: tuple[str, list[dict]]) -> int:
    """Synthesize and write the records ``rows`` under ``root``; returns how many."""
    from ecg_mi.data.sources.synthetic import synthesize_record

    root, rows = args
    for row in rows:
        stem = Path(root) / record_name(int(row["ecg_id"]))
        stem.parent.mkdir(parents=True, exist_ok=True)
        write_wfdb16(stem, synthesize_record(pd.Series(row), FS))
    return len(rows)


def disk_bytes(path: Path) -> int:
    """Bytes ``path`` occupies on disk (allocated blocks, as ``du``), not following links."""
    if not path.exists():
        return 0
    if path.is_file() or path.is_symlink():
        return path.lstat().st_blocks * 512
    total = 0
    for folder, _, files in os.walk(path):
        total += sum((Path(folder) / f).lstat().st_blocks * 512 for f in files)
    return total


def generate(data_dir: Path, master: pd.DataFrame, seed: int, jobs: int) -> dict:
    """Write the records of ``master`` under ``data_dir`` (reused when a previous call wrote the same
    list: same size and seed); returns seconds, records written and bytes on disk."""
    manifest = data_dir / "manifest.json"
    spec = {"seed": seed, "n": len(master), "fs": FS}
    done = json.loads(manifest.read_text()) if manifest.is_file() else {}
    if {k: done.get(k) for k in spec} == spec:  # seconds: the time it took when written
        return {"seconds": done.get("seconds", float("nan")), "jobs": done.get("jobs", 0), "written": 0,
                "reused": len(master), "bytes": disk_bytes(data_dir / "records500")}  # fmt: skip
    manifest.unlink(missing_ok=True)
    started = time.perf_counter()
    rows = master.to_dict("records")
    chunks = [(str(data_dir), rows[i : i + 200]) for i in range(0, len(rows), 200)]
    data_dir.mkdir(parents=True, exist_ok=True)
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            written = sum(pool.map(_write_chunk, chunks))
    else:
        written = sum(map(_write_chunk, chunks))
    seconds = time.perf_counter() - started
    manifest.write_text(json.dumps({**spec, "seconds": seconds, "jobs": jobs}))
    return {"seconds": seconds, "jobs": jobs, "written": written, "reused": 0, "bytes": disk_bytes(data_dir / "records500")}


def make_root(root: Path, data_dir: Path, index: pd.DataFrame) -> Path:
    """A PTB-XL root of the records of ``index`` (:func:`subset`): its two tables, ``records500``
    linked to ``data_dir``'s."""
    root.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({
        "ecg_id": index["ecg_id"], "patient_id": index["patient_id"].str.lstrip("P").astype(int),
        "age": index["age"], "sex": index["sex"], "scp_codes": index["scp_codes"],
        "filename_lr": [f"records100/{name[len('records500/'):-3]}_lr" for name in map(record_name, index["ecg_id"])],
        "filename_hr": [record_name(i) for i in index["ecg_id"]],
    })  # fmt: skip
    table.to_csv(root / "ptbxl_database.csv", index=False)
    statements = pd.DataFrame({"diagnostic_class": STATEMENTS}, index=pd.Index(list(STATEMENTS)))
    statements.to_csv(root / "scp_statements.csv")
    link = root / "records500"
    if not link.exists():
        link.symlink_to(data_dir / "records500", target_is_directory=True)
    return root


# ---------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    """One stage's process: wall seconds, peak memory (MB = 2^20 bytes) and its exit."""

    seconds: float
    rss_mb: float  # peak summed VmRSS of the process tree, at least the largest process's ru_maxrss
    anon_mb: float  # peak summed RssAnon of the process tree
    pss_anon_mb: float  # peak summed Pss_Anon of the process tree (sampled every pss_interval s)
    largest_process_mb: float  # ru_maxrss of the largest single process of the tree (wait4)
    max_processes: int  # most processes alive in the tree at one sample
    returncode: int
    log: str


def _tree(pid: int) -> list[int]:
    """``pid`` and every descendant alive now."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(c) for c in handle.read().split())
        except OSError:  # it ended between two reads
            continue
    return found


def _memory_kb(pid: int) -> tuple[int, int]:
    """``(VmRSS, RssAnon)`` of ``pid`` in kB (0, 0 once it ended). From ``status``, whose counters
    cost microseconds to read; ``smaps_rollup``'s proportional sizes would count pages shared
    with forked workers once, but one read walks the page tables (~60 ms for a torch process)
    and holds the process's memory lock meanwhile, slowing the stage it measures."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except OSError:
        pass
    return rss, anon


def _pss_anon_kb(pid: int) -> int:
    """``Pss_Anon`` of ``pid`` in kB (0 once it ended): its anonymous pages, each shared page
    divided among the processes sharing it. Costly (a page-table walk): read seldom."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(command: Sequence[str], env: dict[str, str], cwd: Path, log_path: Path,
            interval: float = 0.2, pss_interval: float = 5.0) -> Measured:  # fmt: skip
    """Run ``command`` (output to ``log_path``), sampling its process tree's memory every
    ``interval`` s, and its proportional anonymous memory every ``pss_interval`` s (see the
    module docstring)."""
    peak_rss = peak_anon = peak_pss = most = 0
    next_pss = 0.0
    with open(log_path, "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            # wait4, not Popen.wait: its rusage holds the tree's largest ru_maxrss (waited-for descendants).
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            pids = _tree(process.pid)
            memory = [_memory_kb(p) for p in pids]
            peak_rss = max(peak_rss, sum(m[0] for m in memory))
            peak_anon = max(peak_anon, sum(m[1] for m in memory))
            most = max(most, len(pids))
            if time.perf_counter() >= next_pss:
                peak_pss = max(peak_pss, sum(_pss_anon_kb(p) for p in pids))
                next_pss = time.perf_counter() + pss_interval
            time.sleep(interval)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    largest = usage.ru_maxrss  # kB on Linux
    text = log_path.read_text(errors="replace")
    return Measured(seconds, max(peak_rss, largest) / 1024, peak_anon / 1024, peak_pss / 1024, largest / 1024,
                    most, process.returncode, text[-3000:])  # fmt: skip


# ---------------------------------------------------------------------------- the stages


def train_overrides(root: Path, args: argparse.Namespace) -> list[str]:
    """The overrides every stage's config shares: this size's data at the benchmark's rate."""
    return ["data=ptbxl", f"data.root={root}", f"data.sample_rate={args.sample_rate}",
            f"data.num_workers={args.num_workers}", "experiment_name=scale", *args.set]  # fmt: skip


def stage_commands(stage: str, root: Path, where: Path, args: argparse.Namespace) -> list[str]:
    """The command of ``stage`` for the size whose data root is ``root`` and folder ``where``."""
    python, common = sys.executable, train_overrides(root, args)
    if stage in ("cache", "features"):
        return [python, str(Path(__file__).resolve()), "--stage-only", stage, "--", *common]
    if stage == "resnet":
        return [python, str(REPO / "train.py"), *common, "model=resnet", "trainer.max_epochs=1",
                "+callbacks.timer._target_=pytorch_lightning.callbacks.Timer",  # the epoch's time, in the checkpoint
                f"hydra.run.dir={where / 'runs' / 'resnet'}", *args.resnet_set]  # fmt: skip
    if stage == "xgboost":
        return [python, str(REPO / "train.py"), *common, "model=xgboost", "model.search=none",
                f"hydra.run.dir={where / 'runs' / 'xgboost'}", *args.xgboost_set]  # fmt: skip
    if stage == "scoring":
        run = json.loads((where / "runs" / "resnet" / "run.json").read_text())
        return [python, str(REPO / "predict.py"), f"model_uri=runs:/{run['run_id']}",
                f"input_list={where / 'score_inputs.txt'}", f"output={where / 'scores.csv'}"]  # fmt: skip
    raise ValueError(f"unknown stage {stage!r}")


def run_stage_only(stage: str, overrides: list[str]) -> None:
    """``--stage-only cache|features``: build the fold DataModule as ``train.py`` would (its
    config composed from ``overrides``, the feature models' DataModule) and fill one cache."""
    from hydra import compose, initialize_config_dir

    from ecg_mi.console import quiet

    quiet(False)
    from ecg_mi.learners import architecture, learner_for

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "model=xgboost"])
    data = learner_for(architecture(cfg.model)).datamodule(cfg)
    if stage == "cache":
        from ecg_mi.data.store import load_or_build

        store = load_or_build(data.source, data.cohort_rows(), data.sample_rate, data.cache_dir)
        print(f"cached {len(store.record_ids)} records in {store.path}")
    else:
        table = data.feature_table
        print(f"features of {len(table.record_ids)} records ({table.n_failed} without beats) in {table.path}")


def resnet_extras(where: Path) -> dict[str, float]:
    """The ResNet run's epoch (train + validation, s: Lightning's Timer state in the checkpoint)."""
    import torch

    checkpoint = torch.load(where / "runs" / "resnet" / "checkpoints" / "best.ckpt", map_location="cpu",
                            weights_only=False)  # fmt: skip
    elapsed = checkpoint["callbacks"]["Timer"]["time_elapsed"]
    return {"epoch_s": float(elapsed["train"]), "validation_s": float(elapsed.get("validate", 0.0))}


def xgboost_extras(where: Path) -> dict[str, float]:
    """The XGBoost run's ``fit_seconds`` from its MLflow run."""
    from mlflow.tracking import MlflowClient

    run = json.loads((where / "runs" / "xgboost" / "run.json").read_text())
    client = MlflowClient(f"sqlite:///{where / 'mlflow.db'}")
    return {"fit_s": float(client.get_run(run["run_id"]).data.metrics["fit_seconds"])}


def scoring_extras(where: Path, scored: int, seconds: float) -> dict[str, float]:
    """Records scored (status ok) and records per second of the scoring run (start-up included)."""
    table = pd.read_csv(where / "scores.csv")
    ok = int((table["status"] == "ok").sum())
    return {"n_scored": float(ok), "n_inputs": float(scored), "records_per_s": ok / seconds}


def run_size(n: int, args: argparse.Namespace, data_dir: Path, master: pd.DataFrame) -> dict:
    """Every selected stage at size ``n``; the size's folder is removed first (cold caches)."""
    where = args.work_dir / f"n{n}"
    shutil.rmtree(where, ignore_errors=True)
    (where / "tmp").mkdir(parents=True)
    index = subset(master, n)
    root = make_root(where / "data", data_dir, index)
    env = {**os.environ, "ECG_MI_CACHE": str(where / "cache"), "MLFLOW_TRACKING_URI": f"sqlite:///{where / 'mlflow.db'}",
           "ECG_MI_NO_PROGRESS": "1", "TMPDIR": str(where / "tmp"), "PYTHONPATH": _pythonpath()}  # fmt: skip
    env.pop("ECG_MI_DATA", None)
    stages: dict[str, dict] = {}
    for stage in args.stages:
        if stage == "scoring":
            n_score = n if args.score_n <= 0 else min(n, args.score_n)
            inputs = [str(root / record_name(i)) + ".hea" for i in index["ecg_id"][:n_score]]
            (where / "score_inputs.txt").write_text("\n".join(inputs) + "\n")
        command = stage_commands(stage, root, where, args)
        print(f"[scale] n={n} {stage}: {shlex.join(command)}", flush=True)
        done = measure(command, env, where, where / f"{stage}.log", args.sample_interval)
        # predict.py exits 2 when some record was refused or failed: counted, not fatal.
        if done.returncode not in ((0, 2) if stage == "scoring" else (0,)):
            raise SystemExit(f"error: n={n} {stage} exited {done.returncode} (log {where / f'{stage}.log'}): "
                             f"{done.log.strip().splitlines()[-1] if done.log.strip() else ''}")  # fmt: skip
        record = {k: v for k, v in asdict(done).items() if k != "log"}
        if stage == "resnet":
            record.update(resnet_extras(where))
        elif stage == "xgboost":
            record.update(xgboost_extras(where))
        elif stage == "scoring":
            record.update(scoring_extras(where, n_score, done.seconds))
        stages[stage] = record
        print(f"[scale] n={n} {stage}: {done.seconds:.1f} s, rss {done.rss_mb:.0f} MB, anon {done.anon_mb:.0f} MB "
              f"(pss {done.pss_anon_mb:.0f} MB), largest process {done.largest_process_mb:.0f} MB", flush=True)  # fmt: skip
    cache = where / "cache"
    disk = {"records": n * _bytes_per_record(data_dir), "signal_cache": disk_bytes(cache / "signals"),
            "features": disk_bytes(cache / "features"), "store": disk_bytes(where / "mlflow.db") + disk_bytes(where / "mlruns"),
            "runs": disk_bytes(where / "runs")}  # fmt: skip
    if not args.keep:  # the signal cache of 20k records at 500 Hz is 4.8 GB
        shutil.rmtree(cache, ignore_errors=True)
    return {"n": n, "stages": stages, "disk_bytes": disk}


def _bytes_per_record(data_dir: Path) -> int:
    first = data_dir / record_name(1)
    return disk_bytes(first.with_suffix(".hea")) + disk_bytes(first.with_suffix(".dat"))


def _pythonpath() -> str:
    """This checkout's ``src`` first, so the stages run the code this script came with."""
    return os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))


# ---------------------------------------------------------------------------- summary


def stage_seconds(size: dict, stage: str) -> float:
    """The seconds a stage's exponent is fitted on: the whole stage process."""
    return float(size["stages"][stage]["seconds"])


def stage_n(size: dict, stage: str) -> float:
    """The records a stage processed (scoring: those it was given)."""
    record = size["stages"][stage]
    return float(record.get("n_inputs", size["n"]))


def summarise(sizes: list[dict], epochs: int) -> dict:
    """Exponents, memory ratios, projections and targets of the measured ``sizes``."""
    stages = [s for s in STAGES if all(s in size["stages"] for size in sizes)]
    fits: dict[str, dict] = {}
    for stage in stages:
        ns = [stage_n(size, stage) for size in sizes]
        seconds = [stage_seconds(size, stage) for size in sizes]
        fit = {"k_fit": growth_exponent(ns, seconds), "k_two_largest": pairwise_exponent(ns, seconds)}
        for memory in ("rss_mb", "anon_mb"):
            try:
                (_, _), (a, b) = two_largest(ns, [size["stages"][stage][memory] for size in sizes])
                fit[f"{memory}_ratio"] = b / a if a > 0 else float("nan")
            except ValueError:
                fit[f"{memory}_ratio"] = float("nan")
        fit["projected_ukb_s"] = project(ns, seconds, UKB_N)
        fits[stage] = fit
    out: dict = {"fits": fits, "sizes_fitted": [size["n"] for size in sizes]}
    out["study"] = study(sizes, fits, epochs)
    out["targets"] = targets(sizes, fits)
    return out


def _projected(sizes: list[dict], stage: str, key: str, n: float) -> float:
    """``key`` (seconds) of ``stage`` projected to ``n`` records (:func:`project`)."""
    return project([size["n"] for size in sizes], [float(size["stages"][stage][key]) for size in sizes], n)


def study(sizes: list[dict], fits: dict, epochs: int) -> dict:
    """The paper's full study at 42,648 records on this machine (module docstring's composition)."""
    needed = ("cache", "features", "resnet", "xgboost")
    if not all(s in fits for s in needed):
        return {}
    cache = _projected(sizes, "cache", "seconds", UKB_N)
    features = _projected(sizes, "features", "seconds", UKB_N)
    resnet_run = _projected(sizes, "resnet", "seconds", UKB_N)
    epoch = _projected(sizes, "resnet", "epoch_s", UKB_N)
    xgboost_run = _projected(sizes, "xgboost", "seconds", UKB_N)
    network_run = resnet_run + (epochs - 1) * epoch
    total = cache + features + FOLDS * (NETWORKS * network_run + CLASSICAL * xgboost_run)
    return {"n": UKB_N, "epochs": epochs, "cache_s": cache, "features_s": features, "resnet_1_epoch_run_s": resnet_run,
            "resnet_epoch_s": epoch, "network_run_s": network_run, "xgboost_run_s": xgboost_run, "total_s": total,
            "formula": f"cache + features + {FOLDS} x ({NETWORKS} x [resnet run + ({epochs} - 1) x resnet epoch] "
                       f"+ {CLASSICAL} x xgboost run)"}  # fmt: skip


def targets(sizes: list[dict], fits: dict) -> list[dict]:
    """Issue 37's targets, each ``{target, value, met}`` (met None when not measurable)."""
    by_n = {size["n"]: size for size in sizes}
    ns = sorted(by_n)
    pair = f"{ns[-2]} → {ns[-1]}" if len(ns) > 1 else "–"
    exact = tuple(ns[-2:]) == TARGET_SIZES
    note = "" if exact else f" (measured between {pair}, not 5k → 20k)"
    out = []
    for stage, fit in fits.items():
        k = fit["k_two_largest"]
        out.append({"target": f"{stage}: exponent ≤ {MAX_EXPONENT}{note}", "value": f"{k:.2f}",
                    "met": None if not np.isfinite(k) else bool(k <= MAX_EXPONENT)})  # fmt: skip
    for stage, fit in fits.items():
        ratio = fit["anon_mb_ratio"]
        out.append({"target": f"{stage}: peak anonymous memory ratio ≤ {MAX_MEMORY_RATIO}{note}",
                    "value": f"{ratio:.2f} (rss {fit['rss_mb_ratio']:.2f})",
                    "met": None if not np.isfinite(ratio) else bool(ratio <= MAX_MEMORY_RATIO)})  # fmt: skip
    pipeline = ("cache", "features", "resnet")
    if all(s in fits for s in pipeline):
        # The pipeline is the cache, the features and one ResNet epoch (its training and
        # validation passes); the whole one-epoch run (set-up, test scoring, Grad-CAM, packaging)
        # is shown beside it.
        def pipeline_s(size_or_n: dict | int, keys: tuple[str, ...]) -> float:
            if isinstance(size_or_n, dict):
                stages = size_or_n["stages"]
                return stage_seconds(size_or_n, "cache") + stage_seconds(size_or_n, "features") + sum(
                    float(stages["resnet"][k]) for k in keys)
            return (_projected(sizes, "cache", "seconds", size_or_n) + _projected(sizes, "features", "seconds", size_or_n)
                    + sum(_projected(sizes, "resnet", k, size_or_n) for k in keys))  # fmt: skip

        at = by_n.get(20000, 20000)
        how = "measured" if 20000 in by_n else f"projected from {ns[-1]}"
        epoch, run = pipeline_s(at, ("epoch_s", "validation_s")), pipeline_s(at, ("seconds",))
        out.append({"target": f"20k records: cache + features + one ResNet epoch ≤ {MAX_PIPELINE_S / 60:.0f} min "
                              f"on {len(os.sched_getaffinity(0))} cores ({how})",
                    "value": f"{epoch / 60:.1f} min (with the whole one-epoch run instead: {run / 60:.1f} min)",
                    "met": bool(epoch <= MAX_PIPELINE_S)})  # fmt: skip
    return out


def _mb(value: float) -> str:
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB"


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "–"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 600 else f"{seconds:.1f} s"


def markdown(record: dict) -> str:
    """The tables of a finished record (JSON of :func:`main`)."""
    sizes, summary = record["sizes"], record["summary"]
    ns = [size["n"] for size in sizes]
    lines = [f"| stage | {' | '.join(f'n = {n:,}' for n in ns)} | k (fit) | k ({ns[-2]:,} → {ns[-1]:,}) | "
             f"rss / anon ratio | projected, n = {UKB_N:,} |" if len(ns) > 1 else
             f"| stage | n = {ns[0]:,} | k (fit) | k | ratio | projected |",
             "|---|" + "---|" * (len(ns) + 4)]  # fmt: skip
    for stage in STAGES:
        if stage not in summary["fits"]:
            continue
        fit = summary["fits"][stage]
        cells = []
        for size in sizes:
            m = size["stages"][stage]
            extra = ""
            if stage == "resnet":
                extra = f", epoch {m['epoch_s']:.0f} s"
            elif stage == "xgboost":
                extra = f", fit {m['fit_s']:.0f} s"
            elif stage == "scoring":
                extra = f", {m['records_per_s']:.0f} rec/s"
            cells.append(f"{m['seconds']:.1f} s{extra}; rss {_mb(m['rss_mb'])}, anon {_mb(m['anon_mb'])} "
                         f"(pss {_mb(m['pss_anon_mb'])})")  # fmt: skip
        lines.append(f"| {stage} | {' | '.join(cells)} | {fit['k_fit']:.2f} | {fit['k_two_largest']:.2f} | "
                     f"{fit['rss_mb_ratio']:.2f} / {fit['anon_mb_ratio']:.2f} | {_duration(fit['projected_ukb_s'])} |")  # fmt: skip
    disk_rows = ("records", "signal_cache", "features", "store", "runs")
    lines.append("| disk: " + ", ".join(disk_rows) + " | "
                 + " | ".join(", ".join(_mb(size["disk_bytes"][k] / 2**20) for k in disk_rows) for size in sizes)
                 + " | | | | |")  # fmt: skip
    gen = record["generation"]
    made = (f"{gen['reused']:,} records reused from an earlier run (generated in {gen['seconds']:.0f} s)" if gen["reused"]
            else f"{gen['written']:,} records generated in {gen['seconds']:.0f} s")  # fmt: skip
    lines += ["", f"Set-up (not a stage): {made} with {gen['jobs']} processes, {_mb(gen['bytes'] / 2**20)} on disk."]
    study = summary.get("study")
    if study:
        lines += ["", f"Paper's full study at {UKB_N:,} records on this machine, projected: **{_duration(study['total_s'])}** "
                  f"= {study['formula']} = {_duration(study['cache_s'])} + {_duration(study['features_s'])} + "
                  f"{FOLDS} × ({NETWORKS} × {_duration(study['network_run_s'])} + {CLASSICAL} × "
                  f"{_duration(study['xgboost_run_s'])}); one ResNet epoch {_duration(study['resnet_epoch_s'])}."]  # fmt: skip
    lines += ["", "Targets (issue 37):", ""]
    for target in summary["targets"]:
        verdict = "n/a" if target["met"] is None else ("met" if target["met"] else "**not met**")
        lines.append(f"- {target['target']}: {target['value']} — {verdict}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000", help=f"record counts, comma-separated (≤ {UKB_N} sensible)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "ecg_mi_scale",
                        help="where everything is written (outside the checkout)")
    parser.add_argument("--sample-rate", type=int, default=500, help="data.sample_rate of every stage (Hz)")
    parser.add_argument("--num-workers", type=int, default=2, help="data.num_workers: DataLoader worker processes")
    parser.add_argument("--score-n", type=int, default=0, help="records scored per size (0: all)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per network run in the study projection")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohort")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="processes generating records")
    parser.add_argument("--sample-interval", type=float, default=0.2, help="s between memory samples")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for every stage's config (repeatable)")
    parser.add_argument("--resnet-set", action="append", default=[], help="KEY=VALUE for the ResNet run only")
    parser.add_argument("--xgboost-set", action="append", default=[], help="KEY=VALUE for the XGBoost run only")
    parser.add_argument("--keep", action="store_true", help="keep each size's signal and feature caches")
    parser.add_argument("--json", type=Path, default=None, help="the record (default <work-dir>/scale.json)")
    parser.add_argument("--publish", action="store_true", help="write the tables into BENCHMARKS.md")
    parser.add_argument("--benchmarks-md", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--stage-only", choices=("cache", "features"), help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.work_dir = args.work_dir.resolve()
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: comma-separated record counts")
    args.stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown or not args.stages:
        parser.error(f"--stages: unknown {unknown}; choose from {','.join(STAGES)}")
    if args.stage_only is None and min(args.sizes, default=0) < 30:
        parser.error(f"--sizes {args.sizes}: at least 30 records each (5 folds with both classes and a validation part)")
    if "scoring" in args.stages and "resnet" not in args.stages:
        parser.error("--stages: scoring scores the ResNet run's packaged model; add resnet")
    if args.work_dir == REPO or REPO in args.work_dir.parents:
        parser.error(f"--work-dir {args.work_dir} is inside the checkout; choose a folder outside it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stage_only:
        run_stage_only(args.stage_only, args.overrides)
        return 0
    from ecg_mi.evaluate.publish import commit, machine, replace_section

    command = "python benchmarks/scale.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    header = {"command": command.strip(), "commit": commit(), "machine": machine(),
              "cores": len(os.sched_getaffinity(0)), "load_average_at_start": os.getloadavg()[0],
              "sample_rate": args.sample_rate, "num_workers": args.num_workers, "stages": args.stages}  # fmt: skip
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data_dir = args.work_dir / "data"
    print(f"[scale] generating {max(args.sizes):,} records under {data_dir}", flush=True)
    master = cohort_index(max(args.sizes), args.seed)
    generation = generate(data_dir, master, args.seed, args.jobs)
    print(f"[scale] generation: {generation}", flush=True)
    sizes = [run_size(n, args, data_dir, master) for n in args.sizes]
    record = {**header, "generation": generation, "sizes": sizes}
    record["summary"] = summarise(sizes, args.epochs)
    target = args.json or args.work_dir / "scale.json"
    target.write_text(json.dumps(record, indent=1, default=float))
    table = markdown(record)
    print(table)
    print(f"[scale] record: {target}")
    if args.publish:
        body = [f"Command: `{record['command']}` · commit `{record['commit']}` · machine: {record['machine']}; "
                f"{record['cores']} cores, load average {record['load_average_at_start']:.1f} at the start; records at "
                f"{FS} Hz, models at {args.sample_rate} Hz, data.num_workers={args.num_workers}.", "", table]  # fmt: skip
        replace_section(args.benchmarks_md, "scale", "\n".join(body))
        print(f"[scale] published: {args.benchmarks_md}")
    return 1 if any(t["met"] is False for t in record["summary"]["targets"]) else 0


if __name__ == "__main__":
    sys.exit(main())
