"""Run every speed benchmark (``make bench``) and publish what each printed in BENCHMARKS.md.

Each script measures a ratio side by side in one run against the obvious alternative and
prints its own summary; this runner streams it, keeps its last ``--tail`` lines, and writes
them — with the command, commit, machine and wall time — into that script's generated section
of ``BENCHMARKS.md`` (``speed-<script>``), so ``--only`` refreshes some scripts and leaves the
others' figures alone. A script that misses its target exits 1: its section says so and this
runner exits 1 after publishing.

Usage: ``python benchmarks/speed.py [--only ingest,features] [--no-publish]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from ecg_mi.evaluate.publish import commit, machine, replace_section
from ecg_mi.paths import repo_root

ROOT = repo_root()
SCRIPTS = {
    "ingest": "cache load vs re-parsing WFDB (target >= 50x)",
    "features": "408 features vs neurokit2's 12-lead delineation (target >= 10x)",
    "train_overhead": "Lightning epoch vs a plain PyTorch loop (target <= 1.15); loader memory",
    "xgb_search": "XGBoost default search vs the same points through scikit-learn (target <= 10 min per fold)",
    "permutation": "permutation importance, batched vs scikit-learn's, same numbers (target >= 5x)",
}


def run(name: str, tail: int) -> tuple[int, float, list[str]]:
    command = [sys.executable, f"benchmarks/{name}.py"]
    print(f"[bench] {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line.rstrip("\n"))
    code = process.wait()
    kept = [line for line in lines if "Warning" not in line and line.strip()]
    return code, time.perf_counter() - start, kept[-tail:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated subset")
    parser.add_argument("--tail", type=int, default=12, help="printed lines kept per script")
    parser.add_argument("--no-publish", action="store_true")
    parser.add_argument("--benchmarks-md", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(SCRIPTS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {sorted(SCRIPTS)}")
    header = f"`make bench` · commit `{commit()}` · machine: {machine()}."
    failed = []
    for name in names:
        code, seconds, tail = run(name, args.tail)
        status = "target met" if code == 0 else f"**exit {code}: target not met or error**"
        if code:
            failed.append(name)
        body = [f"### {SCRIPTS[name]} — `python benchmarks/{name}.py`", "", header, "",
                f"{status}; wall time {seconds:.0f} s. Its output:", "", "```", *tail, "```"]  # fmt: skip
        if not args.no_publish:
            replace_section(args.benchmarks_md, f"speed-{name}", "\n".join(body))
            print(f"[bench] published {name}: {args.benchmarks_md}", flush=True)
    if failed:
        print(f"[bench] not met or failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
