"""Readers: one module per file format, each returning a :class:`~ecg_mi.data.record.Record`
and raising :class:`~ecg_mi.errors.InputError` naming the file and the problem."""

from ecg_mi.data.readers.cardiosoft_xml import read_cardiosoft_xml
from ecg_mi.data.readers.wfdb_reader import read_wfdb

__all__ = ["read_cardiosoft_xml", "read_wfdb"]
