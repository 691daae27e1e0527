"""SCP-ECG (EN 1064 / ISO 11073-91064) binary files.

Layout: a CRC-CCITT (2 bytes, little-endian) over the rest of the record, the record
length (4 bytes), then section 0 (the pointer section) whose 16-byte header carries the
reserved text ``SCPECG``. Samples (sections 5/6, often Huffman-coded, with a reference
beat subtracted) are decoded by ecgdatakit's ``SCPECGParser``; amplitudes are stored in
nV per count. Carts usually store the 8 independent leads; the other 4 are derived.

This module checks the layout and the CRC itself: a mismatch means the bytes were damaged,
and a damaged ECG must not be scored. :func:`declared` reads the leads' sample ranges
(section 3) and the sample interval (section 6) before the decoder allocates for them.
"""

from __future__ import annotations

import binascii
import struct
from pathlib import Path

from ecg_mi.data.gate import Declared
from ecg_mi.data.readers._common import require_file
from ecg_mi.data.readers._ecgdatakit import read_with_ecgdatakit
from ecg_mi.data.record import Record
from ecg_mi.errors import InputError

FORMAT = "scp_ecg"
_MARKER_OFFSET = 16  # 6-byte record header + 10 bytes into section 0's header
_MARKER = b"SCPECG"
_SECTION_HEADER = 16
_MIN_SIZE = 6 + _SECTION_HEADER  # record header + one section header


def looks_like_scp(head: bytes) -> bool:
    """True when ``head`` has the SCP record header followed by section 0's header."""
    if len(head) < _MIN_SIZE:
        return False
    section_id = struct.unpack_from("<H", head, 8)[0]
    return section_id == 0 and head[_MARKER_OFFSET : _MARKER_OFFSET + 6] == _MARKER


def check_scp_bytes(data: bytes, source: str) -> None:
    """InputError unless ``data`` has SCP layout, a consistent length and a valid CRC."""
    if not looks_like_scp(data):
        raise InputError(f"{source}: not an SCP-ECG file (no section 0 'SCPECG' header)")
    crc, length = struct.unpack_from("<HI", data, 0)
    if length < _MIN_SIZE or length > len(data):
        raise InputError(
            f"{source}: SCP record length {length} bytes does not fit the file ({len(data)} bytes)"
        )
    actual = binascii.crc_hqx(data[2:length], 0xFFFF)  # CRC-CCITT, initial value 0xFFFF
    if actual != crc:
        raise InputError(
            f"{source}: SCP-ECG CRC mismatch (file says {crc:#06x}, bytes give {actual:#06x}); "
            "the file is damaged"
        )


def _sections(data: bytes) -> dict[int, int]:
    """Section id → byte offset of its body, from section 0's pointers (what fits the data)."""
    length = struct.unpack_from("<I", data, 10)[0] if len(data) >= _MIN_SIZE else 0
    found, end = {}, min(6 + length, len(data))
    for pos in range(6 + _SECTION_HEADER, end - 9, 10):
        sid, size, index = struct.unpack_from("<HII", data, pos)
        if sid and size >= _SECTION_HEADER and 0 < index and index - 1 + size <= len(data):
            found[sid] = index - 1 + _SECTION_HEADER
    return found


def declared(path: Path) -> Declared:
    """The leads (section 3: their count and the longest sample range) and the rhythm rate
    (section 6's sample interval, µs) an SCP-ECG file declares; what it does not say is None."""
    data = Path(path).read_bytes()
    sections = _sections(data)
    n_signals = n_samples = fs = None
    if 3 in sections and sections[3] + 2 <= len(data):
        body = sections[3]
        count = data[body]
        ranges = [struct.unpack_from("<II", data, body + 2 + 9 * i) for i in range(count)
                  if body + 2 + 9 * i + 8 <= len(data)]  # fmt: skip
        if ranges:
            n_signals, n_samples = count, max(end - start + 1 for start, end in ranges)
    if 6 in sections and sections[6] + 4 <= len(data):
        interval_us = struct.unpack_from("<H", data, sections[6] + 2)[0]
        fs = 1e6 / interval_us if interval_us else 0.0
    return Declared(n_signals=n_signals, n_samples=n_samples, fs=fs)


def read_scp_ecg(path: str | Path) -> Record:
    """Read an SCP-ECG file into a 12-lead mV Record at the file's own rate."""
    path = require_file(path, "SCP-ECG")
    check_scp_bytes(path.read_bytes(), str(path))
    # Imported on first use: training and the other formats never load ecgdatakit.
    from ecgdatakit.parsing.parsers.scp_ecg import SCPECGParser
    return read_with_ecgdatakit(SCPECGParser, path, FORMAT, "SCP-ECG")
