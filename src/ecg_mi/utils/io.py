"""Atomic file writes: a reader never sees a half-written file.

Everything ecg-mi persists (caches, fold files, reports) is written to a temporary file in
the destination directory and renamed into place; ``os.replace`` is atomic on POSIX and
Windows when source and target share a filesystem.

Temporary files are created like a plain ``open()`` would (mode ``0o666`` less the umask, so
a team sharing a cache reads each other's files) and are named
``.<target>.<pid>@<host>.<token>.tmp<suffix>``. A process killed mid-write (SIGKILL, OOM
killer, power loss) cannot clean up, so the next writer into that directory removes the
temporaries whose writer is gone: same host (and PID namespace) and PID no longer running, or
another host's and older than :data:`STALE_AFTER_S`. A live writer's temporary is never touched, so processes
can share a cache directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ecg_mi.errors import InputError

log = logging.getLogger(__name__)

#: Age after which a temporary written on another host (whose PIDs we cannot check) is stale.
STALE_AFTER_S = 24 * 3600

_TEMP_NAME = re.compile(
    r"^\.(?P<target>.+)\.(?P<pid>\d+)@(?P<host>[^@/]+)\.(?P<token>[0-9a-f]{8})\.tmp(?P<suffix>.*)$"
)
# Names tempfile.mkstemp gave temporaries before PIDs were recorded: only age tells.
_LEGACY_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def _host() -> str:
    """Where this process's PIDs mean something: the host name (no '@', '/' or odd bytes)
    plus, on Linux, the PID namespace, so containers sharing a host name and a cache volume
    never judge each other's PIDs."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:64] or "localhost"
    try:
        return f"{name}-ns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return name


def temp_name(target: Path, suffix: str = "") -> str:
    """The name of a fresh temporary for ``target`` (see module docstring)."""
    return f".{target.name}.{os.getpid()}@{_host()}.{secrets.token_hex(4)}.tmp{suffix}"


def _create_new(path: Path) -> None:
    """Create an empty ``path`` that did not exist, honouring the umask like ``open()``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (an unreadable one counts as alive)."""
    if pid <= 0:  # os.kill(0, …) would address our own process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except (OverflowError, OSError):
        return False
    return True


def is_stale_temporary(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is an ecg-mi temporary whose writer can no longer finish it."""
    match = _TEMP_NAME.match(path.name)
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    if match is None:
        return bool(_LEGACY_TEMP_NAME.match(path.name)) and age > STALE_AFTER_S
    if match["host"] == _host():
        return not pid_alive(int(match["pid"]))
    return age > STALE_AFTER_S


def sweep_stale_temporaries(directory: str | os.PathLike) -> int:
    """Remove the stale temporaries in ``directory`` (see module docstring); return how many.

    Safe to run from several processes at once: a file another sweeper removed first is
    simply skipped.
    """
    directory = Path(directory)
    removed, freed = 0, 0
    try:
        candidates = [p for p in directory.iterdir() if p.name.startswith(".") and ".tmp" in p.name]
    except OSError:  # no directory yet: nothing to sweep
        return 0
    for path in candidates:
        if not is_stale_temporary(path):
            continue
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            path.unlink()
            removed, freed = removed + 1, freed + size
    if removed:
        log.warning(
            "removed %d temporary file(s) (%.1f MB) left in %s by interrupted writers",
            removed, freed / 1e6, directory,
        )  # fmt: skip
    return removed


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left untouched. Stale
    temporaries of interrupted writers in the same directory are removed first.
    ``suffix`` keeps extensions that writers insist on (``np.save`` appends ``.npy``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(target.parent)
    while True:
        tmp_path = target.parent / temp_name(target, suffix)
        try:
            _create_new(tmp_path)
            break
        except FileExistsError:  # a 32-bit token collided: draw another
            continue
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_probabilities_csv(table: pd.DataFrame, target: str | os.PathLike) -> None:
    """Write a table of probabilities to ``target`` atomically, every float in its shortest
    round-trip form. Not rounded: a calibrated P(MI) keeps the raw ranking only by its last
    digits (the isotonic map's 1e-6 blend with the identity), and six significant digits tied
    records the model tells apart — Extra Trees' calibrated pooled AUC read back 0.001 lower
    (BENCHMARKS.md, "The best recipe"), and a user ranking ``predict.py``'s output would lose
    the same pairs."""
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")


def read_csv_table(path: str | os.PathLike, what: str, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv(path, **kwargs)`` with every way a CSV can be unreadable (empty file,
    broken quoting, wrong encoding, a folder) raised as one InputError naming ``what``."""
    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} {path}: empty file (no header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise InputError(f"{what} {path}: not a readable CSV table ({detail})") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """Hex sha256 of a UTF-8 string (used for cache keys)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
