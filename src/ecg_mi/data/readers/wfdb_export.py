"""Generic WFDB records as exported by PhysioNet databases other than PTB-XL (e.g. the PTB
Diagnostic ECG Database: 15 leads — the 12 standard + Frank vx, vy, vz — at 1000 Hz).

Read with ``wfdb.rdrecord`` (physical units, any storage format, several signal files);
extra leads are dropped and missing limb leads derived (:mod:`ecg_mi.data.leads`).
PTB-XL training data keep going through :func:`ecg_mi.data.readers.read_wfdb` (its fast
path); for a plain 12-lead format-16 record both give the same mV values.

A WFDB record is several files tied together by name: the header ``<record>.hea`` lists
its signal files, so the header must keep its ``.hea`` name next to them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from ecg_mi.data.readers._common import (
    build_record,
    library_errors,
    mv_per_unit,
    require_file,
    sex_code,
)
from ecg_mi.data.record import Record
from ecg_mi.errors import InputError

FORMAT = "wfdb"
#: The record line: ``name[/segments] n_signals [fs[/counter][(base)] [length ...]]``.
_RECORD_LINE = re.compile(
    r"^[\w\-.~]+(?:/\d+)?\s+\d+(?:\s+[\d.eE+\-]+(?:/[\d.eE+\-]+)?(?:\([\d.eE+\-]+\))?)?(?:\s|$)"
)
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
    with library_errors(header, "WFDB record"):
        rec = wfdb.rdrecord(str(name), physical=True)
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
