"""One registry for every model, networks and classical alike (timm-style).

``@register_model("resnet", display="ResNet")`` on a class makes ``model=resnet`` work: the
name is the config key (``conf/model/resnet.yaml``) and ``create_model("resnet", **cfg)``
builds it. Every model class names its family (``family = "network"`` or ``"classical"``,
see :mod:`ecg_mi.learners`), so models are listed by family and nothing outside the
registry keeps a list of models.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from ecg_mi.errors import ConfigError

_MODELS: dict[str, type] = {}
_IMPORTED = [False]  # every model module of the package imported (see _registry)
T = TypeVar("T", bound=type)


def _registry() -> dict[str, type]:
    """Every registered model, the package's model modules imported on first use (a module
    registers its models when imported). Lazily, so that what imports one model module — a
    classical package being unpickled — does not import every network, torch and Lightning."""
    if not _IMPORTED[0]:
        _IMPORTED[0] = True
        import pkgutil

        package = importlib.import_module("ecg_mi.models")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
    return _MODELS


def register_model(name: str, display: str | None = None) -> Callable[[T], T]:
    """Class decorator registering a model under ``name`` (shown in reports as ``display``)."""

    def decorator(cls: T) -> T:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(
                f"model name {name!r} is already registered by {_MODELS[name].__qualname__}"
            )
        if not getattr(cls, "family", None):
            raise ValueError(f"model {name!r} ({cls.__qualname__}) names no family")
        _MODELS[name] = cls
        cls.model_name = name
        cls.display_name = display or name
        return cls

    return decorator


def list_models(family: str | None = None) -> list[str]:
    """Registered model names, sorted; only those of ``family`` when given."""
    return sorted(n for n, cls in _registry().items() if family in (None, cls.family))


def list_families() -> list[str]:
    """The families registered models belong to, sorted."""
    return sorted({cls.family for cls in _registry().values()})


def get_model_class(name: str) -> type:
    """The class registered as ``name``; ConfigError listing the known names otherwise."""
    if name not in _MODELS:  # a model's own module registers it: no other model's imports (scoring)
        with contextlib.suppress(ImportError):
            importlib.import_module(f"{__package__}.{name}")
    try:
        return _MODELS[name] if name in _MODELS else _registry()[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; known models: {', '.join(list_models())}"
        ) from None


#: Keys of a model config that the train route reads (how the model is fitted), not arguments
#: of the model's constructor.
FIT_KEYS = ("refit_on_val",)
#: Keys of a model config that describe the recipe, not the model's constructor: the
#: representation it reads unless told otherwise, and the registered architecture it builds when
#: its name is a recipe's (``resnet_beat`` builds ``resnet`` with its own settings).
RECIPE_KEYS = ("representation", "architecture")


def constructor_config(node: dict[str, Any]) -> dict[str, Any]:
    """A model config (``conf/model/<name>.yaml``, resolved) as the registry's constructor
    takes it: without :data:`FIT_KEYS` and :data:`RECIPE_KEYS`, ``name`` the architecture."""
    config = {k: v for k, v in node.items() if k not in (*FIT_KEYS, *RECIPE_KEYS)}
    if node.get("architecture"):
        config["name"] = node["architecture"]
    return config


#: Joins the models of an ensemble in one name (``resnet+random_forest``).
ENSEMBLE_SEPARATOR = "+"


def members_of(name: str) -> list[str]:
    """The member models of ensemble ``name`` (``a+b+c``); ``[name]`` for a single model."""
    return [m for m in str(name).split(ENSEMBLE_SEPARATOR) if m]


def is_ensemble(name: str) -> bool:
    return len(members_of(name)) > 1


def display_name(name: str) -> str:
    """The report name of model ``name`` (``name`` itself for a model this install lacks);
    of an ensemble ``a+b``, its models' names joined (``ResNet + Random Forest``)."""
    parts = [_registry().get(part) for part in members_of(name)]
    if len(parts) > 1 and all(parts):
        return " + ".join(cls.display_name for cls in parts)
    return parts[0].display_name if len(parts) == 1 and parts[0] else name


def create_model(name: str, check: bool = True, **kwargs: Any) -> Any:
    """Instantiate the model registered as ``name`` with ``kwargs``; its family's interface
    is checked (``check_interface``; ``check=False`` skips it), so a malformed model fails
    here, not after training."""
    cls = get_model_class(name)
    try:
        model = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad settings ({exc})") from None
    if check and hasattr(model, "check_interface"):
        model.check_interface()
    return model
