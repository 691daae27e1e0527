"""Feature benchmark: the project's 12-lead delineation + 408 features vs neurokit2.

On the same 50 real PTB-XL records at 500 Hz (the first 50 ecg_ids with 500 Hz files), per
record:

(a) ecg-mi: ``record_features`` — beat detection on all leads, delineation, all 408 features;
(b) neurokit2: ``ecg_clean`` + ``ecg_peaks`` on lead II (R peaks once), then
    ``ecg_delineate`` (DWT) on each of the 12 leads — delineation only, no features.

Prints seconds per record, the speed ratio (target ≥ 10×), failure counts (ecg-mi: no usable
beats; neurokit2: an exception or no QRS/T boundaries in a lead) and, as a cross-check, the
median absolute difference of lead-II QRS duration and QT between the two (ms).
Needs neurokit2 (``pip install -e '.[bench]'``; ``make bench`` does it).
Usage: ``python benchmarks/features.py [--n 50] [--root PATH]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ecg_mi.data.sources import PtbxlSource
from ecg_mi.features import feature_names, record_features
from ecg_mi.paths import default_data_root

TARGET_RATIO = 10.0
FS = 500


def neurokit_delineate(signal: np.ndarray, fs: int) -> tuple[list[dict] | None, float, float]:
    """neurokit2's 12-lead delineation; (per-lead waves or None on failure, QRS ms, QT ms of lead II)."""
    import neurokit2 as nk

    try:
        clean_ii = nk.ecg_clean(signal[1], sampling_rate=fs)
        _, peaks = nk.ecg_peaks(clean_ii, sampling_rate=fs)
        waves = []
        for lead in range(12):
            clean = nk.ecg_clean(signal[lead], sampling_rate=fs)
            _, w = nk.ecg_delineate(clean, peaks, sampling_rate=fs, method="dwt")
            waves.append(w)
    except Exception:  # neurokit2 raises on records it cannot delineate
        return None, np.nan, np.nan
    w2 = waves[1]
    on, off, t_off = (
        np.asarray(w2[k], dtype=float) for k in ("ECG_R_Onsets", "ECG_R_Offsets", "ECG_T_Offsets")
    )
    n = min(len(on), len(off), len(t_off))
    qrs = np.nanmedian((off[:n] - on[:n]) * 1000 / fs) if n else np.nan
    qt = np.nanmedian((t_off[:n] - on[:n]) * 1000 / fs) if n else np.nan
    return waves, qrs, qt


def lead_failed(w: dict) -> bool:
    return all(
        np.all(np.isnan(np.asarray(w[k], dtype=float))) for k in ("ECG_R_Onsets", "ECG_T_Offsets")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=default_data_root("ptbxl"))
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "features.json"
    )
    args = parser.parse_args()
    try:
        import neurokit2  # noqa: F401
    except ImportError:
        print("error: neurokit2 is not installed (pip install -e '.[bench]')", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    source = PtbxlSource(args.root)
    index = source.index()
    index = index[
        [Path(source.record_path(r, FS) + ".hea").is_file() for _, r in index.iterrows()]
    ].head(args.n)
    signals = [source.read(row, FS).signal for _, row in index.iterrows()]
    names = feature_names()
    qrs_i, qt_i = names.index("lead2_QRS_dur_mean"), names.index("lead2_QT_mean")

    record_features(signals[0], FS)  # warm-up (filter design caches, imports)
    start = time.perf_counter()
    ours = [record_features(s, FS) for s in signals]
    t_ours = (time.perf_counter() - start) / len(signals)

    start = time.perf_counter()
    theirs = [neurokit_delineate(s, FS) for s in signals]
    t_nk = (time.perf_counter() - start) / len(signals)

    ours_failed = sum(bool(np.isnan(v).all()) for v in ours)
    nk_failed_records = sum(w is None for w, _, _ in theirs)
    nk_failed_leads = sum(lead_failed(lead) for w, _, _ in theirs if w is not None for lead in w)
    qrs_diff = np.nanmedian([abs(v[qrs_i] - q) for v, (_, q, _) in zip(ours, theirs, strict=True)])
    qt_diff = np.nanmedian([abs(v[qt_i] - q) for v, (_, _, q) in zip(ours, theirs, strict=True)])
    result = {
        "records": len(signals), "sample_rate_hz": FS,
        "ecg_mi_s_per_record": t_ours, "neurokit2_s_per_record": t_nk, "ratio": t_nk / t_ours,
        "ecg_mi_failed_records": ours_failed, "neurokit2_failed_records": nk_failed_records,
        "neurokit2_failed_leads": nk_failed_leads,
        "lead2_qrs_median_abs_diff_ms": float(qrs_diff), "lead2_qt_median_abs_diff_ms": float(qt_diff),
    }  # fmt: skip
    print(f"{len(signals)} PTB-XL records at {FS} Hz, 12 leads")
    print(
        f"  ecg-mi (detect + delineate + 408 features): {t_ours * 1000:7.1f} ms/record, {ours_failed} failed records"
    )
    print(f"  neurokit2 (ecg_delineate DWT, 12 leads)   : {t_nk * 1000:7.1f} ms/record, "
          f"{nk_failed_records} failed records, {nk_failed_leads} leads without boundaries")  # fmt: skip
    print(f"  speed-up {result['ratio']:.0f}x (target >= {TARGET_RATIO:.0f}x); lead II median |difference| "
          f"QRS {qrs_diff:.0f} ms, QT {qt_diff:.0f} ms")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["ratio"] >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
