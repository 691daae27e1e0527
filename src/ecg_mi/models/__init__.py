"""Model zoo: every model registers itself here by name (see :mod:`registry`).

Every module of this package is imported when the registry is first asked for a model (not
when the package is imported: scoring a classical model imports no network), so a new model is
one module here (a class with ``@register_model("name")``) plus ``conf/model/<name>.yaml`` — no
list to edit.
"""

from ecg_mi.models.registry import (
    create_model,
    display_name,
    get_model_class,
    list_families,
    list_models,
    register_model,
)

__all__ = ["create_model", "display_name", "get_model_class", "list_families", "list_models",
           "register_model"]  # fmt: skip
