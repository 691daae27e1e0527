"""Issue 35's scoring speed: ``predict.py`` from a cold process, per packaged model kind.

For each ``--model NAME=URI``, ``predict.py model_uri=URI input_list=<files>`` runs twice in a
fresh process: on one file, where start-up is the time from the process's start to its row in
``<output>.partial``; then on ``--n`` shared PTB-XL files (batches of 32), where throughput is
the records over the run's time less that start-up. Reported: start-up (s), records/s, and
the targets of issue 35 (start-up ≤ 3 s; window ResNet ≥ 300, median-beat network ≥ 150,
Extra Trees ≥ 60, a 3-model ensemble ≥ 50 records/s on 2 cores).

Usage::

    python benchmarks/scoring.py --model resnet_beat=runs:/<id> --model extra_trees=runs:/<id> \\
        [--n 1687] [--tracking-uri sqlite:///…/mlflow.db]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecg_mi.paths import default_data_root

REPO = Path(__file__).resolve().parents[1]


def shared_files(n: int) -> list[str]:
    """The first ``n`` shared PTB-XL 100 Hz headers (sorted)."""
    return sorted(str(p) for p in (default_data_root("ptbxl") / "records100").rglob("*.hea"))[:n]


def cold_run(uri: str, files: list[str], batch: int, tracking_uri: str | None) -> tuple[float, float]:
    """``(s to the first row in the partial file, s in all)`` of one cold ``predict.py`` process."""
    with tempfile.TemporaryDirectory(prefix="ecg_mi_scoring_") as tmp:
        listing, output = Path(tmp) / "inputs.txt", Path(tmp) / "out.csv"
        listing.write_text("\n".join(files) + "\n")
        partial = output.with_name(output.name + ".partial")
        env = {**os.environ, "ECG_MI_NO_PROGRESS": "1", **({"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {})}
        command = [sys.executable, str(REPO / "predict.py"), f"model_uri={uri}", f"input_list={listing}",
                   f"output={output}", f"batch_size={batch}"]  # fmt: skip
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)  # fmt: skip
        while not partial.exists() and process.poll() is None:
            time.sleep(0.01)
        first_row = time.perf_counter() - start
        _, stderr = process.communicate()
        total = time.perf_counter() - start
        if process.returncode != 0:
            raise SystemExit(f"error: {uri}: predict.py exited {process.returncode}: {stderr.strip()[-500:]}")
    return first_row, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="NAME=URI (repeatable)")
    parser.add_argument("--n", type=int, default=1687, help="shared PTB-XL files to score")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    files = shared_files(args.n)
    print(f"predict.py, cold process, {len(files)} shared PTB-XL files (100 Hz), {os.cpu_count()} cores")
    print("| model | start-up to first record (s) | records/s after it |\n|---|---|---|")
    for spec in args.model:
        name, _, uri = spec.partition("=")
        startup, _ = cold_run(uri, files[:1], 1, args.tracking_uri)
        _, total = cold_run(uri, files, 32, args.tracking_uri)
        print(f"| {name} | {startup:.1f} | {len(files) / max(total - startup, 1e-9):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
