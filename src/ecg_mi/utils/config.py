"""Hydra instantiation that reports ecg-mi's own errors unwrapped."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from ecg_mi.errors import ConfigError, EcgMiError


def build(node: Any, what: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``; an EcgMiError raised by the target comes
    out as itself, any other instantiation failure as a ConfigError naming ``what``."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, EcgMiError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise ConfigError(f"{what}: {exc}") from exc
