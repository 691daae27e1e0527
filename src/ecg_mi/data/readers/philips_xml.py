"""Philips Sierra / PhilipsECG XML (``<restingecgdata>``, document versions 1.03–1.04.x):
12 leads XLI-compressed (LZW + delta) in base64, 500 Hz, amplitude in µV per count.

Decoded by ecgdatakit's ``SierraXMLParser``, which undoes the XLI compression and the
lead reconstruction (III, aVR, aVL, aVF are stored as residuals) and applies the file's
``signalresolution``. The UTF-16 1.04 exports are handled through the BOM.

Philips strips last 11 s: ~10.5 s of ECG, then a 1 mV calibration pulse and flat line that
are identical in all 12 leads. Such a tail cannot be an ECG (Einthoven's III = II − I
fails), so it is trimmed; ``metadata['trimmed_tail_samples']`` says how many samples went.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ecg_mi.data.readers._common import require_file
from ecg_mi.data.readers._ecgdatakit import read_with_ecgdatakit
from ecg_mi.data.readers._xml import require_root
from ecg_mi.data.record import Record
from ecg_mi.errors import InputError

FORMAT = "philips_sierra_xml"
ROOT = "restingecgdata"


def read_philips_xml(path: str | Path) -> Record:
    """Read a Philips Sierra XML export into a 12-lead mV Record at the file's own rate."""
    path = require_file(path, "Philips Sierra XML")
    require_root(path, ROOT, "Philips Sierra XML")
    # Imported on first use: training and the other formats never load ecgdatakit.
    from ecgdatakit.parsing.parsers.sierra_xml import SierraXMLParser
    record = read_with_ecgdatakit(SierraXMLParser, path, FORMAT, "Philips Sierra XML")
    keep = identical_tail_start(record.signal)
    if keep == 0:
        raise InputError(f"{path}: every sample is identical in all 12 leads (no ECG)")
    metadata = {**record.metadata, "trimmed_tail_samples": record.signal.shape[1] - keep}
    return dataclasses.replace(
        record, signal=np.ascontiguousarray(record.signal[:, :keep]), metadata=metadata
    )


def identical_tail_start(signal: np.ndarray) -> int:
    """Index where the trailing run of samples identical in every lead begins (``[n, L]``)."""
    same = (signal == signal[:1]).all(axis=0)
    differing = np.flatnonzero(~same)
    return int(differing[-1]) + 1 if differing.size else 0
