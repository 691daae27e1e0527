"""GE CardioSoft XML (``<CardiologyXML>``), the format UK Biobank distributes ECGs in.

The 10 s resting strip lives in ``<StripData>``: ``<SampleRate>`` (Hz), ``<Resolution>``
(µV per LSB) and one ``<WaveformData lead="…">`` of comma-separated integers per lead.
Parsed with defusedxml: a DOCTYPE or entity declaration is rejected, never expanded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET
import numpy as np
from defusedxml import DefusedXmlException

from ecg_mi.data.record import Record, reorder_leads
from ecg_mi.errors import InputError


def read_cardiosoft_xml(
    path: str | Path,
    expected_fs: float | None = 500.0,
    record_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Record:
    """Read the ``<StripData>`` 12-lead strip of a CardioSoft XML file.

    Args:
        path: the XML file.
        expected_fs: sampling frequency (Hz) the caller expects (UK Biobank: 500);
            ``None`` accepts whatever the file says.
        record_id: id to give the Record (default: the file stem).
        metadata: carried into ``Record.metadata``.

    Returns:
        A Record in mV (samples × Resolution / 1000), leads in standard order.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: CardioSoft XML file not found")
    try:
        root = SafeET.parse(
            path, forbid_dtd=True, forbid_entities=True, forbid_external=True
        ).getroot()
    except DefusedXmlException as exc:
        raise InputError(
            f"{path}: XML with a DOCTYPE/entity declaration is refused ({exc})"
        ) from exc
    except SafeET.ParseError as exc:
        raise InputError(f"{path}: malformed XML ({exc})") from exc
    except (LookupError, ValueError) as exc:  # expat: unknown or multi-byte declared encoding
        raise InputError(f"{path}: unreadable XML ({exc})") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    if root.tag != "CardiologyXML":
        raise InputError(f"{path}: root element is <{root.tag}>, expected <CardiologyXML>")
    strip = root.find("StripData")
    if strip is None:
        raise InputError(f"{path}: no <StripData> element")
    fs = _number(strip, "SampleRate", path)
    resolution_uv = _number(strip, "Resolution", path)
    if expected_fs is not None and fs != float(expected_fs):
        raise InputError(f"{path}: <SampleRate> is {fs:g} Hz, expected {expected_fs:g} Hz")
    waves = strip.findall("WaveformData")
    names = [w.get("lead", "") for w in waves]
    rows = [_parse_samples(w.text, name, path) for w, name in zip(waves, names, strict=True)]
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        raise InputError(f"{path}: leads have different lengths {sorted(lengths)}")
    if rows and 0 in lengths:
        raise InputError(f"{path}: <WaveformData> is empty")
    signal = np.asarray(rows, dtype=np.float64) if rows else np.zeros((0, 0))
    signal = reorder_leads(signal, names, str(path))
    declared = _declared_count(strip.findtext("ChannelSampleCountTotal"))
    if declared is not None and declared != signal.shape[1]:
        raise InputError(
            f"{path}: <ChannelSampleCountTotal> says {declared} samples, leads hold {signal.shape[1]}"
        )
    mv = (signal * (resolution_uv / 1000.0)).astype(np.float32)
    return Record(record_id=record_id or path.stem, signal=mv, fs=fs, metadata=dict(metadata or {}))


def _declared_count(text: str | None) -> int | None:
    """The optional ``<ChannelSampleCountTotal>`` as an int, None when absent or not a count
    (str.isdigit admits '²', which int() refuses)."""
    try:
        return int(text) if text and text.strip().isdecimal() else None
    except ValueError:
        return None


def _number(parent: Any, tag: str, path: Path) -> float:
    text = parent.findtext(tag)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(
            f"{path}: <StripData>/<{tag}> is missing or not a number ({text!r})"
        ) from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{path}: <StripData>/<{tag}> must be positive, got {text!r}")
    return value


def _parse_samples(text: str | None, lead: str, path: Path) -> np.ndarray:
    if not text or not text.strip():
        return np.zeros(0)
    try:
        return np.array([float(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: lead {lead!r} holds non-numeric samples") from None
