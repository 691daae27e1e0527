"""What every export-format reader shares: the file check, the Record it builds, and the
wall that turns a library's exceptions into :class:`~ecg_mi.errors.InputError`."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ecg_mi.data.gate import positive_rate
from ecg_mi.data.leads import to_standard_12
from ecg_mi.data.record import Record
from ecg_mi.errors import EcgMiError, InputError

#: Factor from a voltage unit to mV. Keys are lower-case; 'µ' and 'u' both mean micro.
MV_PER_UNIT = {"v": 1e3, "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "nv": 1e-6}


def mv_per_unit(unit: str, source: str) -> float:
    """Millivolts per ``unit`` ('uV', 'mV', 'nV', 'V'); InputError for anything else."""
    factor = MV_PER_UNIT.get(str(unit).strip().lower())
    if factor is None:
        raise InputError(f"{source}: amplitude unit {unit!r} is not a voltage (V, mV, uV, nV)")
    return factor


def require_file(path: str | Path, what: str) -> Path:
    """Return ``path`` as a Path if it is a non-empty regular file, else raise InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    return path


@contextmanager
def library_errors(path: Path, what: str) -> Iterator[None]:
    """Re-raise whatever a third-party reader throws as InputError naming ``path``.

    Libraries signal bad input with anything from ValueError to struct.error, IndexError or
    RecursionError; users must only ever see the project's errors. Library warnings (bad
    checksums, guessed scales) are silenced here because the caller validates the result.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except EcgMiError:
        raise
    except MemoryError as exc:  # a corrupt length field asking for gigabytes
        raise InputError(f"{path}: {what} declares an impossible size ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - the wall around foreign code, by design
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise InputError(
            f"{path}: unreadable {what} ({type(exc).__name__}{': ' + detail if detail else ''})"
        ) from exc


def stack_leads(rows: Sequence[np.ndarray], labels: Sequence[str], source: str) -> np.ndarray:
    """Stack per-lead sample arrays into ``[n, L]`` float64; InputError if lengths differ."""
    if not rows:
        raise InputError(f"{source}: the file holds no waveform leads")
    lengths = sorted({len(r) for r in rows})
    if len(lengths) > 1:
        detail = ", ".join(f"{lab}={len(r)}" for lab, r in zip(labels, rows, strict=True))
        raise InputError(f"{source}: leads have different lengths ({detail})")
    if lengths[0] == 0:
        raise InputError(f"{source}: the waveform leads hold no samples")
    return np.asarray(np.stack([np.asarray(r, dtype=np.float64) for r in rows]))


def sex_code(text: Any) -> int | None:
    """0 = male, 1 = female (the Record convention) from 'M', 'male', 'F', ...; else None."""
    value = str(text or "").strip().upper()
    if value in {"M", "MALE", "0"}:
        return 0
    if value in {"F", "FEMALE", "1"}:
        return 1
    return None


def build_record(
    path: Path,
    fmt: str,
    signal_mv: np.ndarray,
    labels: Sequence[str],
    fs: float,
    extra: dict[str, Any] | None = None,
) -> Record:
    """Map ``signal_mv`` ``[n, L]`` (mV) onto the standard 12 leads and wrap it in a Record.

    ``Record.metadata`` gets ``format`` (the registry name), ``fs_in`` (Hz), ``n_leads_in``
    (leads stored in the file), ``derived_leads``, ``source_path`` and every non-empty
    entry of ``extra`` (patient_id, age, sex, ...). ``Record.fs`` stays the file's rate.
    """
    source = str(path)
    fs = positive_rate(fs, source)
    signal12, derived = to_standard_12(signal_mv, labels, source)
    metadata: dict[str, Any] = {
        "format": fmt,
        "fs_in": fs,
        "n_leads_in": len(labels),
        "derived_leads": derived,
        "source_path": source,
    }
    metadata.update({k: v for k, v in (extra or {}).items() if v not in (None, "")})
    return Record(
        record_id=path.stem, signal=np.ascontiguousarray(signal12), fs=fs, metadata=metadata
    )
