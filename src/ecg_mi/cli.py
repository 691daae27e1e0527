"""Command-line helpers shared by the entry scripts."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from ecg_mi.errors import EcgMiError

EXIT_USER_ERROR = 2


@contextlib.contextmanager
def report_errors() -> Iterator[None]:
    """Turn an :class:`EcgMiError` into one ``error: …`` line on stderr and exit code 2."""
    try:
        yield
    except EcgMiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
