"""GE MUSE XML (``<RestingECG>``): base64 16-bit waveforms, usually the 8 independent leads
(I, II, V1–V6) at 500 Hz (older exports 240/250 Hz); III, aVR, aVL, aVF are derived.

Decoded by ecgdatakit's ``GEMuseXMLParser`` (it applies ``LeadAmplitudeUnitsPerBit`` and
``LeadAmplitudeUnits``). Only the ``Rhythm`` waveform is used, not the median beat.
"""

from __future__ import annotations

from pathlib import Path

from ecg_mi.data.readers._common import require_file
from ecg_mi.data.readers._ecgdatakit import read_with_ecgdatakit
from ecg_mi.data.readers._xml import require_root
from ecg_mi.data.record import Record

FORMAT = "ge_muse_xml"
ROOT = "RestingECG"


def read_muse_xml(path: str | Path) -> Record:
    """Read a GE MUSE XML export into a 12-lead mV Record at the file's own rate."""
    path = require_file(path, "GE MUSE XML")
    require_root(path, ROOT, "GE MUSE XML")
    # Imported on first use: training and the other formats never load ecgdatakit.
    from ecgdatakit.parsing.parsers.ge_muse_xml import GEMuseXMLParser
    return read_with_ecgdatakit(GEMuseXMLParser, path, FORMAT, "GE MUSE XML")
