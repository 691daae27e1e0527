"""One registry for every model, networks and classical alike (timm-style).

``@register_model("resnet")`` on a class makes ``model=resnet`` work: the name is the
config key (``conf/model/resnet.yaml``) and ``create_model("resnet", **cfg)`` builds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ecg_mi.errors import ConfigError

_MODELS: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator registering a model under ``name``."""

    def decorator(cls: T) -> T:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(
                f"model name {name!r} is already registered by {_MODELS[name].__qualname__}"
            )
        _MODELS[name] = cls
        cls.model_name = name
        return cls

    return decorator


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def get_model_class(name: str) -> type:
    """The class registered as ``name``; ConfigError listing the known names otherwise."""
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; known models: {', '.join(list_models())}"
        ) from None


def create_model(name: str, **kwargs: Any) -> Any:
    """Instantiate the model registered as ``name`` with ``kwargs``."""
    cls = get_model_class(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad settings ({exc})") from None
