"""Readers: one module per file format, each returning a :class:`~ecg_mi.data.record.Record`
and raising :class:`~ecg_mi.errors.InputError` naming the file and the problem.

:func:`read_ecg` detects the format from the file's content (:func:`detect_format`) and
reads it; :data:`FORMATS` maps each format's name to its reader.
"""

from ecg_mi.data.readers.cardiosoft_xml import read_cardiosoft_xml
from ecg_mi.data.readers.sniff import FORMATS, detect_format, read_ecg
from ecg_mi.data.readers.wfdb_reader import read_wfdb

__all__ = ["FORMATS", "detect_format", "read_cardiosoft_xml", "read_ecg", "read_wfdb"]
