"""Byte mutations for fuzzing the readers (``benchmarks/fuzz_readers.py`` and the tests):
any mutant must give a Record or an EcgMiError, never another exception."""

from __future__ import annotations

import binascii
import struct

import numpy as np

#: Numbers that break naive parsers of lengths, rates and scales.
HOSTILE_NUMBERS = (b"0", b"-1", b"99999999", b"1e308", b"nan")


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption: flipped bytes, a cut, an inserted chunk, or a digit replaced by
    a hostile number (lengths, rates, scales)."""
    buf = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:
        for pos in rng.integers(0, len(buf), size=rng.integers(1, 9)):
            buf[pos] = int(rng.integers(256))
    elif kind == 1:
        del buf[int(rng.integers(0, len(buf))) :]
    elif kind == 2:
        pos = int(rng.integers(0, len(buf)))
        buf[pos:pos] = rng.bytes(int(rng.integers(1, 64)))
    else:
        digits = [i for i in rng.integers(0, len(buf), size=64) if chr(buf[i]).isdigit()]
        if digits:
            buf[digits[0] : digits[0] + 1] = HOSTILE_NUMBERS[int(rng.integers(len(HOSTILE_NUMBERS)))]
    return bytes(buf)


def fix_scp_crc(data: bytes) -> bytes:
    """``data`` with its SCP-ECG record CRC recomputed (CRC-CCITT, initial 0xFFFF), so that a
    corruption reaches the decoder instead of stopping at the checksum."""
    if len(data) < 6:
        return data
    length = min(struct.unpack_from("<I", data, 2)[0], len(data))
    return struct.pack("<H", binascii.crc_hqx(data[2:length], 0xFFFF)) + data[2:]
