"""Map the leads a file stores onto the standard 12 (:data:`~ecg_mi.data.record.STANDARD_LEADS`).

Export formats name leads in many ways ('AVR', 'aVR', 'MDC_ECG_LEAD_AVR', DICOM code meanings
such as 'Lead I (Einthoven)' or 'aVR, augmented voltage, right'), and many carts store only
the 8 independent leads (I, II, V1–V6): the other four are linear combinations of I and II
(Einthoven's and Goldberger's equations), which this module derives. Extra leads (Frank
X/Y/Z, right-sided V3R/V4R, V7–V9, rhythm strips) are dropped. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.errors import InputError

_BY_UPPER = {name.upper(): name for name in STANDARD_LEADS}
# Prefixes and decorations the formats put around the bare lead name.
_PREFIXES = ("MDC_ECG_LEAD_", "LEAD_", "LEAD ", "LEAD-", "LEAD")
_PARENTHETICAL = re.compile(r"\(.*?\)")
# DICOM CID 3001 spells the augmented leads out ('aVR, augmented voltage, right').
_AUGMENTED_MEANING = re.compile(r"^(AV[RLF]),\s*AUGMENTED VOLTAGE")
_ROMAN = {"1": "I", "2": "II", "3": "III"}  # 'Lead 1' on some carts


def standard_lead_name(label: str) -> str | None:
    """Return the standard name ('I', 'aVR', 'V1', ...) of a lead label, or None.

    Accepts plain names in any case ('avr', ' V1 '), MDC codes ('MDC_ECG_LEAD_AVR'),
    DICOM code meanings ('Lead I (Einthoven)', 'aVF, augmented voltage, foot') and
    arabic limb-lead numbers ('Lead 2'). Unknown or non-standard leads (Frank 'vx',
    'V4R', 'V7') give None.
    """
    text = _PARENTHETICAL.sub("", str(label)).strip().upper()
    augmented = _AUGMENTED_MEANING.match(text)
    if augmented:
        text = augmented.group(1)
    for prefix in _PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            text = text[len(prefix) :].strip()
            break
    text = _ROMAN.get(text, text)
    return _BY_UPPER.get(text)


def derive_limb_leads(leads: dict[str, np.ndarray]) -> list[str]:
    """Fill in missing limb leads from the stored ones, in place; return the names derived.

    With I and II (any unit, the equations are linear): III = II − I, aVR = −(I + II)/2,
    aVL = I − II/2, aVF = II − I/2. When I or II is missing it is first recovered from III
    (I = II − III, II = I + III). Stored leads are never overwritten.
    """
    derived: list[str] = []
    if "I" not in leads and {"II", "III"} <= leads.keys():
        leads["I"] = leads["II"] - leads["III"]
        derived.append("I")
    if "II" not in leads and {"I", "III"} <= leads.keys():
        leads["II"] = leads["I"] + leads["III"]
        derived.append("II")
    if not {"I", "II"} <= leads.keys():
        return derived
    lead_i, lead_ii = leads["I"], leads["II"]
    formulas = {
        "III": lambda: lead_ii - lead_i,
        "aVR": lambda: -(lead_i + lead_ii) / 2,
        "aVL": lambda: lead_i - lead_ii / 2,
        "aVF": lambda: lead_ii - lead_i / 2,
    }
    for name, formula in formulas.items():
        if name not in leads:
            leads[name] = formula()
            derived.append(name)
    return derived


def to_standard_12(
    signal: np.ndarray, labels: Sequence[str], source: str
) -> tuple[np.ndarray, list[str]]:
    """Return the 12 standard leads of ``signal`` and the names that were derived.

    Args:
        signal: ``[n_leads, L]`` samples, already in mV (this function does not scale).
        labels: the file's name for each row of ``signal``.
        source: the file, named in errors.

    Returns:
        ``(float32 [12, L] in STANDARD_LEADS order, derived lead names)``.

    Raises:
        InputError: a standard lead appears twice, or one cannot be found nor derived.
    """
    signal = np.asarray(signal)
    if signal.ndim != 2 or signal.shape[0] != len(labels):
        raise InputError(
            f"{source}: {len(labels)} lead labels for a signal of shape {list(signal.shape)}"
        )
    leads: dict[str, np.ndarray] = {}
    for row, label in zip(signal, labels, strict=True):
        name = standard_lead_name(label)
        if name is None:
            continue  # an extra lead (Frank, right-sided, ...): not a model input
        if name in leads:
            raise InputError(f"{source}: lead {name} appears twice (labels {list(labels)})")
        leads[name] = row.astype(np.float64)
    derived = derive_limb_leads(leads)
    missing = [name for name in STANDARD_LEADS if name not in leads]
    if missing:
        raise InputError(
            f"{source}: missing lead(s) {', '.join(missing)} (file has {list(labels)}); "
            "need the 12 standard leads or I, II, V1–V6"
        )
    out = np.stack([leads[name] for name in STANDARD_LEADS]).astype(np.float32)
    return out, derived
