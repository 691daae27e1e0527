"""Small building blocks shared by the networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
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


class ConcatPool1d(nn.Module):
    """Mean and max over time side by side: ``[B, C, T]`` → ``[B, 2C]``."""

    def forward(self, x):
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)


class PooledBatchNorm(nn.BatchNorm1d):
    """BatchNorm of pooled features ``[B, C]``. A training batch of one record (an epoch's last,
    when the training part is one more than a multiple of the batch size) has no batch
    statistics: it is normalised with the running ones instead of failing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            training=False, eps=self.eps)  # fmt: skip
        return super().forward(x)


def benchmark_head(channels: int, width: int, dropout: float) -> nn.Sequential:
    """The PTB-XL benchmarks' head (Strodthoff et al. 2021): concat pooling → BN → dropout/2 →
    Linear(2C, width) → ReLU → BN → dropout → one logit."""
    return nn.Sequential(
        ConcatPool1d(), PooledBatchNorm(2 * channels), nn.Dropout(dropout / 2), nn.Linear(2 * channels, width),
        nn.ReLU(inplace=True), PooledBatchNorm(width), nn.Dropout(dropout), nn.Linear(width, 1),
    )  # fmt: skip
