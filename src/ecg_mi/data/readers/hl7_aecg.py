"""HL7 v3 annotated ECG (``<AnnotatedECG xmlns="urn:hl7-org:v3">``), the FDA submission
format: each lead a ``<sequence>`` coded ``MDC_ECG_LEAD_*`` with ``<origin>``/``<scale>``
(unit usually uV) and the sampling interval in the TIME_ABSOLUTE ``<increment>``.

Decoded by ecgdatakit's ``HL7aECGParser``; the rhythm series is used, not derived beats.
"""

from __future__ import annotations

from pathlib import Path

from ecg_mi.data.readers._common import require_file
from ecg_mi.data.readers._ecgdatakit import read_with_ecgdatakit
from ecg_mi.data.readers._xml import require_root
from ecg_mi.data.record import Record

FORMAT = "hl7_aecg"
ROOT = "AnnotatedECG"


def read_hl7_aecg(path: str | Path) -> Record:
    """Read an HL7 aECG file into a 12-lead mV Record at the file's own rate."""
    path = require_file(path, "HL7 aECG")
    require_root(path, ROOT, "HL7 aECG")
    # Imported on first use: training and the other formats never load ecgdatakit.
    from ecgdatakit.parsing.parsers.hl7_aecg import HL7aECGParser
    return read_with_ecgdatakit(HL7aECGParser, path, FORMAT, "HL7 aECG")
