"""The root element of an XML export, read safely from the first bytes of the file.

Parsed with defusedxml's expat parser, stopped at the first start tag: the encoding
declaration or BOM (UTF-16 Philips exports) is honoured, entity declarations and external
entity references are refused. A DOCTYPE that only names an external DTD is allowed — every
GE MUSE export starts with ``<!DOCTYPE RestingECG SYSTEM "restecg.dtd">`` — and the DTD is
never fetched (expat does not load external DTDs). Entities can only be declared before the
root element, so checking the head of the file covers the whole document.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from ecg_mi.data.gate import Declared
from ecg_mi.errors import InputError

#: Bytes read to find the root: enough for the longest prolog seen (HL7 aECG: ~1.3 kB of
#: comments) with a wide margin.
HEAD_BYTES = 1 << 16


#: Per-lead sample counts (GE MUSE, GE CardioSoft) and rates (their tags) in an export's bytes.
_COUNT = re.compile(rb"<(?:LeadSampleCountTotal|ChannelSampleCountTotal)>\s*(\d+)\s*<")
_RATE = re.compile(rb"<(?:SampleBase|SampleRate)(?:\s[^>]*)?>\s*([-+0-9.eE]+)\s*<")


class _RootFound(Exception):
    """Raised by the parser target at the first start tag to stop parsing."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


class _StopAtRoot:
    """ElementTree parser target that stops at the root element."""

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        raise _RootFound(tag)

    def close(self) -> None:
        return None


def looks_like_xml(head: bytes) -> bool:
    """True when ``head`` starts like an XML document (after an optional BOM / whitespace)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def xml_root(head: bytes, source: str) -> tuple[str, str]:
    """Return ``(namespace, local name)`` of the root element in ``head``.

    Raises InputError when ``head`` declares entities, or is not well-formed before the root.
    """
    parser = DefusedXMLParser(
        target=_StopAtRoot(), forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(head)
        parser.close()
    except _RootFound as found:
        tag = found.tag
        if tag.startswith("{"):
            namespace, _, local = tag[1:].partition("}")
            return namespace, local
        return "", tag
    except DefusedXmlException as exc:
        raise InputError(f"{source}: XML entity declarations are refused ({exc})") from exc
    except ParseError as exc:
        raise InputError(f"{source}: malformed XML ({exc})") from exc
    raise InputError(f"{source}: XML without a root element in its first {len(head)} bytes")


def read_xml_root(path: Path) -> tuple[str, str]:
    """:func:`xml_root` of the file at ``path``."""
    with open(path, "rb") as handle:
        return xml_root(handle.read(HEAD_BYTES), str(path))


def require_root(path: Path, local_name: str, what: str) -> None:
    """InputError unless the XML file at ``path`` has the root element ``local_name``.

    Checked before a library parses the whole document, so that entity declarations are
    refused by defusedxml whatever the library does, and a wrong file type is named.
    """
    _, local = read_xml_root(path)
    if local.lower() != local_name.lower():
        raise InputError(f"{path}: root element is <{local}>, expected <{local_name}> ({what})")


def declared_counts(path: Path) -> Declared:
    """The sample counts and rate an XML export states in its tags (GE MUSE, CardioSoft),
    found in its bytes before it is parsed: the signals are the count tags (MUSE states one per
    lead and waveform), the samples the largest count; None where the file states none."""
    data = Path(path).read_bytes()
    counts = [int(c) for c in _COUNT.findall(data)]
    rate = _RATE.search(data)
    try:
        fs = float(rate.group(1)) if rate else None
    except ValueError:
        fs = None  # the reader names a malformed rate
    return Declared(n_signals=len(counts) or None, n_samples=max(counts) if counts else None, fs=fs)
