"""Model zoo: every model registers itself here by name (see :mod:`registry`).

Every module of this package is imported, so a new model is one module here (a class with
``@register_model("name")``) plus ``conf/model/<name>.yaml`` — no list to edit.
"""

import importlib
import pkgutil

from ecg_mi.models.registry import (
    create_model,
    display_name,
    get_model_class,
    list_families,
    list_models,
    register_model,
)

for _module in pkgutil.iter_modules(__path__):  # importing a model module registers it
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["create_model", "display_name", "get_model_class", "list_families", "list_models",
           "register_model"]  # fmt: skip
