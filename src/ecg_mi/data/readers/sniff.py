"""Which format a file is in — decided from its bytes, never its name — and the one entry
point :func:`read_ecg` that detects and reads.

Rules, in order (see :func:`detect_format`):

* DICOM Part 10: ``DICM`` at byte 128.
* SCP-ECG: section 0 header with the reserved text ``SCPECG`` at byte 16.
* XML: the root element (read with defusedxml; entity declarations refused):
  ``CardiologyXML`` → GE CardioSoft, ``RestingECG`` → GE MUSE, ``restingecgdata`` →
  Philips Sierra, ``AnnotatedECG`` (HL7 v3 namespace) → HL7 aECG.
* WFDB: a text header (record line + signal lines). A WFDB record is a set of files tied
  by name, so a record name without extension (``.../s0010_re``) and a signal file listed
  by the ``<stem>.hea`` beside it are accepted too — both resolved through the header's
  content.

:data:`FORMATS` is the registry: name → reader ``(path) -> Record``. Every reader returns a
:class:`~ecg_mi.data.record.Record` (float32 ``[12, L]`` mV, standard lead order, the
file's own rate, metadata ``format``/``fs_in``/``n_leads_in``) or raises an EcgMiError.

Before a reader runs, :func:`read_ecg` applies the input gate's resource guards
(:func:`guard`): the file's size — a WFDB record's header and signal files together — and what
its header declares (:data:`DECLARED`: samples, rate, duration), so a hostile file is refused
before anything is allocated for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ecg_mi.data import gate
from ecg_mi.data.gate import Declared, GateLimits
from ecg_mi.data.readers import dicom_ecg, scp_ecg, wfdb_export
from ecg_mi.data.readers._xml import HEAD_BYTES, declared_counts, looks_like_xml, xml_root
from ecg_mi.data.readers.cardiosoft_export import read_cardiosoft_export
from ecg_mi.data.readers.dicom_ecg import looks_like_dicom, read_dicom_ecg
from ecg_mi.data.readers.hl7_aecg import read_hl7_aecg
from ecg_mi.data.readers.muse_xml import read_muse_xml
from ecg_mi.data.readers.philips_xml import read_philips_xml
from ecg_mi.data.readers.scp_ecg import looks_like_scp, read_scp_ecg
from ecg_mi.data.readers.wfdb_export import (
    header_signal_files,
    looks_like_wfdb_header,
    read_wfdb_export,
)
from ecg_mi.data.record import Record
from ecg_mi.errors import InputError

Reader = Callable[[str | Path], Record]

#: The registry of export formats: the name is the key users and configs see.
FORMATS: dict[str, Reader] = {
    "cardiosoft_xml": read_cardiosoft_export,
    "ge_muse_xml": read_muse_xml,
    "philips_sierra_xml": read_philips_xml,
    "hl7_aecg": read_hl7_aecg,
    "dicom_ecg": read_dicom_ecg,
    "scp_ecg": read_scp_ecg,
    "wfdb": read_wfdb_export,
}

#: What a format's header declares before its samples are read (the resource guards); the
#: formats without an entry (Philips, HL7 aECG) are bounded by their file size alone.
DECLARED: dict[str, Callable[[Path], Declared]] = {
    "cardiosoft_xml": declared_counts,
    "ge_muse_xml": declared_counts,
    "dicom_ecg": dicom_ecg.declared,
    "scp_ecg": scp_ecg.declared,
    "wfdb": wfdb_export.declared,
}

#: XML root element (lower-case local name) → format. Namespaces are checked below.
_XML_ROOTS = {
    "cardiologyxml": "cardiosoft_xml",
    "restingecg": "ge_muse_xml",
    "restingecgdata": "philips_sierra_xml",
    "annotatedecg": "hl7_aecg",
}
_HL7_NAMESPACE = "urn:hl7-org:v3"


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _xml_format(head: bytes, source: str) -> str:
    namespace, local = xml_root(head, source)
    fmt = _XML_ROOTS.get(local.lower())
    if fmt is None:
        raise InputError(
            f"{source}: unsupported XML document with root <{local}>; known roots: "
            "CardiologyXML, RestingECG, restingecgdata, AnnotatedECG"
        )
    if fmt == "hl7_aecg" and namespace not in ("", _HL7_NAMESPACE):
        raise InputError(f"{source}: <AnnotatedECG> in namespace {namespace!r}, not HL7 v3")
    return fmt


def _listed_by_sibling_header(path: Path) -> bool:
    """True when ``<stem>.hea`` beside ``path`` is a WFDB header that lists ``path``."""
    header = path.with_suffix(".hea")
    if header == path or not header.is_file():
        return False
    return path.name in header_signal_files(_read_head(header))


def detect_format(path: str | Path) -> str:
    """Return the registry name of the format of ``path``, judged from its content.

    Raises:
        InputError: the file is missing, empty, or in no supported format.
    """
    path = Path(path)
    if not path.exists() and Path(f"{path}.hea").is_file():
        return "wfdb"  # a WFDB record name, as PhysioNet tools take it
    if not path.is_file():
        raise InputError(f"{path}: ECG file not found")
    head = _read_head(path)
    if not head:
        raise InputError(f"{path}: empty file")
    if looks_like_dicom(head):
        return "dicom_ecg"
    if looks_like_scp(head):
        return "scp_ecg"
    if looks_like_xml(head):
        return _xml_format(head, str(path))
    if looks_like_wfdb_header(head) or _listed_by_sibling_header(path):
        return "wfdb"
    raise InputError(
        f"{path}: not a supported ECG format (looked for DICOM, SCP-ECG, WFDB header, and XML "
        f"roots of GE CardioSoft/MUSE, Philips Sierra, HL7 aECG)"
    )


def guard(path: Path, fmt: str, limits: GateLimits) -> None:
    """The resource guards of the input gate (:mod:`ecg_mi.data.gate`) on the file of format
    ``fmt`` at ``path`` (WFDB: the record name), before it is read: Refused for a file — a WFDB
    record's files together — larger than ``limits.max_file_mb``, or a header declaring more
    samples, a longer duration or an implausible rate than ``limits`` allow."""
    files = [path]
    if fmt == "wfdb":
        name = wfdb_export.record_name(path)
        header = Path(f"{name}.hea")
        files = [
            header,
            *(name.parent / f for f in sorted(header_signal_files(_read_head(header)))),
        ]
        path = name
    gate.check_files(files, limits, str(path))
    if fmt in DECLARED:
        gate.check_declared(DECLARED[fmt](path), limits, str(path))


def read_ecg(path: str | Path, fmt: str | None = None, limits: GateLimits | None = None) -> Record:
    """Read any supported ECG export into a Record (float32 ``[12, L]`` mV, file's rate).

    Args:
        path: the file (for WFDB: the header, a listed signal file, or the record name).
        fmt: a registry name to skip detection; None detects from content.
        limits: the input gate's limits whose resource guards (:func:`guard`) the file must
            pass before it is read; None: the defaults (:class:`~ecg_mi.data.gate.GateLimits`).
    """
    path = Path(path)
    if fmt is None:
        fmt = detect_format(path)
    elif fmt not in FORMATS:
        raise InputError(f"{path}: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "wfdb" and path.is_file() and path.suffix != ".hea":
        head = _read_head(path)
        if not looks_like_wfdb_header(head):
            path = path.with_suffix("")  # a signal file listed by its header: read the record
    guard(path, fmt, limits or GateLimits())
    return FORMATS[fmt](path)
