"""Fuzz the WFDB and CardioSoft XML readers: any bytes must give a Record or an EcgMiError.

Mutates a real record (PTB-XL ``00001_lr`` and the CardioSoft sample from ``../shared/data``
by default) ``--n`` times per target — the WFDB header, the WFDB ``.dat`` and the CardioSoft
XML — with seeded byte- and token-level mutations (bit flips, deletions, insertions of
boundary values such as ``-1``, ``nan``, ``1e309``, dropped/duplicated lines or elements,
truncation), reads each mutant with the project's reader and counts the outcomes:

* ``ok`` — a valid Record came back;
* ``EcgMiError`` — the project's error (one line for the user);
* ``foreign`` — anything else: a bug. Each distinct (type, place) is printed once.

Exit status 1 when any foreign exception occurred. Copies are mutated under a temporary
folder; the shared data is only read.
Usage: ``python benchmarks/fuzz_wfdb_cardiosoft.py [--n 5000] [--seed 0] [--wfdb PATH]
[--xml PATH] [--targets wfdb_header,wfdb_dat,cardiosoft_xml]``.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ecg_mi.data.readers import read_cardiosoft_xml, read_wfdb
from ecg_mi.errors import EcgMiError
from ecg_mi.paths import default_data_root

TARGETS = ("wfdb_header", "wfdb_dat", "cardiosoft_xml")

# Boundary values and syntax characters the parsers must survive in any field.
INTERESTING = [
    b"", b"0", b"-0", b"-1", b"1", b"-32768", b"32767", b"65536", b"2147483648",
    b"99999999999999999999999", b"1e309", b"-1e309", b"1e-320", b"nan", b"inf", b"-inf",
    b"abc", b"0x10", b"1.5", b"+", b"-", b".", b"(", b")", b"()", b"/", b"#", b" ", b"\t",
    b"\n", b"\r", b"\x00", b"\xff", b"\xc3\xa9", b"<", b">", b"&", b"&amp;", b"<a>", b"</a>",
    b"\"", b"'", b",", b",,", b"16", b"212", b"80", b"8", b"310", b"x", b"\xb2",
]  # fmt: skip

_FIELD_START = re.compile(rb'[\s<>"=/()]')  # not ',': 60,000 of them in a CardioSoft strip
_TOKEN_END = re.compile(rb'[\s,<>"=/()]')


def _anchor(data: bytes, rng: random.Random) -> int:
    """A position to mutate: half the time the start of a field (after a blank, a tag bracket,
    a quote or a WFDB separator, where parsers decide things), otherwise anywhere (mostly
    inside sample values, which dominate the bytes)."""
    if data and rng.random() < 0.5:
        starts = [m.end() for m in _FIELD_START.finditer(data)]
        if starts:
            return min(rng.choice(starts), len(data))
    return rng.randrange(len(data) + 1)


def _token_end(data: bytes, start: int) -> int:
    match = _TOKEN_END.search(data, start)
    return match.start() if match else len(data)


def _flip_bit(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]


def _random_byte(data: bytes, rng: random.Random) -> bytes:
    i = _anchor(data, rng)
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]


def _delete_span(data: bytes, rng: random.Random) -> bytes:
    i = _anchor(data, rng)
    return data[:i] + data[i + rng.randint(1, 16) :]


def _insert_value(data: bytes, rng: random.Random) -> bytes:
    i = _anchor(data, rng)
    return data[:i] + rng.choice(INTERESTING) + data[i:]


def _replace_token(data: bytes, rng: random.Random) -> bytes:
    i = _anchor(data, rng)
    return data[:i] + rng.choice(INTERESTING) + data[_token_end(data, i) :]


def _lines_op(data: bytes, rng: random.Random) -> bytes:
    """Drop, duplicate or swap whole lines (WFDB signal lines, XML elements)."""
    lines = data.split(b"\n")
    if len(lines) < 2:
        return data
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.randrange(3)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(j, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _declared_encoding(data: bytes, rng: random.Random) -> bytes:
    """Rewrite the XML declaration's encoding (unknown and multi-byte names crash expat)."""
    names = [b"foo", b"UTF-16", b"utf-32", b"UTF-8", b"ascii", b"", b"cp1252", b"\xff"]
    return re.sub(rb'encoding="[^"]*"', b'encoding="' + rng.choice(names) + b'"', data, count=1)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


TEXT_OPS: list[Callable[[bytes, random.Random], bytes]] = [
    _flip_bit, _random_byte, _delete_span, _insert_value, _replace_token, _replace_token,
    _lines_op, _truncate, _declared_encoding,
]  # fmt: skip


def mutate_text(data: bytes, rng: random.Random) -> bytes:
    """1-3 random text mutations (headers, XML); truncation is rarer than the rest."""
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(TEXT_OPS)
        if op is _truncate and rng.random() < 0.7:
            op = _replace_token
        data = op(data, rng)
    return data


def mutate_binary(data: bytes, rng: random.Random) -> bytes:
    """Sample-file mutations: truncation, extension, overwritten spans, bit flips, emptying."""
    op = rng.randrange(6)
    if op == 0:
        return data[: rng.randrange(len(data) + 1)]
    if op == 1:
        return data + rng.randbytes(rng.randint(1, 64))
    if op == 2:
        i = rng.randrange(len(data) + 1)
        span = rng.randbytes(rng.randint(1, 256))
        return data[:i] + span + data[i + len(span) :]
    if op == 3:
        for _ in range(rng.randint(1, 32)):
            data = _flip_bit(data, rng)
        return data
    if op == 4:  # the format-16 "missing sample" sentinel somewhere
        i = rng.randrange(max(1, len(data) // 2)) * 2
        return data[:i] + b"\x00\x80" + data[i + 2 :]
    return b""


@dataclass
class Tally:
    """Outcome counts of one target plus the first example of each foreign exception."""

    counts: Counter = field(default_factory=Counter)
    foreign: dict[str, str] = field(default_factory=dict)

    def add(self, outcome: str, key: str = "", detail: str = "") -> None:
        self.counts[outcome] += 1
        if outcome == "foreign" and key not in self.foreign:
            self.foreign[key] = detail


def _classify(read: Callable[[], object], tally: Tally) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # wfdb and numpy warn on odd input; we count outcomes
            read()
    except EcgMiError:
        tally.add("EcgMiError")
    except Exception as exc:  # noqa: BLE001 - the point is to catch what must never escape
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        key = f"{type(exc).__name__} at {frame.filename}:{frame.lineno}"
        tally.add("foreign", key, f"{type(exc).__name__}: {str(exc)[:200]}")
    else:
        tally.add("ok")


def fuzz_wfdb(record: Path, part: str, n: int, seed: int, work: Path) -> Tally:
    """``n`` mutants of ``record``'s header (``part='header'``) or ``.dat`` (``'dat'``)."""
    header = record.with_suffix(".hea").read_bytes()
    dat = record.with_suffix(".dat").read_bytes()
    rng = random.Random(seed)
    tally = Tally()
    for i in range(n):
        folder = work / f"wfdb-{part}-{i % 8}"  # reused: a few folders, not n of them
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        hea_bytes = mutate_text(header, rng) if part == "header" else header
        dat_bytes = mutate_binary(dat, rng) if part == "dat" else dat
        (folder / f"{record.name}.hea").write_bytes(hea_bytes)
        (folder / f"{record.name}.dat").write_bytes(dat_bytes)
        _classify(lambda f=folder: read_wfdb(f / record.name), tally)
    return tally


def fuzz_cardiosoft(xml: Path, n: int, seed: int, work: Path) -> Tally:
    """``n`` mutants of a CardioSoft XML file."""
    original = xml.read_bytes()
    rng = random.Random(seed)
    tally = Tally()
    target = work / "mutant.xml"
    work.mkdir(parents=True, exist_ok=True)
    for _ in range(n):
        target.write_bytes(mutate_text(original, rng))
        _classify(lambda: read_cardiosoft_xml(target, expected_fs=None), tally)
    return tally


def run(
    targets: list[str], n: int, seed: int, record: Path, xml: Path, work: Path | None = None
) -> dict[str, Tally]:
    """Fuzz each target ``n`` times, writing mutants under ``work`` (default: a temporary
    folder removed afterwards); return the tallies."""
    if work is None:
        with tempfile.TemporaryDirectory(prefix="ecg_mi_fuzz_") as tmp:
            return run(targets, n, seed, record, xml, Path(tmp))
    tallies = {}
    for k, target in enumerate(targets):
        if target == "cardiosoft_xml":
            tallies[target] = fuzz_cardiosoft(xml, n, seed + k, work / target)
        else:
            part = target.removeprefix("wfdb_")
            tallies[target] = fuzz_wfdb(record, part, n, seed + k, work / target)
    return tallies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="mutations per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wfdb", type=Path, default=None,
                        help="WFDB record path without extension (default: PTB-XL 00001_lr)")  # fmt: skip
    parser.add_argument("--xml", type=Path, default=None, help="CardioSoft XML file")
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown or args.n < 1:
        parser.error(f"--targets must be among {list(TARGETS)} and --n positive")
    record = args.wfdb or default_data_root("ptbxl") / "records100" / "00000" / "00001_lr"
    xml = args.xml or (
        default_data_root("ecg_file_formats") / "ge_cardiosoft_xml" / "ptbxl_00139_cardiosoft.xml"
    )
    for path in (record.with_suffix(".hea"), xml):
        if not path.is_file():
            print(f"error: {path}: input to mutate not found", file=sys.stderr)
            return 2
    started = time.perf_counter()
    tallies = run(targets, args.n, args.seed, record, xml)
    total_foreign = 0
    print(f"{'target':<16}{'ok':>8}{'EcgMiError':>12}{'foreign':>9}")
    for target, tally in tallies.items():
        c = tally.counts
        print(f"{target:<16}{c['ok']:>8}{c['EcgMiError']:>12}{c['foreign']:>9}")
        total_foreign += c["foreign"]
    for target, tally in tallies.items():
        for key, detail in tally.foreign.items():
            print(f"foreign in {target}: {key}: {detail}")
    print(f"{args.n} mutations per target, seed {args.seed}, {time.perf_counter() - started:.0f} s")
    return 1 if total_foreign else 0


if __name__ == "__main__":
    raise SystemExit(main())
