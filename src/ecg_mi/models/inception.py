"""InceptionTime-style network (Ismail Fawaz et al. 2020), 1-D.

Each module: a 1×1 bottleneck, three parallel convolutions with long kernels
(``kernel_sizes``) and a max-pool → 1×1 branch, concatenated (4 × ``filters`` channels),
BatchNorm, ReLU. A residual shortcut spans every ``residual_every`` modules. A strided
stem first reduces the length (``stem_stride``) so 500 Hz strips stay affordable on CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecg_mi.models.base import ECGClassifier
from ecg_mi.models.layers import classifier_head, conv_bn_relu
from ecg_mi.models.registry import register_model


class InceptionModule(nn.Module):
    def __init__(
        self, c_in: int, filters: int, kernel_sizes: Sequence[int], bottleneck: int
    ) -> None:
        super().__init__()
        self.bottleneck = nn.Conv1d(c_in, bottleneck, 1, bias=False) if c_in > 1 else nn.Identity()
        width = bottleneck if c_in > 1 else c_in
        self.branches = nn.ModuleList(
            nn.Conv1d(width, filters, k, padding=k // 2, bias=False) for k in kernel_sizes
        )
        self.pool_branch = nn.Sequential(
            nn.MaxPool1d(3, stride=1, padding=1), nn.Conv1d(c_in, filters, 1, bias=False)
        )
        self.post = nn.Sequential(
            nn.BatchNorm1d(filters * (len(kernel_sizes) + 1)), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        return self.post(torch.cat([b(z) for b in self.branches] + [self.pool_branch(x)], dim=1))


class InceptionBlock(nn.Module):
    """``depth`` inception modules with a 1×1 residual shortcut around them."""

    def __init__(
        self, c_in: int, filters: int, kernel_sizes: Sequence[int], bottleneck: int, depth: int
    ) -> None:
        super().__init__()
        c_out = filters * (len(kernel_sizes) + 1)
        self.modules_ = nn.Sequential(
            *[
                InceptionModule(c_in if i == 0 else c_out, filters, kernel_sizes, bottleneck)
                for i in range(depth)
            ]
        )
        self.shortcut = nn.Sequential(nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.modules_(x) + self.shortcut(x))


@register_model("inception", display="Inception")
class Inception(ECGClassifier):
    """InceptionTime: ``n_blocks`` residual blocks of ``residual_every`` modules."""

    smoke_settings = {"filters": 8, "bottleneck": 8, "stem_channels": 8, "n_blocks": 1}

    def __init__(
        self,
        filters: int = 16,
        kernel_sizes: Sequence[int] = (5, 11, 23),
        bottleneck: int = 16,
        n_blocks: int = 2,
        residual_every: int = 3,
        stem_channels: int = 32,
        stem_stride: int = 4,
        dropout: float = 0.2,
        in_leads: int = 12,
        **base_kwargs,
    ) -> None:
        super().__init__(**base_kwargs)
        c_out = filters * (len(kernel_sizes) + 1)
        blocks = [
            InceptionBlock(
                stem_channels if i == 0 else c_out,
                filters,
                kernel_sizes,
                bottleneck,
                residual_every,
            )
            for i in range(n_blocks)
        ]
        self.features = nn.Sequential(
            conv_bn_relu(in_leads, stem_channels, 7, stem_stride), *blocks
        )
        self.head = classifier_head(c_out, dropout)
        self.attach_clinical(c_out)
