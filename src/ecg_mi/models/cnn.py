"""Plain CNN: a stack of Conv1d → BN → ReLU → MaxPool blocks, no skip connections."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ecg_mi.models.base import ECGClassifier
from ecg_mi.models.layers import classifier_head, conv_bn_relu
from ecg_mi.models.registry import register_model


@register_model("cnn", display="CNN")
class CNN(ECGClassifier):
    """``len(channels)`` conv blocks, each halving the length by max-pooling."""

    smoke_settings = {"channels": [8, 16, 16]}

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 64, 128, 128),
        kernel_size: int = 7,
        pool: int = 2,
        dropout: float = 0.2,
        in_leads: int = 12,
        **base_kwargs,
    ) -> None:
        super().__init__(**base_kwargs)
        blocks: list[nn.Module] = []
        for c_in, c_out in zip([in_leads, *channels[:-1]], channels, strict=True):
            blocks += [conv_bn_relu(c_in, c_out, kernel_size), nn.MaxPool1d(pool)]
        self.features = nn.Sequential(*blocks)
        self.head = classifier_head(channels[-1], dropout)
        self.attach_clinical(channels[-1])
