"""Generic WFDB records as exported by PhysioNet databases other than PTB-XL (e.g. the PTB
Diagnostic ECG Database: 15 leads — the 12 standard + Frank vx, vy, vz — at 1000 Hz).

Read with ``wfdb.rdrecord`` (physical units, any storage format, several signal files);
extra leads are dropped and missing limb leads derived (:mod:`ecg_mi.data.leads`).
PTB-XL training data keep going through :func:`ecg_mi.data.readers.read_wfdb` (its fast
path); for a plain 12-lead format-16 record both give the same mV values.

A WFDB record is several files tied together by name: the header ``<record>.hea`` lists
its signal files, so the header must keep its ``.hea`` name next to them.

Input gate (:mod:`ecg_mi.data.gate`): :func:`declared` tells the resource guards what the
header declares before any sample is read; :func:`check_signal_files` refuses a signal file
whose size disagrees with the header's rate and sample count; each signal's samples must add
up to its header checksum.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from ecg_mi.data.gate import Declared, positive_rate
from ecg_mi.data.readers._common import (
    build_record,
    library_errors,
    mv_per_unit,
    require_file,
    sex_code,
)
from ecg_mi.data.readers.wfdb_reader import (
    BYTES_PER_SAMPLE,
    SimpleHeader,
    header_lines,
    parse_simple_header,
    read_simple,
    verify_checksums,
)
from ecg_mi.data.record import Record
from ecg_mi.errors import InputError, Refused

FORMAT = "wfdb"
#: The record line: ``name[/segments] n_signals [fs[/counter][(base)] [length ...]]``.
_RECORD_LINE = re.compile(
    r"^[\w\-.~]+(?:/\d+)?\s+\d+(?:\s+[\d.eE+\-]+(?:/[\d.eE+\-]+)?(?:\([\d.eE+\-]+\))?)?(?:\s|$)"
)
#: Largest header read (bytes; real ones are < 4 kB).
_HEADER_BYTES = 1 << 16
#: A signal line starts with a file name (or '~' for no file) and a storage format number.
_SIGNAL_LINE = re.compile(r"^\S+\s+\d+")
_AGE = re.compile(r"^\s*age\s*:\s*(\d+(?:\.\d+)?)\s*$", re.IGNORECASE)
_SEX = re.compile(r"^\s*sex\s*:\s*(\w+)\s*$", re.IGNORECASE)


def _content_lines(text: str) -> list[str]:
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def looks_like_wfdb_header(head: bytes) -> bool:
    """True when ``head`` is text whose first lines are a WFDB record line and signal line."""
    if b"\x00" in head:
        return False
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return False
    lines = _content_lines(text)
    if not lines or not _RECORD_LINE.match(lines[0]):
        return False
    n_signals = int(lines[0].split()[1])
    if "/" in lines[0].split()[0]:  # multi-segment: the next lines name segments
        return len(lines) > 1
    return n_signals == 0 or (len(lines) > 1 and bool(_SIGNAL_LINE.match(lines[1])))


def header_signal_files(head: bytes) -> set[str]:
    """The signal file names a WFDB header lists (empty when it is not a header)."""
    if not looks_like_wfdb_header(head):
        return set()
    lines = _content_lines(head.decode("ascii"))
    return {ln.split()[0] for ln in lines[1:]}


#: WFDB's rate when a header gives none (Hz).
_DEFAULT_FS = 250.0


def _header_fields(header: Path) -> list[list[str]]:
    """The record line and signal lines of ``header``, split into fields."""
    try:
        text = header.read_bytes()[:_HEADER_BYTES].decode("latin-1")
    except OSError as exc:
        raise InputError(f"{header}: cannot read WFDB header ({exc.strerror or exc})") from None
    return [ln.split() for ln in _content_lines(text)]


def _header_rate(record_line: list[str], source: str) -> float:
    """The rate of a record line (``fs[/counter[(base)]]``; 250 Hz when absent); Refused
    (``sample_rate``) when it is not a positive number — wfdb would read ``-500`` as 250 Hz."""
    if len(record_line) < 3:
        return _DEFAULT_FS
    return positive_rate(record_line[2].split("/", 1)[0].split("(", 1)[0], source)


def declared(name: Path) -> Declared:
    """What the header of record ``name`` declares — signals, samples per signal, rate — read
    from the header alone (multi-segment: the rate only); Refused for a rate that is not a
    positive number."""
    header = Path(f"{name}.hea")
    lines = _header_fields(header)
    if not lines or len(lines[0]) < 2:
        return Declared()
    record = lines[0]
    fs = _header_rate(record, str(header))
    if "/" in record[0]:  # multi-segment: the segments' headers hold the samples
        return Declared(fs=fs)
    n_samples = int(record[3]) if len(record) > 3 and record[3].isdigit() else None
    n_signals = int(record[1]) if record[1].isdigit() else None
    return Declared(n_signals=n_signals, n_samples=n_samples, fs=fs)


def check_signal_files(name: Path) -> None:
    """Refuse a signal file whose size disagrees with what the header says it holds (plain
    fixed-width formats only): shorter — ``samples`` (truncated); longer by a frame or more —
    ``sample_rate`` (the header's rate and sample count do not describe the data)."""
    header = Path(f"{name}.hea")
    lines = _header_fields(header)
    record = lines[0] if lines else []
    if len(record) < 4 or "/" in record[0] or not record[3].isdigit():
        return
    n_samples, fs_text = int(record[3]), record[2]
    by_file: dict[str, list[str]] = {}
    for fields in lines[1:]:
        if len(fields) > 1 and fields[0] != "~":
            by_file.setdefault(fields[0], []).append(fields[1])
    for file_name, formats in by_file.items():
        width = BYTES_PER_SAMPLE.get(formats[0])
        dat = name.parent / file_name
        if width is None or len(set(formats)) > 1 or not dat.is_file():
            continue  # mixed formats, samples per frame, skew or byte offset: wfdb checks them
        frame = len(formats) * width
        expected, size = n_samples * frame, dat.stat().st_size
        held = int(size // frame)
        if size < expected:
            raise Refused("samples", f"{file_name} holds {held:,} of the {n_samples:,} samples per signal "
                          "the header declares (truncated?)", str(header))  # fmt: skip
        if size >= expected + frame:
            raise Refused("sample_rate", f"the header declares {n_samples:,} samples per signal at {fs_text} Hz "
                          f"but {file_name} holds {held:,}: the rate or the count does not match the data",
                          str(header))  # fmt: skip


def _comment_fields(comments: list[str]) -> dict[str, Any]:
    """``age`` (years) and ``sex`` (0/1) from header comments like '# age: 81', '# sex: female'."""
    fields: dict[str, Any] = {}
    for line in comments:
        age, sex = _AGE.match(line), _SEX.match(line)
        if age:
            fields["age"] = float(age.group(1))
        if sex:
            fields["sex"] = sex_code(sex.group(1))
    return fields


def _simple_header(header: Path) -> SimpleHeader | None:
    """The header when :func:`~ecg_mi.data.readers.wfdb_reader.read_simple` decodes its record
    (one format-16 file; ``wfdb.rdheader`` alone costs ~20 ms a header with pandas 3), else
    None: wfdb reads it, with its own checks and messages."""
    try:
        return parse_simple_header(header_lines(header))
    except InputError:
        return None


def _comment_lines(header: Path) -> list[str]:
    """The header's comment lines without their ``#`` (as ``wfdb.Record.comments``)."""
    text = header.read_bytes()[:_HEADER_BYTES].decode("latin-1")
    return [ln.strip()[1:].strip() for ln in text.splitlines() if ln.strip().startswith("#")]


def record_name(path: str | Path) -> Path:
    """The WFDB record name (path without ``.hea``) for a header path or a record name."""
    path = Path(path)
    if path.suffix == ".hea":
        return path.with_suffix("")
    if Path(f"{path}.hea").is_file():
        return path
    if path.is_file():
        raise InputError(
            f"{path}: a WFDB header must be named <record>.hea next to its signal files"
        )
    raise InputError(f"{path}.hea: WFDB header file not found")


def read_wfdb_export(path: str | Path) -> Record:
    """Read a WFDB record (header path or record name) into a 12-lead mV Record.

    Args:
        path: ``.../s0010_re.hea`` or the record name ``.../s0010_re``.

    Returns:
        A Record at the header's sampling rate; leads beyond the standard 12 dropped.
    """
    name = record_name(path)
    header = require_file(f"{name}.hea", "WFDB header")
    declared(name)  # a rate wfdb would misread (-500 as 250 Hz) is refused
    check_signal_files(name)
    simple = _simple_header(header)
    if simple is not None:  # one format-16 file (every PTB-XL record): no wfdb header parse
        physical, labels, units = read_simple(name, simple)
        fs, extra = simple.fs, _comment_fields(_comment_lines(header))
        signal = physical * np.array([mv_per_unit(u or "mV", str(header)) for u in units])[:, None]
        return build_record(name, FORMAT, signal, labels, fs, extra)
    with library_errors(header, "WFDB record"):
        # Digital first, for the checksums; then the physical values as rdrecord(physical=True)
        # computes them (the same dac call).
        rec = wfdb.rdrecord(str(name), physical=False, return_res=64)
        sums = list(getattr(rec, "checksum", None) or [])
        if (
            rec.d_signal is not None
            and len(sums) == rec.n_sig
            and set(rec.samps_per_frame or [1]) == {1}
        ):
            verify_checksums(
                rec.d_signal.T, list(rec.sig_name), sums, header
            )  # not smoothed frames
        if rec.d_signal is not None:
            rec.dac(expanded=False, return_res=64, inplace=True)
        if rec.p_signal is None:
            raise InputError(f"{header}: WFDB record without single-frequency signals")
        labels = [str(s) for s in rec.sig_name]
        factors = np.array([mv_per_unit(u or "mV", str(header)) for u in rec.units])
        signal = rec.p_signal.T * factors[:, None]
        fs = float(rec.fs)
        extra = _comment_fields(list(rec.comments or []))
    if signal.shape[1] == 0 or signal.shape[1] != rec.sig_len:
        raise InputError(f"{header}: WFDB signal holds {signal.shape[1]} of {rec.sig_len} samples")
    return build_record(name, FORMAT, signal, labels, fs, extra)
