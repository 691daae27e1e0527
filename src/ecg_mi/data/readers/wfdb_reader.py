"""WFDB records (PTB-XL's ``.hea`` + ``.dat``), read with the ``wfdb`` package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from ecg_mi.data.record import Record, reorder_leads
from ecg_mi.errors import InputError

# Bytes per sample of the WFDB storage formats PTB-XL-like exports use.
_BYTES_PER_SAMPLE = {"16": 2, "32": 4, "80": 1, "61": 2, "160": 2}


def read_wfdb(
    path: str | Path,
    expected_fs: float | None = None,
    record_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Record:
    """Read a 12-lead WFDB record given its path without extension.

    Args:
        path: record path without extension (``.../00001_lr``).
        expected_fs: sampling frequency (Hz) the caller expects; a header that says
            otherwise is an error rather than a silent resample.
        record_id: id to give the Record (default: the file stem).
        metadata: carried into ``Record.metadata``.

    Returns:
        A Record with the signal in mV (physical units), leads in standard order.
    """
    path = Path(path)
    header = path.with_suffix(".hea")
    if not header.is_file():
        raise InputError(f"{header}: WFDB header file not found")
    try:
        head = wfdb.rdheader(str(path))
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on bad headers
        raise InputError(f"{header}: unreadable WFDB header ({exc})") from exc
    if expected_fs is not None and float(head.fs) != float(expected_fs):
        raise InputError(f"{header}: sampling frequency is {head.fs:g} Hz, expected {expected_fs:g} Hz")
    _check_dat_files(path, head)
    try:
        rec = wfdb.rdrecord(str(path), physical=True)
    except Exception as exc:
        raise InputError(f"{path}: unreadable WFDB signal ({exc})") from exc
    signal = rec.p_signal
    if signal is None or signal.shape[0] != head.sig_len:
        got = 0 if signal is None else signal.shape[0]
        raise InputError(f"{path}: truncated signal, {got} of {head.sig_len} samples")
    units = {str(u).lower() for u in rec.units}
    scale = 1.0
    if units == {"uv"}:
        scale = 1e-3
    elif units != {"mv"}:
        raise InputError(f"{header}: signal units {sorted(units)} are not mV or uV")
    signal = reorder_leads(signal.T.astype(np.float32) * np.float32(scale), list(rec.sig_name), str(path))
    return Record(
        record_id=record_id or path.name,
        signal=np.ascontiguousarray(signal),
        fs=float(rec.fs),
        metadata=dict(metadata or {}),
    )


def _check_dat_files(path: Path, head: wfdb.Record) -> None:
    """Fail clearly when a ``.dat`` is missing or shorter than its header promises."""
    for file_name in sorted(set(head.file_name)):
        dat = path.parent / file_name
        if not dat.is_file():
            raise InputError(f"{dat}: WFDB signal file not found (listed in {path.with_suffix('.hea')})")
        n_signals = head.file_name.count(file_name)
        fmt = head.fmt[head.file_name.index(file_name)]
        width = _BYTES_PER_SAMPLE.get(str(fmt))
        if width is None or not head.sig_len:
            continue
        expected = n_signals * head.sig_len * width
        size = dat.stat().st_size
        if size < expected:
            raise InputError(f"{dat}: truncated, {size} bytes but the header needs {expected}")
