"""WFDB records (PTB-XL's ``.hea`` + ``.dat``).

Fast path: the common single-file, format-16 layout (every PTB-XL record) is decoded
directly — the header parsed as text, the samples with ``np.fromfile`` — because
``wfdb.rdheader`` alone costs ~4 ms per record (measured: 270 headers/s). Anything else
(other formats, several ``.dat`` files, skew/offset/multi-frequency fields) goes through
``wfdb.rdrecord``. Tests check both paths give identical physical values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from ecg_mi.data.record import Record, reorder_leads
from ecg_mi.errors import InputError, Refused

#: Bytes per sample of the fixed-width WFDB storage formats.
BYTES_PER_SAMPLE = {"16": 2, "32": 4, "80": 1, "61": 2, "160": 2, "8": 1}


_GAIN = re.compile(r"^([-+]?[\d.]+(?:[eE][-+]?\d+)?)(?:\(([-+]?\d+)\))?(?:/(\S+))?$")
_WFDB_INVALID_16 = -32768  # format-16 sentinel for a missing sample


@dataclass(frozen=True)
class SimpleHeader:
    """A header the fast path can decode: one format-16 ``.dat`` holding every signal."""

    fs: float
    sig_len: int
    dat_name: str
    gains: np.ndarray  # ADC units per physical unit
    baselines: np.ndarray
    units: list[str]
    names: list[str]
    checksums: list[int | None]


def header_lines(header: Path) -> list[list[str]]:
    """The record line and signal lines of ``header``, split into fields and checked.

    Both decoding paths start here, so a header that would make either one crash, guess or
    silently flip a lead is refused with a message naming the line: no signal lines, a count
    that disagrees with the record line, a signal line without its lead name (the 9th
    field), a non-positive length, or an ADC gain that is not a positive number (a negative
    gain negates the lead; WFDB reads 0 as "default 200", which a 12-lead export never means).
    """
    try:
        text = header.read_bytes().decode("latin-1")
    except OSError as exc:
        raise InputError(f"{header}: cannot read WFDB header ({exc.strerror})") from None
    lines = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise InputError(f"{header}: empty WFDB header (no record line)")
    record = lines[0]
    n_sig = _int_field(record, 1, header, "record line: number of signals")
    if n_sig < 1:
        raise InputError(f"{header}: record line declares {n_sig} signals")
    if len(record) > 3 and _int_field(record, 3, header, "record line: signal length") < 1:
        raise InputError(f"{header}: record line declares signal length {record[3]!r}")
    signals = lines[1:]
    if len(signals) != n_sig:
        raise InputError(
            f"{header}: record line declares {n_sig} signals but {len(signals)} signal line(s) follow"
        )
    for k, fields in enumerate(signals, start=1):
        if len(fields) < 9:
            raise InputError(
                f"{header}: signal line {k} has {len(fields)} fields; a 12-lead record needs 9 "
                "(file, format, gain, resolution, zero, first value, checksum, block size, lead name)"
            )
        _check_gain(fields[2], header, k, fields[8])
    return lines


def _int_field(fields: list[str], i: int, header: Path, what: str) -> int:
    try:
        return int(fields[i])
    except (IndexError, ValueError):
        got = fields[i] if i < len(fields) else "nothing"
        raise InputError(f"{header}: {what} must be an integer, found {got!r}") from None


def _check_gain(text: str, header: Path, k: int, lead: str) -> None:
    """Refuse an ADC gain field that is unreadable or not a positive finite number."""
    match = _GAIN.match(text)
    try:
        gain = float(match.group(1)) if match else float("nan")
    except ValueError:  # the pattern admits e.g. '1.2.3'
        gain = float("nan")
    if not np.isfinite(gain) or gain <= 0:
        raise InputError(
            f"{header}: signal line {k} ({lead}): ADC gain {text!r} must be a positive number"
        )


def parse_simple_header(lines: list[list[str]]) -> SimpleHeader | None:
    """Parse checked header ``lines`` if the fast path handles them, else return None."""
    try:
        record = lines[0]
        fs_text, sig_len = record[2], int(record[3])
        if "/" in fs_text or "(" in fs_text:
            return None
        fs = float(fs_text)
        files, gains, baselines, units, names, checksums = set(), [], [], [], [], []
        for fields in lines[1:]:
            if fields[1] != "16":
                return None
            match = _GAIN.match(fields[2])
            adc_zero = int(fields[4])
            files.add(fields[0])
            gains.append(float(match.group(1)))
            baselines.append(int(match.group(2)) if match.group(2) is not None else adc_zero)
            units.append(match.group(3) or "mV")
            names.append(" ".join(fields[8:]))
            checksums.append(int(fields[6]) if fields[6].lstrip("-").isdigit() else None)
    except (ValueError, IndexError, AttributeError):
        return None
    if len(files) != 1:
        return None
    return SimpleHeader(
        fs, sig_len, files.pop(), np.array(gains), np.array(baselines), units, names, checksums
    )


def read_simple(path: Path, head: SimpleHeader) -> tuple[np.ndarray, list[str], list[str]]:
    """Physical signal ``[n_sig, L]`` (float64, header units), names and units."""
    dat = path.parent / head.dat_name
    if not dat.is_file():
        raise InputError(
            f"{dat}: WFDB signal file not found (listed in {path.with_suffix('.hea')})"
        )
    n_sig = len(head.names)
    expected = n_sig * head.sig_len * 2
    size = dat.stat().st_size
    if size < expected:
        raise InputError(f"{dat}: truncated, {size} bytes but the header needs {expected}")
    digital = (
        np.fromfile(dat, dtype="<i2", count=n_sig * head.sig_len).reshape(head.sig_len, n_sig).T
    )
    verify_checksums(digital, head.names, head.checksums, path.with_suffix(".hea"))
    physical = (digital - head.baselines[:, None]) / head.gains[:, None]
    physical[digital == _WFDB_INVALID_16] = np.nan
    return physical, head.names, head.units


def verify_checksums(
    digital: np.ndarray, names: list[str], checksums: list[int | None], header: Path
) -> None:
    """Refused (the input gate's ``checksum``) when a digital signal (row of ``[n_sig, L]``)
    does not add up to its header checksum (16-bit; None: not stated): a damaged or edited
    file must not be read as an ECG."""
    actual = np.asarray(digital).sum(axis=1, dtype=np.int64) % 65536
    for name, stated, found in zip(names, checksums, actual, strict=True):
        if stated is not None and stated % 65536 != int(found):
            raise Refused("checksum", f"signal {name}: the header's checksum is {stated}, its samples add up "
                          f"to {int(found)} (damaged or edited file)", str(header))  # fmt: skip


def _read_with_wfdb(
    path: Path, expected_fs: float | None
) -> tuple[np.ndarray, list[str], list[str], float]:
    header = path.with_suffix(".hea")
    try:
        head = wfdb.rdheader(str(path))
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on bad headers
        raise InputError(f"{header}: unreadable WFDB header ({_describe(exc)})") from exc
    _check_parsed_header(header, head)
    _check_fs(header, float(head.fs), expected_fs)
    _check_dat_files(path, head)
    try:
        rec = wfdb.rdrecord(str(path), physical=True)
    except Exception as exc:
        raise InputError(f"{path}: unreadable WFDB signal ({_describe(exc)})") from exc
    signal = rec.p_signal
    if signal is None or (head.sig_len and signal.shape[0] != head.sig_len):
        got = 0 if signal is None else signal.shape[0]
        raise InputError(f"{path}: truncated signal, {got} of {head.sig_len} samples")
    if signal.ndim != 2 or signal.shape[0] == 0:
        raise InputError(f"{path}: no samples in the WFDB signal file(s)")
    return signal.T, list(rec.sig_name), list(rec.units), float(rec.fs)


def _describe(exc: Exception) -> str:
    """A one-line account of a third-party exception for an InputError message."""
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_parsed_header(header: Path, head: wfdb.Record) -> None:
    """What wfdb's parser leaves unchecked, checked before anything indexes into it.

    ``wfdb.rdheader`` accepts headers whose per-signal lists are ``None`` or of the wrong
    length (it fills what it can); the code below would then fail with a TypeError.
    """
    n_sig = head.n_sig
    if not isinstance(n_sig, int | np.integer) or n_sig < 1:
        raise InputError(f"{header}: WFDB header declares {n_sig!r} signals")
    fs = head.fs
    if not isinstance(fs, int | float | np.number) or not np.isfinite(fs) or fs <= 0:
        raise InputError(f"{header}: sampling frequency {fs!r} is not a positive number")
    for name in ("file_name", "fmt", "sig_name", "units", "adc_gain"):
        values = getattr(head, name, None)
        if not isinstance(values, list) or len(values) != n_sig or None in values:
            raise InputError(f"{header}: WFDB header gives no complete {name} for {n_sig} signals")


def _check_fs(header: Path, fs: float, expected_fs: float | None) -> None:
    if expected_fs is not None and fs != float(expected_fs):
        raise InputError(f"{header}: sampling frequency is {fs:g} Hz, expected {expected_fs:g} Hz")


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
    simple = parse_simple_header(header_lines(header))
    if simple is not None:
        _check_fs(header, simple.fs, expected_fs)
        signal, names, units = read_simple(path, simple)
        fs = simple.fs
    else:
        signal, names, units, fs = _read_with_wfdb(path, expected_fs)
    unit_set = {str(u).lower() for u in units}
    if unit_set == {"uv"}:
        signal = signal * 1e-3
    elif unit_set != {"mv"}:
        raise InputError(f"{header}: signal units {sorted(unit_set)} are not mV or uV")
    signal = reorder_leads(signal.astype(np.float32), names, str(path))
    return Record(
        record_id=record_id or path.name,
        signal=np.ascontiguousarray(signal),
        fs=fs,
        metadata=dict(metadata or {}),
    )


def _check_dat_files(path: Path, head: wfdb.Record) -> None:
    """Fail clearly when a ``.dat`` is missing or shorter than its header promises."""
    for file_name in sorted(set(head.file_name)):
        dat = path.parent / file_name
        if not dat.is_file():
            raise InputError(
                f"{dat}: WFDB signal file not found (listed in {path.with_suffix('.hea')})"
            )
        n_signals = head.file_name.count(file_name)
        fmt = head.fmt[head.file_name.index(file_name)]
        width = BYTES_PER_SAMPLE.get(str(fmt))
        if width is None or not head.sig_len:
            continue
        expected = n_signals * head.sig_len * width
        size = dat.stat().st_size
        if size < expected:
            raise InputError(f"{dat}: truncated, {size} bytes but the header needs {expected}")
