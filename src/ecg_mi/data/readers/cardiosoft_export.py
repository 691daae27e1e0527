"""GE CardioSoft XML behind the registry: :func:`read_cardiosoft_xml` at the file's own rate,
plus the metadata every export reader gives (format, fs_in, n_leads_in, patient fields)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET

from ecg_mi.data.readers._common import require_file, sex_code
from ecg_mi.data.readers.cardiosoft_xml import read_cardiosoft_xml
from ecg_mi.data.record import Record

FORMAT = "cardiosoft_xml"
ROOT = "CardiologyXML"


def cardiosoft_patient(path: Path) -> dict[str, Any]:
    """``patient_id``, ``age`` (years) and ``sex`` from ``<PatientInfo>``; {} if unreadable.

    Called after :func:`read_cardiosoft_xml` has accepted the file, so a parse failure here
    can only mean an odd PatientInfo block, which is not worth refusing the ECG for.
    """
    try:
        root = SafeET.parse(path, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception:  # noqa: BLE001 - the signal was read; demographics are optional
        return {}
    info = root.getroot().find("PatientInfo")
    if info is None:
        return {}
    age = info.find("Age")
    age_text = (age.text or "").strip() if age is not None else ""
    in_years = age is not None and age.get("units", "YEARS").upper() == "YEARS"
    return {
        "patient_id": (info.findtext("PID") or "").strip() or None,
        "age": float(age_text) if age_text.isdigit() and in_years else None,
        "sex": sex_code(info.findtext("Gender")),
    }


def read_cardiosoft_export(path: str | Path) -> Record:
    """Read a CardioSoft XML export (any ``<SampleRate>``) with registry metadata."""
    path = require_file(path, "GE CardioSoft XML")
    record = read_cardiosoft_xml(path, expected_fs=None)
    metadata = {
        "format": FORMAT,
        "fs_in": float(record.fs),
        "n_leads_in": 12,  # read_cardiosoft_xml accepts exactly the 12 standard leads
        "derived_leads": [],
        "source_path": str(path),
        **{k: v for k, v in cardiosoft_patient(path).items() if v is not None},
    }
    return dataclasses.replace(record, metadata=metadata)
