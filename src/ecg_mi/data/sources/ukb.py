"""UK Biobank-style data: a folder of GE CardioSoft XML files + the user's outcome table.

The outcome CSV has one row per participant: ``eid, mi, age, sex`` (``mi`` 0/1; sex
0 = male, 1 = female, as in PTB-XL; recode UKB's field 31 (0 = female) before use).
Files are matched by name: ``<eid>.xml`` or ``<eid>_<anything>.xml`` (UKB bulk names such
as ``1234567_20205_2_0.xml``); when several match, the first in sorted order is used.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pandas as pd

from ecg_mi.data.columns import ages, sexes, text_ids
from ecg_mi.data.readers.cardiosoft_xml import read_cardiosoft_xml
from ecg_mi.data.record import Record
from ecg_mi.errors import ConfigError, InputError
from ecg_mi.utils.io import read_csv_table, sha256_file

_COLUMNS = ("eid", "mi", "age", "sex")


class UkbXmlSource:
    """CardioSoft XML files in ``root`` labelled by ``outcomes`` (CSV)."""

    #: The outcome ``label`` stands for (the model card's outcome definition).
    outcome = "MI: the ``mi`` column (0/1) of the user's outcome table, one row per participant"

    name = "ukb"
    partial_rates: tuple[int, ...] = ()

    def __init__(self, root: str | Path | None, outcomes: str | Path | None) -> None:
        if not root or not outcomes:
            raise ConfigError(
                "data=ukb needs data.source.root=<folder of XML> and data.source.outcomes=<csv>"
            )
        self.root = Path(root)
        self.outcomes = Path(outcomes)
        if not self.root.is_dir():
            raise InputError(f"UKB XML folder {self.root} does not exist")
        if not self.outcomes.is_file():
            raise InputError(f"UKB outcome table {self.outcomes} does not exist")

    @cached_property
    def _files(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for path in sorted(self.root.glob("*.xml")):
            files.setdefault(path.stem.split("_")[0], path)
        return files

    @cached_property
    def _table(self) -> pd.DataFrame:
        table = read_csv_table(self.outcomes, "UKB outcome table", dtype={"eid": str})
        missing = [c for c in _COLUMNS if c not in table.columns]
        if missing:
            raise InputError(
                f"{self.outcomes}: missing column(s) {missing}; expected {list(_COLUMNS)}"
            )
        eid = text_ids(table["eid"], self.outcomes, "eid")
        if eid.duplicated().any():
            raise InputError(
                f"{self.outcomes}: duplicated eid(s) {eid[eid.duplicated()].tolist()[:5]}"
            )
        bad = ~table["mi"].isin([0, 1])
        if bad.any():
            raise InputError(
                f"{self.outcomes}: column 'mi' must be 0/1, found {table.loc[bad, 'mi'].tolist()[:5]}"
            )
        return pd.DataFrame(
            {
                "record_id": eid,
                "patient_id": eid,
                "age": ages(table["age"], self.outcomes),
                "sex": sexes(table["sex"], self.outcomes),
                "label": table["mi"].astype(int).to_numpy(),
            }
        )

    def index(self) -> pd.DataFrame:
        return self._table.copy()

    def native_rate(self, sample_rate: int) -> int:
        return 500

    def record_path(self, row: pd.Series, native_rate: int) -> str:
        path = self._files.get(str(row["record_id"]))
        return str(path if path else self.root / f"{row['record_id']}.xml")

    def read(self, row: pd.Series, native_rate: int) -> Record:
        meta = {k: row[k] for k in ("patient_id", "age", "sex", "label")}
        return read_cardiosoft_xml(self.record_path(row, native_rate), expected_fs=native_rate,
                                   record_id=str(row["record_id"]), metadata=meta)  # fmt: skip

    def fingerprint(self) -> str:
        return f"ukb:{sha256_file(self.outcomes)[:16]}:{self.root.resolve()}"
