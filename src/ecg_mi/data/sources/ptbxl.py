"""PTB-XL (PhysioNet) in its original layout.

Label rule: a record is MI (``label = 1``) when any of its ``scp_codes`` — at any
likelihood, including 0 — has ``diagnostic_class == "MI"`` in ``scp_statements.csv``
(IMI, ASMI, ILMI, AMI, ALMI, INJAS, LMI, INJAL, IPLMI, IPMI, INJIN, INJLA, PMI, INJIL).
``is_norm = 1`` when the codes include ``NORM``. Auxiliary targets (``data.aux_targets``), at
any likelihood as the MI rule: ``aux_<CLASS>`` = 1 when any code belongs to diagnostic class
``CLASS`` (NORM, STTC, CD, HYP); ``aux_<CODE>`` = 1 when the record carries SCP statement
``CODE`` (each of the 71 of ``scp_statements.csv``: diagnostic, form and rhythm statements,
e.g. IMI, QWAVE, STD_, AFIB; the statement NORM is the class NORM). Sex as PTB-XL codes it:
0 = male, 1 = female. ``record_id`` is the ``ecg_id`` as a string; ``patient_id`` likewise.

Rates: 100 Hz reads ``records100`` (``filename_lr``); 250 and 500 Hz read ``records500``
(``filename_hr``), 250 Hz by decimation.
"""

from __future__ import annotations

import ast
from functools import cached_property
from pathlib import Path

import pandas as pd

from ecg_mi.data.columns import AUX_PREFIX, ages, integer_ids, non_empty_paths, sexes
from ecg_mi.data.readers.wfdb_reader import read_wfdb
from ecg_mi.data.record import Record
from ecg_mi.errors import ConfigError, InputError
from ecg_mi.paths import default_data_root
from ecg_mi.utils.io import read_csv_table, sha256_file

_REQUIRED = ("ecg_id", "patient_id", "age", "sex", "scp_codes", "filename_lr", "filename_hr")


class PtbxlSource:
    """PTB-XL records under ``root`` (``ptbxl_database.csv``, ``scp_statements.csv``,
    ``records100/``, ``records500/``).

    Args:
        root: data folder; ``None`` means ``$ECG_MI_DATA/ptbxl``, else ``../shared/data/ptbxl``.
        partial_rates: native rates at which only some rows have files (the shared subset
            has 500 Hz files only for ecg_id ≤ 500).
    """

    #: The outcome ``label`` stands for (the model card's outcome definition).
    outcome = ("MI: any SCP code of PTB-XL's diagnostic class MI (IMI, ASMI, ILMI, AMI, ALMI, INJAS, LMI, "
               "INJAL, IPLMI, IPMI, INJIN, INJLA, PMI, INJIL) at any likelihood, as the cardiologists' reports code it")

    name = "ptbxl"

    def __init__(
        self, root: str | Path | None = None, partial_rates: tuple[int, ...] = (500,)
    ) -> None:
        self.root = Path(root) if root else default_data_root("ptbxl")
        self.partial_rates = tuple(int(r) for r in partial_rates)
        if not self.root.is_dir():
            raise InputError(
                f"PTB-XL root {self.root} does not exist; set data.root=... or $ECG_MI_DATA "
                "(expected ptbxl_database.csv, scp_statements.csv, records100/, records500/)"
            )
        for name in ("ptbxl_database.csv", "scp_statements.csv"):
            if not (self.root / name).is_file():
                raise InputError(f"PTB-XL root {self.root}: {name} not found")

    @cached_property
    def _class_codes(self) -> dict[str, frozenset[str]]:
        """SCP codes of each diagnostic class (superclass) of ``scp_statements.csv``."""
        path = self.root / "scp_statements.csv"
        statements = read_csv_table(path, "PTB-XL statement table", index_col=0)
        if "diagnostic_class" not in statements.columns:
            raise InputError(f"{path}: no 'diagnostic_class' column")
        classes = statements["diagnostic_class"].dropna().astype(str)
        return {c: frozenset(classes.index[classes == c].astype(str)) for c in sorted(classes.unique())}

    @cached_property
    def _statement_codes(self) -> tuple[str, ...]:
        """Every SCP statement code of ``scp_statements.csv``, in its order."""
        path = self.root / "scp_statements.csv"
        return tuple(read_csv_table(path, "PTB-XL statement table", index_col=0).index.astype(str))

    @property
    def _mi_codes(self) -> frozenset[str]:
        return self._class_codes.get("MI", frozenset())

    @cached_property
    def _table(self) -> pd.DataFrame:
        path = self.root / "ptbxl_database.csv"
        db = read_csv_table(path, "PTB-XL table")
        missing = [c for c in _REQUIRED if c not in db.columns]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}")
        record_id = integer_ids(db["ecg_id"], path, "ecg_id")
        if record_id.duplicated().any():
            dup = record_id[record_id.duplicated()].tolist()[:5]
            raise InputError(f"{path}: duplicated ecg_id(s) {dup}")
        codes = db["scp_codes"].map(lambda s: _parse_codes(s, path))
        mi_codes = self._mi_codes
        # Auxiliary targets: the other diagnostic classes, then every statement (a class name
        # wins a clash: only NORM, whose class is the one statement NORM).
        targets = {name: members for name, members in self._class_codes.items() if name != "MI"}
        targets.update({code: frozenset([code]) for code in self._statement_codes if code not in targets})
        aux = {f"{AUX_PREFIX}{name}": codes.map(lambda c, m=members: int(bool(m & c.keys())))
               for name, members in targets.items()}  # fmt: skip
        return pd.DataFrame(
            {
                "record_id": record_id,
                "patient_id": integer_ids(db["patient_id"], path, "patient_id"),
                "age": ages(db["age"], path),
                "sex": sexes(db["sex"], path),
                "label": codes.map(lambda c: int(bool(mi_codes & c.keys()))),
                "is_norm": codes.map(lambda c: int("NORM" in c)),
                "filename_lr": non_empty_paths(db["filename_lr"], path, "filename_lr"),
                "filename_hr": non_empty_paths(db["filename_hr"], path, "filename_hr"),
                **aux,
            }
        )

    def index(self) -> pd.DataFrame:
        """One row per ``ptbxl_database.csv`` row (see module docstring for columns)."""
        return self._table.copy()

    def native_rate(self, sample_rate: int) -> int:
        if sample_rate == 100:
            return 100
        if sample_rate in (250, 500):
            return 500
        raise ConfigError(
            f"data.sample_rate={sample_rate} is not available for PTB-XL (100, 250, 500 Hz)"
        )

    def record_path(self, row: pd.Series, native_rate: int) -> str:
        column = "filename_lr" if native_rate == 100 else "filename_hr"
        return str(self.root / row[column])

    def read(self, row: pd.Series, native_rate: int) -> Record:
        meta = {k: row[k] for k in ("patient_id", "age", "sex", "label")}
        return read_wfdb(self.record_path(row, native_rate), expected_fs=native_rate,
                         record_id=str(row["record_id"]), metadata=meta)  # fmt: skip

    def fingerprint(self) -> str:
        files = ("ptbxl_database.csv", "scp_statements.csv")
        return "ptbxl:" + ",".join(sha256_file(self.root / f)[:16] for f in files)


def _parse_codes(text: str, path: Path) -> dict[str, float]:
    try:
        codes = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise InputError(f"{path}: scp_codes {text!r} is not a dict literal") from None
    if not isinstance(codes, dict):
        raise InputError(f"{path}: scp_codes {text!r} is not a dict")
    return codes
