"""Small building blocks shared by the networks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def conv_bn_relu(c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """Conv1d (same padding) → BatchNorm → ReLU."""
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


def strided_encoder(
    in_leads: int, channels: Sequence[int], strides: Sequence[int], kernel_size: int
) -> nn.Sequential:
    """Conv-BN-ReLU stages with the given strides: shortens ``[B, 12, L]`` by ``prod(strides)``."""
    stages = zip([in_leads, *channels[:-1]], channels, strides, strict=True)
    return nn.Sequential(
        *[conv_bn_relu(c_in, c_out, kernel_size, stride) for c_in, c_out, stride in stages]
    )


def classifier_head(channels: int, dropout: float) -> nn.Sequential:
    """Global average pooling over time → dropout → one logit."""
    return nn.Sequential(
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, 1)
    )
