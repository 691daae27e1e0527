"""Data sources: what a data set holds (an index table) and how to read one record.

Every source exposes the same small surface, so the cohort, cache and DataModule code is
written once:

* ``name`` — short id used in cache and fold-file names;
* ``index()`` — DataFrame with ``record_id, patient_id, age, sex, label`` (1 = MI) and
  optionally ``is_norm`` (a normal ECG, for ``controls: norm``);
* ``native_rate(sample_rate)`` — the stored rate (Hz) read to serve ``sample_rate``;
* ``record_path(row, native_rate)`` — the file behind a row, or ``None`` when the source
  has no files (synthetic);
* ``read(row, native_rate)`` — a :class:`~ecg_mi.data.record.Record` at ``native_rate``;
* ``fingerprint()`` — a string that changes when the source's content or settings change;
* ``partial_rates`` — native rates at which only some rows have files (missing ones are
  skipped with a count instead of failing when ``skip_missing: auto``);
* ``outcome`` — what ``label = 1`` means, in a sentence (model cards quote it).
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from ecg_mi.data.record import Record
from ecg_mi.data.sources.ptbxl import PtbxlSource
from ecg_mi.data.sources.synthetic import SyntheticSource
from ecg_mi.data.sources.ukb import UkbXmlSource

INDEX_COLUMNS = ("record_id", "patient_id", "age", "sex", "label")


class Source(Protocol):
    """The contract every data source meets (see module docstring)."""

    name: str
    partial_rates: tuple[int, ...]
    outcome: str

    def index(self) -> pd.DataFrame: ...
    def native_rate(self, sample_rate: int) -> int: ...
    def record_path(self, row: pd.Series, native_rate: int) -> str | None: ...
    def read(self, row: pd.Series, native_rate: int) -> Record: ...
    def fingerprint(self) -> str: ...


__all__ = ["INDEX_COLUMNS", "PtbxlSource", "Source", "SyntheticSource", "UkbXmlSource"]
