"""Adapter from an ecgdatakit parser (Apache-2.0) to a :class:`~ecg_mi.data.record.Record`.

ecgdatakit returns leads with their own scale (``resolution`` × samples + ``offset`` in
``resolution_unit``); this module converts them to mV, checks they share one rate and
length, and keeps the patient fields the Record contract names. The format is chosen by
:mod:`ecg_mi.data.readers.sniff`, not by ecgdatakit's own detection, so each reader calls
one parser class directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ecg_mi.data.readers._common import (
    build_record,
    library_errors,
    mv_per_unit,
    require_file,
    sex_code,
    stack_leads,
)
from ecg_mi.data.record import Record
from ecg_mi.errors import InputError


def lead_in_mv(lead: Any, source: str) -> np.ndarray:
    """One ecgdatakit ``Lead`` as float64 mV (raw counts are scaled by the file's resolution)."""
    if lead.is_raw:
        if not lead.resolution_unit or not lead.resolution:
            raise InputError(f"{source}: lead {lead.label!r} has no amplitude scale in the file")
        factor = mv_per_unit(lead.resolution_unit, source)
        samples = np.asarray(lead.samples, dtype=np.float64)
        return (samples * float(lead.resolution) + float(lead.offset)) * factor
    return np.asarray(lead.samples, dtype=np.float64) * mv_per_unit(lead.units, source)


def patient_fields(patient: Any) -> dict[str, Any]:
    """``patient_id`` (str), ``age`` (years) and ``sex`` (0 = male, 1 = female) when present."""
    age = getattr(patient, "age", None)
    return {
        "patient_id": str(getattr(patient, "patient_id", "") or "").strip() or None,
        "age": float(age) if isinstance(age, int | float) and 0 <= age < 150 else None,
        "sex": sex_code(getattr(patient, "sex", "")),
    }


def read_with_ecgdatakit(parser_cls: type, path: str | Path, fmt: str, what: str) -> Record:
    """Parse ``path`` with the ecgdatakit ``parser_cls`` and return a 12-lead mV Record.

    Args:
        parser_cls: an ``ecgdatakit`` Parser subclass (e.g. ``GEMuseXMLParser``).
        path: the export file.
        fmt: the registry name, stored as ``metadata['format']``.
        what: the format in words, for error messages.
    """
    path = require_file(path, what)
    source = str(path)
    with library_errors(path, what):
        ecg = parser_cls().parse(path)
        leads = list(ecg.leads)
        labels = [str(lead.label) for lead in leads]
        rates = sorted({int(lead.sampling_rate) for lead in leads})
        rows = [lead_in_mv(lead, source) for lead in leads]
        extra = patient_fields(ecg.patient)
    if len(rates) > 1:
        raise InputError(f"{source}: leads have different sampling rates {rates} Hz")
    signal = stack_leads(rows, labels, source)
    return build_record(path, fmt, signal, labels, rates[0], extra)
