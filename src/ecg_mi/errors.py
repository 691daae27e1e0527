"""The one error family users see.

Every user-facing failure raises an :class:`EcgMiError` subclass whose message names the
input (file, config key, record) and what is wrong with it. The CLI prints it on one line
and exits non-zero; any other exception is a bug.
"""

from __future__ import annotations


class EcgMiError(Exception):
    """Base class of every error ecg-mi reports to a user."""


class ConfigError(EcgMiError):
    """A configuration value is unknown, out of range or inconsistent."""


class InputError(EcgMiError):
    """An input file or table is missing, malformed or holds invalid values."""


class DataError(EcgMiError):
    """The data as a whole cannot serve the request (e.g. an empty cohort)."""


class Refused(InputError):
    """A record the model cannot judge: it was read, but the input gate
    (:mod:`ecg_mi.data.gate`) found it implausible (rate, duration, amplitude, flat or clipped
    leads, NaN, a damaged file, or too large to read). Nothing is scored for it.

    Attributes:
        check: the gate's check that refused it (one of :data:`ecg_mi.data.gate.CHECKS`).
        detail: what was found, with the value and the limit (one line).
    """

    def __init__(self, check: str, detail: str, source: str | None = None) -> None:
        self.check, self.detail, self.source = check, detail, source
        super().__init__(f"{source}: {self.reason}" if source else self.reason)

    @property
    def reason(self) -> str:
        """``<check>: <detail>``, the one-line reason a refused row carries."""
        return f"{self.check}: {self.detail}"

    def __reduce__(self):  # picklable across worker processes (the default passes one argument)
        return type(self), (self.check, self.detail, self.source)
