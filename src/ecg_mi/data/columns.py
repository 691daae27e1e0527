"""Checks of the metadata columns the user's tables share (ids, age, sex): the sources'
index tables and the fold file.

Each takes the raw column as read from the user's CSV and returns it cleaned, or raises an
InputError naming the file, the column, the offending values and their CSV line numbers
(line 1 is the header), so a typo in row 20,000 is found without a debugger.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecg_mi.errors import InputError

#: Index columns ``aux_<NAME>`` (0/1) a source may offer as auxiliary training targets.
AUX_PREFIX = "aux_"


def _where(values: pd.Series, bad: pd.Series) -> str:
    """``'sixty' (line 7), '' (line 9)`` for up to three offending values."""
    picked = values[bad].head(3)
    # tolist(): plain Python values, so a message shows 7, not np.int64(7)
    shown = [f"{v!r} (line {i + 2})" for i, v in zip(picked.index, picked.tolist(), strict=True)]
    more = f" and {int(bad.sum()) - 3} more" if bad.sum() > 3 else ""
    return ", ".join(shown) + more


def _blank(values: pd.Series) -> pd.Series:
    """Missing cells: NaN/None, or text that is only whitespace."""
    return values.isna() | values.astype(str).str.strip().eq("")


def integer_ids(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Integer ids (PTB-XL writes ``15709.0``) as strings ``'15709'``; none may be missing."""
    values = values.reset_index(drop=True)
    missing = _blank(values)
    if missing.any():
        raise InputError(f"{path}: column {column!r} is empty on line(s) {_lines(missing)}")
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | ~np.isfinite(numbers) | (numbers != np.round(numbers))
    if bad.any():
        raise InputError(
            f"{path}: column {column!r} must hold integer ids, found {_where(values, bad)}"
        )
    return numbers.astype(np.int64).astype(str)


def text_ids(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Non-empty id strings, surrounding blanks removed."""
    values = values.reset_index(drop=True)
    missing = _blank(values)
    if missing.any():
        raise InputError(f"{path}: column {column!r} is empty on line(s) {_lines(missing)}")
    return values.astype(str).str.strip()


def ages(values: pd.Series, path: Path) -> pd.Series:
    """Ages in years as floats; empty cells are missing (NaN), text or negatives are refused."""
    values = values.reset_index(drop=True)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & ~_blank(values)) | (numbers < 0) | np.isinf(numbers)
    if bad.any():
        raise InputError(
            f"{path}: column 'age' must hold years (a number >= 0, or empty), found {_where(values, bad)}"
        )
    return numbers.astype(float)


def sexes(values: pd.Series, path: Path) -> pd.Series:
    """Sex as 0 (male) / 1 (female); empty cells are missing. Anything else is refused: a
    code such as UKB's raw field 31 (0 = female) or 9 = unknown would be silently misread."""
    values = values.reset_index(drop=True)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = ~(numbers.isin([0, 1]) | _blank(values))
    if bad.any():
        raise InputError(
            f"{path}: column 'sex' must be 0 (male), 1 (female) or empty, found {_where(values, bad)}"
        )
    # Integers when complete (as before), floats with NaN when some are missing.
    return numbers.astype(int) if numbers.notna().all() else numbers.astype(float)


def non_empty_paths(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Relative file names; an empty cell would otherwise point at the data folder itself."""
    return text_ids(values, path, column)


def _lines(mask: pd.Series) -> str:
    lines = [str(i + 2) for i in np.flatnonzero(mask.to_numpy())[:5]]
    return ", ".join(lines) + (f" and {int(mask.sum()) - 5} more" if mask.sum() > 5 else "")
