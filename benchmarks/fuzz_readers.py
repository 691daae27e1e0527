"""Mutation fuzz of the ECG export readers: any bytes must give a Record or an EcgMiError.

For every format asked for (registry names from ``ecg_mi.data.readers.FORMATS``; default:
the export adapters over third-party libraries — MUSE, Philips, HL7 aECG, DICOM, SCP-ECG,
generic WFDB), the real samples are found by CONTENT under ``--data`` (default
``../shared/data/ecg_file_formats``): every file whose detected format matches (for WFDB the
header, which drives the reading). Each run writes one random corruption of a sample
(flipped bytes, a cut, inserted bytes, or a digit run replaced by 0 / -1 / 99999999 / 1e308
/ nan) to a temp file — for SCP-ECG every other run gets its CRC recomputed, so that the
corruption reaches the decoder instead of stopping at the checksum — and reads it twice: with the format's reader, and with ``read_ecg``
(detection + reading). Outcomes are counted per format: ``ok`` (a Record), ``ecg_mi_error``
(the contract), ``foreign`` (anything else: a bug, printed with its traceback).

Usage: ``python benchmarks/fuzz_readers.py [--formats ge_muse_xml,scp_ecg] [-n 5000]
[--seed 0] [--data DIR]``. Exits 1 if any foreign exception occurred, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from ecg_mi.data.readers import FORMATS, detect_format, read_ecg
from ecg_mi.data.readers.wfdb_export import looks_like_wfdb_header
from ecg_mi.data.record import Record
from ecg_mi.errors import EcgMiError
from ecg_mi.utils.fuzz import fix_scp_crc, mutate

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ecg_file_formats"
# The project's own readers (CardioSoft; PTB-XL WFDB via read_wfdb) are fuzzed elsewhere.
DEFAULT_FORMATS = [f for f in FORMATS if f != "cardiosoft_xml"]
MAX_TRACEBACKS = 5


def find_samples(data_dir: Path) -> dict[str, list[Path]]:
    """Sample files under ``data_dir`` grouped by their detected format (content-based)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        try:
            fmt = detect_format(path)
        except EcgMiError:
            continue  # licences, SOURCE.txt
        if fmt == "wfdb" and not looks_like_wfdb_header(path.read_bytes()[:4096]):
            continue  # a signal file: its header is the sample
        found.setdefault(fmt, []).append(path)
    return found


def _stage(sample: Path, fmt: str, workdir: Path) -> Path:
    """Copy ``sample`` (and for WFDB its signal files) into ``workdir``; return the mutable file."""
    if fmt == "wfdb":
        for sibling in sample.parent.glob(f"{sample.stem}.*"):
            shutil.copy(sibling, workdir / sibling.name)
    return workdir / sample.name


def _outcome(read, path: Path, counts: dict[str, int], traces: list[str]) -> None:
    try:
        result = read(path)
        if not isinstance(result, Record):
            raise TypeError(f"reader returned {type(result).__name__}, not a Record")
        counts["ok"] += 1
    except EcgMiError:
        counts["ecg_mi_error"] += 1
    except Exception:  # noqa: BLE001 - counting exactly these is the point
        counts["foreign"] += 1
        if len(traces) < MAX_TRACEBACKS:
            traces.append(traceback.format_exc())


def fuzz_format(fmt: str, samples: list[Path], n: int, rng: np.random.Generator) -> dict:
    """``n`` mutations spread over ``samples``; counts for the reader and for read_ecg."""
    counts = {"reader": dict.fromkeys(("ok", "ecg_mi_error", "foreign"), 0)}
    counts["read_ecg"] = dict(counts["reader"])
    traces: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        staged = [(_stage(s, fmt, Path(tmp)), s.read_bytes()) for s in samples]
        for run in range(n):
            path, original = staged[run % len(staged)]
            mutated = mutate(original, rng)
            if fmt == "scp_ecg" and run % 2:
                mutated = fix_scp_crc(mutated)
            path.write_bytes(mutated)
            _outcome(FORMATS[fmt], path, counts["reader"], traces)
            _outcome(read_ecg, path, counts["read_ecg"], traces)
    return {"counts": counts, "traces": traces}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(DEFAULT_FORMATS),
                        help=f"comma-separated registry names (known: {', '.join(FORMATS)})")  # fmt: skip
    parser.add_argument("-n", "--mutations", type=int, default=5000, help="mutations per format")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        print(f"error: unknown format(s) {unknown}; known: {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    if not args.data.is_dir():
        print(f"error: {args.data}: sample folder not found", file=sys.stderr)
        return 2
    samples = find_samples(args.data)
    warnings.simplefilter("ignore")  # overflow warnings from hostile scales are expected
    rng = np.random.default_rng(args.seed)
    total_foreign = 0
    print(f"{'format':20s} {'via':9s} {'ok':>6s} {'ecg_mi_err':>10s} {'foreign':>8s}  samples  s")
    for fmt in formats:
        if not samples.get(fmt):
            print(f"{fmt:20s} (no sample found under {args.data})")
            continue
        start = time.perf_counter()
        result = fuzz_format(fmt, samples[fmt], args.mutations, rng)
        elapsed = time.perf_counter() - start
        for via, c in result["counts"].items():
            total_foreign += c["foreign"]
            print(f"{fmt:20s} {via:9s} {c['ok']:6d} {c['ecg_mi_error']:10d} {c['foreign']:8d}"
                  f"  {len(samples[fmt]):7d}  {elapsed:.0f}")  # fmt: skip
        for trace in result["traces"]:
            print(trace, file=sys.stderr)
    print(f"foreign exceptions: {total_foreign}")
    return 1 if total_foreign else 0


if __name__ == "__main__":
    sys.exit(main())
