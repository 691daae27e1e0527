"""False refusals of the input gate (src/ecg_mi/data/gate.py) on the shared real data.

Every record goes through predict.py's own path (:class:`ecg_mi.predict.Preparer`: the resource
guards of ``read_ecg``, the record checks, the model windows and their checks) and is counted
as ``ok``, refused by a check, or an error. Record sets:

* ``ptbxl_100``: the 1,687 rows of the shared ``ptbxl_database.csv``, their 100 Hz files;
* ``ptbxl_500``: the rows with a 500 Hz file (488);
* ``formats``: every export predict.py takes from ``ecg_file_formats/`` (every format folder;
  licences and WFDB signal files are companions, as predict.py skips them).

Limits: the defaults of a package without fitted limits (``default_100``, ``default_500``: a
model at 100 or 500 Hz) and the limits fitted as training fits them (``fitted_100``,
``fitted_500``: a window representation fitted on fold 0's training part of the shared PTB-XL
cohort, through the DataModule, caches in a temporary folder).

Usage: ``python benchmarks/gate_check.py [--data DIR] [--limits default_100,fitted_100]``.
Prints one table (refusals per check and set) and the gate's cost per record; exits 1 if any
record was refused (a false refusal: every record here is a real, valid ECG).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from ecg_mi.data.gate import CHECKS, GateLimits, check_record, check_windows
from ecg_mi.data.readers import read_ecg
from ecg_mi.predict import PackagedModel, expand_input

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
LIMITS = ("default_100", "default_500", "fitted_100", "fitted_500")


def record_sets(data: Path) -> dict[str, list[Path]]:
    """The files of each record set (module docstring)."""
    table = pd.read_csv(data / "ptbxl" / "ptbxl_database.csv")
    hr = [data / "ptbxl" / f"{name}.hea" for name in table["filename_hr"]]
    return {
        "ptbxl_100": [data / "ptbxl" / f"{name}.hea" for name in table["filename_lr"]],
        "ptbxl_500": [path for path in hr if path.is_file()],
        "formats": expand_input(str(data / "ecg_file_formats")).files,
    }


def fitted_limits(data: Path, sample_rate: int) -> GateLimits:
    """The limits a window representation fits on fold 0's training part at ``sample_rate``."""
    from ecg_mi.data.sources import PtbxlSource
    from ecg_mi.datamodule import FoldDataModule
    from ecg_mi.representation import Representation

    with tempfile.TemporaryDirectory(prefix="gate_check_") as cache:
        module = FoldDataModule(PtbxlSource(str(data / "ptbxl"), partial_rates=[500]), Representation("window"),
                                sample_rate=sample_rate, cache_dir=cache)  # fmt: skip
        module.setup()
        return module.fitted.gate_limits


def limits_named(name: str, data: Path) -> GateLimits:
    kind, rate = name.split("_")
    return (
        GateLimits.for_model(float(rate)) if kind == "default" else fitted_limits(data, int(rate))
    )


def count(
    files: list[Path], limits: GateLimits, sample_rate: float
) -> tuple[Counter, dict[str, str], float]:
    """Outcomes of ``files`` through predict's path (``ok``, a check, ``error``), the first
    reason per outcome, and the gate's own cost per scored record (ms: the record and window
    checks, reading and resampling excluded)."""
    model = PackagedModel("gate_check", None, sample_rate, 10.0, 0.5, gate=limits)
    prepare = model.preparer(functools.partial(read_ecg, limits=limits))
    outcomes, examples, seconds, n_timed = Counter(), {}, 0.0, 0
    for path in files:
        scored = prepare(path)
        outcome = (
            scored.error.split(":")[0] if scored.refused else ("error" if scored.error else "ok")
        )
        outcomes[outcome] += 1
        examples.setdefault(outcome, f"{path.name}: {scored.error}")
        if scored.error is None:
            start = time.perf_counter()
            check_record(scored.record, limits)
            check_windows(scored.windows, limits)
            seconds, n_timed = seconds + time.perf_counter() - start, n_timed + 1
    return outcomes, examples, 1000 * seconds / max(n_timed, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--limits", default=",".join(LIMITS), help=f"comma-separated, of {', '.join(LIMITS)}"
    )
    args = parser.parse_args(argv)
    names = [n for n in args.limits.split(",") if n]
    unknown = [n for n in names if n not in LIMITS]
    if unknown or not (args.data / "ptbxl" / "ptbxl_database.csv").is_file():
        print(
            f"error: --limits {unknown} unknown or no shared data under {args.data}",
            file=sys.stderr,
        )
        return 2
    sets = record_sets(args.data)
    rows, refused = [], 0
    for name in names:
        limits = limits_named(name, args.data)
        print(f"{name}: fitted on {limits.fitted_on} records; min_fs {limits.min_fs:g} Hz; amplitude band "
              f"[{limits.min_range_mv:g}, {min(limits.max_range_mv):g}-{max(limits.max_range_mv):g}] mV")  # fmt: skip
        for set_name, files in sets.items():
            outcomes, examples, ms = count(files, limits, float(name.split("_")[1]))
            refused += sum(outcomes[c] for c in CHECKS)
            rows.append({"limits": name, "records": set_name, "n": len(files), "ok": outcomes["ok"],
                         **{c: outcomes[c] for c in CHECKS}, "error": outcomes["error"], "gate ms/record": round(ms, 2)})  # fmt: skip
            for outcome, example in examples.items():
                if outcome != "ok":
                    print(f"  {set_name} {outcome}: {example}")
    table = pd.DataFrame(rows)
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
