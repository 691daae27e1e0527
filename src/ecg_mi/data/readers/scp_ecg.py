"""SCP-ECG (EN 1064 / ISO 11073-91064) binary files.

Layout: a CRC-CCITT (2 bytes, little-endian) over the rest of the record, the record
length (4 bytes), then section 0 (the pointer section) whose 16-byte header carries the
reserved text ``SCPECG``. Samples (sections 5/6, often Huffman-coded, with a reference
beat subtracted) are decoded by ecgdatakit's ``SCPECGParser``; amplitudes are stored in
nV per count. Carts usually store the 8 independent leads; the other 4 are derived.

This module checks the layout and the CRC itself: a mismatch means the bytes were damaged,
and a damaged ECG must not be scored.
"""

from __future__ import annotations

import binascii
import struct
from pathlib import Path

from ecg_mi.data.readers._common import require_file
from ecg_mi.data.readers._ecgdatakit import read_with_ecgdatakit
from ecg_mi.data.record import Record
from ecg_mi.errors import InputError

FORMAT = "scp_ecg"
_MARKER_OFFSET = 16  # 6-byte record header + 10 bytes into section 0's header
_MARKER = b"SCPECG"
_MIN_SIZE = 6 + 16  # record header + one section header


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


def read_scp_ecg(path: str | Path) -> Record:
    """Read an SCP-ECG file into a 12-lead mV Record at the file's own rate."""
    path = require_file(path, "SCP-ECG")
    check_scp_bytes(path.read_bytes(), str(path))
    # Imported on first use: training and the other formats never load ecgdatakit.
    from ecgdatakit.parsing.parsers.scp_ecg import SCPECGParser
    return read_with_ecgdatakit(SCPECGParser, path, FORMAT, "SCP-ECG")
