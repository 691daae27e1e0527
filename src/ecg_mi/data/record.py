"""The one record type every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecg_mi.errors import InputError, Refused

#: The standard 12-lead order every Record uses (rows of ``signal``).
STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip

_CANONICAL = {name.upper(): name for name in STANDARD_LEADS}


def canonical_lead_name(name: object) -> str | None:
    """Map a lead label as files spell it ('AVR', 'avr', ' V1 ') to the standard name.

    Anything that is not a string (a parser's ``None`` for a missing label) maps to None.
    """
    if not isinstance(name, str):
        return None
    return _CANONICAL.get(name.strip().upper())


def reorder_leads(signal: np.ndarray, names: list[str], source: str) -> np.ndarray:
    """Return ``signal`` ([n_leads, L]) with rows in :data:`STANDARD_LEADS` order.

    Raises InputError naming ``source`` when the file does not hold exactly the 12
    standard leads (wrong count, unknown, missing or duplicated names).
    """
    # Parsers hand over None for an absent label; show it as '' rather than crash on it.
    names = ["" if n is None else str(n) for n in names]
    if len(names) != 12:
        raise InputError(f"{source}: expected 12 leads, found {len(names)} ({', '.join(names)})")
    canonical = [canonical_lead_name(n) for n in names]
    unknown = [n for n, c in zip(names, canonical, strict=True) if c is None]
    if unknown:
        raise InputError(
            f"{source}: unknown lead name(s) {unknown}; expected {list(STANDARD_LEADS)}"
        )
    if len(set(canonical)) != 12:
        raise InputError(f"{source}: duplicated lead names in {names}")
    order = [canonical.index(lead) for lead in STANDARD_LEADS]
    return signal[order]


@dataclass(frozen=True)
class Record:
    """One 12-lead resting ECG.

    Attributes:
        record_id: identifier unique within its dataset.
        signal: float32 array ``[12, L]`` in millivolts, rows in :data:`STANDARD_LEADS` order.
        fs: sampling frequency in Hz.
        metadata: ``patient_id``, ``age`` (years), ``sex`` (0 = male, 1 = female), ``label``
            (1 = MI) when known, plus anything format-specific.
    """

    record_id: str
    signal: np.ndarray
    fs: float
    metadata: dict[str, Any] = field(default_factory=dict)
    leads: tuple[str, ...] = STANDARD_LEADS

    def __post_init__(self) -> None:
        validate_signal(self.signal, self.fs, self.record_id)

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.signal.shape[1] / self.fs


def validate_signal(signal: np.ndarray, fs: float, source: str) -> None:
    """Check the Record contract: float32 ``[12, L]``, L > 0, finite values, fs > 0 (the last
    two are the input gate's ``finite`` and ``sample_rate`` checks: Refused)."""
    if not isinstance(signal, np.ndarray) or signal.dtype != np.float32:
        raise InputError(
            f"{source}: signal must be a float32 array, got {getattr(signal, 'dtype', type(signal))}"
        )
    if signal.ndim != 2 or signal.shape[0] != 12 or signal.shape[1] == 0:
        raise InputError(f"{source}: signal must have shape [12, L>0], got {list(signal.shape)}")
    if not isinstance(fs, int | float | np.number) or not np.isfinite(fs) or fs <= 0:
        raise Refused(
            "sample_rate", f"sampling frequency must be a positive number, got {fs!r}", source
        )
    problem = nonfinite(signal)
    if problem:
        raise Refused("finite", problem, source)


def nonfinite(signal: np.ndarray) -> str | None:
    """How many NaN/inf samples ``signal`` ``[12, L]`` holds and in which leads; None if none."""
    finite = np.isfinite(signal)
    if finite.all():
        return None
    bad_leads = [STANDARD_LEADS[i] for i in np.flatnonzero(~finite.all(axis=1))]
    return f"{int((~finite).sum())} NaN/inf samples in lead(s) {', '.join(bad_leads)}"
