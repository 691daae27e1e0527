"""Ingest benchmark: PTB-XL decoding and the signal cache, side by side in one run.

For every record of the PTB-XL folder (default ``../shared/data/ptbxl``) at 100 Hz and at
500 Hz (records that have a 500 Hz file), measure:

(a) a plain ``wfdb.rdsamp`` loop (the obvious alternative),
(b) the project's reader path (``PtbxlSource.read`` → Record, standard lead order, mV),
(c) building the project's cache (decode + write one contiguous .npy, atomically),
(d) loading everything back from the cache (memmap, materialised into RAM).

Prints records/s and the ratios; target: cache load ≥ 50× re-parsing with wfdb.
Files are warm in the page cache for every method (each is timed after a warm-up pass).
Usage: ``python benchmarks/ingest.py [--root PATH] [--repeats 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import wfdb

from ecg_mi.data.sources import PtbxlSource
from ecg_mi.data.store import load_or_build
from ecg_mi.paths import default_data_root

TARGET_CACHE_VS_WFDB = 50.0


def best_of(repeats: int, fn) -> float:
    """Minimum wall time (s) of ``repeats`` calls: the least disturbed measurement."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_rate(source: PtbxlSource, rate: int, repeats: int, cache_root: Path) -> dict:
    index = source.index()
    native = source.native_rate(rate)
    have = index[
        [Path(source.record_path(r, native) + ".hea").is_file() for _, r in index.iterrows()]
    ]
    paths = [source.record_path(r, native) for _, r in have.iterrows()]
    rows = list(have.iterrows())
    n = len(paths)

    def wfdb_loop():
        for p in paths:
            wfdb.rdsamp(p)

    def project_loop():
        for _, row in rows:
            source.read(row, native)

    counter = iter(range(10**6))

    def build_cache():
        load_or_build(source, have, rate, cache_root / f"build{next(counter)}")

    load_or_build(source, have, rate, cache_root / "warm")  # the cache that (d) reads

    def load_cache():
        store = load_or_build(source, have, rate, cache_root / "warm")
        np.array(store.signals)  # materialise every sample

    wfdb_loop()  # warm the page cache for everyone
    t_wfdb = best_of(repeats, wfdb_loop)
    t_project = best_of(repeats, project_loop)
    t_build = best_of(max(1, repeats - 1), build_cache)
    t_load = best_of(repeats * 3, load_cache)
    return {
        "sample_rate_hz": rate,
        "records": n,
        "wfdb_rdsamp_rec_per_s": n / t_wfdb,
        "project_read_rec_per_s": n / t_project,
        "cache_build_rec_per_s": n / t_build,
        "cache_load_rec_per_s": n / t_load,
        "project_read_vs_wfdb": t_wfdb / t_project,
        "cache_load_vs_wfdb": t_wfdb / t_load,
        "cache_load_vs_project_read": t_project / t_load,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=default_data_root("ptbxl"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "ingest.json"
    )
    args = parser.parse_args()
    os.environ.setdefault("ECG_MI_NO_PROGRESS", "1")
    if not (args.root / "ptbxl_database.csv").is_file():
        print(f"error: no PTB-XL data at {args.root} (set --root or $ECG_MI_DATA)", file=sys.stderr)
        return 2
    source = PtbxlSource(args.root)
    results = []
    with tempfile.TemporaryDirectory(prefix="ecg_mi_bench_") as tmp:
        for rate in (100, 500):
            results.append(bench_rate(source, rate, args.repeats, Path(tmp) / str(rate)))
    print(
        f"PTB-XL ingest at {args.root} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    )
    header = f"{'rate':>6} {'records':>8} {'wfdb rec/s':>11} {'project rec/s':>14} {'build rec/s':>12} {'cache rec/s':>12} {'project/wfdb':>13} {'cache/wfdb':>11}"
    print(header)
    for r in results:
        print(f"{r['sample_rate_hz']:>4}Hz {r['records']:>8} {r['wfdb_rdsamp_rec_per_s']:>11.0f} {r['project_read_rec_per_s']:>14.0f} "
              f"{r['cache_build_rec_per_s']:>12.0f} {r['cache_load_rec_per_s']:>12.0f} {r['project_read_vs_wfdb']:>12.1f}x {r['cache_load_vs_wfdb']:>10.0f}x")  # fmt: skip
    worst = min(r["cache_load_vs_wfdb"] for r in results)
    verdict = "met" if worst >= TARGET_CACHE_VS_WFDB else "NOT met"
    print(
        f"target cache load >= {TARGET_CACHE_VS_WFDB:.0f}x wfdb re-parsing: {verdict} (worst {worst:.0f}x)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"results": results, "target": TARGET_CACHE_VS_WFDB}, indent=2))
    return 0 if worst >= TARGET_CACHE_VS_WFDB else 1


if __name__ == "__main__":
    sys.exit(main())
