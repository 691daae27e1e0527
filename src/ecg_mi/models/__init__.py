"""Model zoo: every model registers itself here by name (see :mod:`registry`)."""

from ecg_mi.models import attention, classical, cnn, inception, lstm, resnet  # noqa: F401  (registers)
from ecg_mi.models.registry import create_model, get_model_class, list_models, register_model

__all__ = ["create_model", "get_model_class", "list_models", "register_model"]
