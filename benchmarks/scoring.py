"""Issue 35's scoring speed: ``predict.py`` from a cold process, per packaged model kind.

For each ``--model NAME=URI``, ``predict.py model_uri=URI input_list=<files>`` runs twice in a
fresh process: on one file, where start-up is the time from the process's start to its row in
``<output>.partial``; then on ``--n`` shared PTB-XL files (batches of 32), where throughput is
the records over the run's time less that start-up. Reported: start-up (s), records/s, and
the targets of issue 35 (start-up ≤ 3 s; window ResNet ≥ 300, median-beat network ≥ 150,
Extra Trees ≥ 60, a 3-model ensemble ≥ 50 records/s on 2 cores).

``--ensemble NAME=URI+URI+…`` first packages those models as one ensemble (each part weighing
equally, :func:`ecg_mi.packaging.ensemble`), logged in the store's ``scoring-benchmark``
experiment, and measures it like a ``--model``. ``--workers`` is predict's ``workers=``.

Usage::

    python benchmarks/scoring.py --model resnet_beat=runs:/<id> --model extra_trees=runs:/<id> \\
        --ensemble trio=runs:/<a>+runs:/<b>+runs:/<c> [--n 1687] [--tracking-uri sqlite:///…/mlflow.db]
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


def packaged_ensemble(uris: list[str], tracking_uri: str | None) -> str:
    """``runs:/<id>`` of one package averaging the models at ``uris``, logged in the store."""
    import mlflow

    from ecg_mi.packaging import download_package, ensemble, log_package
    from ecg_mi.tracking import ensure_experiment, ensure_store, resolve_tracking_uri

    store = ensure_store(resolve_tracking_uri(tracking_uri))
    mlflow.set_tracking_uri(store)
    with tempfile.TemporaryDirectory(prefix="ecg_mi_parts_") as where:
        from ecg_mi.predict import model_location

        parts = [ensemble([download_package(model_location(u, store), f"{where}/{i}")]) for i, u in enumerate(uris)]
        with mlflow.start_run(experiment_id=ensure_experiment("scoring-benchmark", store)) as run:
            log_package(ensemble(parts), "ensemble")
    return f"runs:/{run.info.run_id}"


def cold_run(uri: str, files: list[str], batch: int, tracking_uri: str | None, workers: str) -> tuple[float, float]:
    """``(s to the first row in the partial file, s in all)`` of one cold ``predict.py`` process."""
    with tempfile.TemporaryDirectory(prefix="ecg_mi_scoring_") as tmp:
        listing, output = Path(tmp) / "inputs.txt", Path(tmp) / "out.csv"
        listing.write_text("\n".join(files) + "\n")
        partial = output.with_name(output.name + ".partial")
        env = {**os.environ, "ECG_MI_NO_PROGRESS": "1", **({"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {})}
        command = [sys.executable, str(REPO / "predict.py"), f"model_uri={uri}", f"input_list={listing}",
                   f"output={output}", f"batch_size={batch}"] + ([f"workers={workers}"] if workers != "unset" else [])  # fmt: skip
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
    parser.add_argument("--model", action="append", default=[], help="NAME=URI (repeatable)")
    parser.add_argument("--ensemble", action="append", default=[], help="NAME=URI+URI+... (repeatable)")
    parser.add_argument("--workers", default="0,auto",
                        help="predict's workers= settings compared side by side (auto: one per core; unset: "
                             "passes none, for a predict.py before workers=)")
    parser.add_argument("--n", type=int, default=1687, help="shared PTB-XL files to score")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    files = shared_files(args.n)
    models = [spec.partition("=")[::2] for spec in args.model]
    models += [(name, packaged_ensemble(uris.split("+"), args.tracking_uri))
               for name, uris in (spec.partition("=")[::2] for spec in args.ensemble)]  # fmt: skip
    settings = args.workers.split(",")
    print(f"predict.py, cold process, {len(files)} shared PTB-XL files (100 Hz), {len(os.sched_getaffinity(0))} "
          f"cores, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"| model | start-up to first record (s) | {' | '.join(f'records/s, workers={w}' for w in settings)} |")
    print("|---|---|" + "---|" * len(settings))
    for name, uri in models:
        startup, _ = cold_run(uri, files[:1], 1, args.tracking_uri, settings[0])
        rates = [len(files) / max(cold_run(uri, files, 32, args.tracking_uri, w)[1] - startup, 1e-9) for w in settings]
        print(f"| {name} | {startup:.1f} | {' | '.join(f'{r:.0f}' for r in rates)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
