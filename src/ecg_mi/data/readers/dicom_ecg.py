"""DICOM ECG waveforms (12-lead / General / Ambulatory ECG Waveform Storage), read with
pydicom (MIT).

A DICOM ECG holds one or more multiplex groups (usually the rhythm strip and a median
beat). The rhythm group is used: the first labelled RHYTHM, else the first ORIGINAL one,
else the longest. ``Dataset.waveform_array`` applies ChannelSensitivity × correction
factor + baseline, in the unit of ChannelSensitivityUnitsSequence (uV for every cart seen);
leads are named by the channel source's code meaning ('Lead I (Einthoven)', 'aVR,
augmented voltage, right', ...).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ecg_mi.data.gate import Declared, positive_rate
from ecg_mi.data.readers._common import (
    build_record,
    library_errors,
    mv_per_unit,
    require_file,
    sex_code,
)
from ecg_mi.data.record import Record
from ecg_mi.errors import InputError

FORMAT = "dicom_ecg"
_PREAMBLE = 128
#: SOP classes whose waveform is an ECG (PS3.4 B.5).
ECG_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.9.1.1": "12-lead ECG Waveform Storage",
    "1.2.840.10008.5.1.4.1.1.9.1.2": "General ECG Waveform Storage",
    "1.2.840.10008.5.1.4.1.1.9.1.3": "Ambulatory ECG Waveform Storage",
}
_AGE = re.compile(r"^(\d{3})([DWMY])$")
_YEARS_PER_UNIT = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


def looks_like_dicom(head: bytes) -> bool:
    """True when ``head`` has the DICOM Part 10 preamble ('DICM' at byte 128)."""
    return head[_PREAMBLE : _PREAMBLE + 4] == b"DICM"


def dicom_age_years(text: Any) -> float | None:
    """Age in years from a DICOM AS value ('042Y', '006M'), None when absent or malformed."""
    match = _AGE.match(str(text or "").strip())
    return int(match.group(1)) * _YEARS_PER_UNIT[match.group(2)] if match else None


def _rhythm_group(groups: list[Any]) -> int:
    """Index of the rhythm multiplex group (see module docstring for the rule)."""
    labels = [str(g.get("MultiplexGroupLabel", "")).upper() for g in groups]
    for i, label in enumerate(labels):
        if "RHYTHM" in label:
            return i
    for i, group in enumerate(groups):
        if str(group.get("WaveformOriginality", "")).upper() == "ORIGINAL":
            return i
    return int(np.argmax([int(g.get("NumberOfWaveformSamples", 0) or 0) for g in groups]))


def _channel_label(channel: Any) -> str:
    """A channel's lead name: the source code meaning, else its ChannelLabel."""
    sources = channel.get("ChannelSourceSequence") or []
    meaning = str(sources[0].get("CodeMeaning", "")) if len(sources) else ""
    return meaning or str(channel.get("ChannelLabel", ""))


def _channel_unit(channel: Any) -> str:
    units = channel.get("ChannelSensitivityUnitsSequence") or []
    return str(units[0].get("CodeValue", "")) if len(units) else ""


def declared(path: Path) -> Declared:
    """Channels, samples and rate of the rhythm group a DICOM ECG declares, read with its
    large values (the waveform data) deferred; nothing declared when it cannot be parsed (the
    reader then names the problem)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, defer_size=1024, force=False)
        groups = list(ds.get("WaveformSequence") or [])
        group = groups[_rhythm_group(groups)] if groups else None
        if group is None:
            return Declared()
        return Declared(n_signals=int(group.get("NumberOfWaveformChannels", 0) or 0) or None,
                        n_samples=int(group.get("NumberOfWaveformSamples", 0) or 0) or None,
                        fs=float(group.SamplingFrequency) if "SamplingFrequency" in group else None)  # fmt: skip
    except Exception:  # noqa: BLE001 - the reader reports what is wrong with the file
        return Declared()


def read_dicom_ecg(path: str | Path) -> Record:
    """Read a DICOM ECG waveform file into a 12-lead mV Record at the file's own rate."""
    import pydicom  # on first use: training and the other formats never load it

    path = require_file(path, "DICOM ECG")
    source = str(path)
    with library_errors(path, "DICOM ECG"):
        ds = pydicom.dcmread(path, force=False)
        sop = str(ds.get("SOPClassUID", ""))
        if sop not in ECG_SOP_CLASSES:
            raise InputError(f"{source}: DICOM SOP class {sop or '(none)'} is not an ECG waveform")
        groups = list(ds.get("WaveformSequence") or [])
        if not groups:
            raise InputError(f"{source}: DICOM ECG without a WaveformSequence")
        index = _rhythm_group(groups)
        group = groups[index]
        channels = list(group.ChannelDefinitionSequence)
        labels = [_channel_label(ch) for ch in channels]
        factors = np.array([mv_per_unit(_channel_unit(ch), source) for ch in channels])
        signal = ds.waveform_array(index).T * factors[:, None]  # [channels, L] in mV
        fs = positive_rate(group.SamplingFrequency, source)
        extra = {
            "patient_id": str(ds.get("PatientID", "") or "").strip() or None,
            "age": dicom_age_years(ds.get("PatientAge")),
            "sex": sex_code(ds.get("PatientSex")),
        }
    if signal.shape[1] == 0:
        raise InputError(f"{source}: the DICOM rhythm waveform holds no samples")
    return build_record(path, FORMAT, signal, labels, fs, extra)
