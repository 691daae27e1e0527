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
