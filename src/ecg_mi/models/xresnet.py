"""XResNet1d: the strongest architecture of the PTB-XL benchmarks (Strodthoff et al. 2021,
IEEE JBHI; fastai's xresnet, He et al. 2019 "Bag of Tricks", made 1-D).

Against the paper's ResNet: a three-convolution stem (32-32-64 channels, kernel 5, the first
strided) and a max-pool; four stages of bottleneck blocks (1×1 → k → 1×1, ``expansion`` × the
stage width out), the first block of stages 2–4 strided; the shortcut average-pools instead of a
strided 1×1 convolution (no input sample is skipped) and each block's last BatchNorm starts at
zero, so every block starts as the identity; the head pools by mean *and* max (concat pooling)
through a 128-unit layer. ``layers=[3, 4, 6, 3]`` is xresnet1d50 (the default: 0.95 M
parameters), ``[3, 4, 23, 3]`` xresnet1d101 (≈ 1.8 M, the benchmark's best).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from ecg_mi.errors import ConfigError
from ecg_mi.models.base import ECGClassifier
from ecg_mi.models.layers import benchmark_head, conv_bn_relu
from ecg_mi.models.registry import register_model


class Bottleneck(nn.Module):
    """``relu(shortcut(x) + F(x))``; ``F`` = 1×1 → ``kernel_size`` (strided) → 1×1, the last
    BatchNorm zero-initialised; shortcut = average pool (when strided) → 1×1 conv + BN (when
    the channel count changes). ``expansion=1`` gives two ``kernel_size`` convolutions."""

    def __init__(self, c_in: int, width: int, expansion: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        c_out = width * expansion
        if expansion == 1:
            convs = [conv_bn_relu(c_in, width, kernel_size, stride),
                     nn.Conv1d(width, c_out, kernel_size, padding=kernel_size // 2, bias=False)]  # fmt: skip
        else:
            convs = [conv_bn_relu(c_in, width, 1), conv_bn_relu(width, width, kernel_size, stride),
                     nn.Conv1d(width, c_out, 1, bias=False)]  # fmt: skip
        last_norm = nn.BatchNorm1d(c_out)
        nn.init.zeros_(last_norm.weight)  # the block starts as the identity
        self.residual = nn.Sequential(*convs, last_norm)
        shortcut: list[nn.Module] = []
        if stride > 1:
            shortcut.append(nn.AvgPool1d(stride, ceil_mode=True))
        if c_in != c_out:
            shortcut += [nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out)]
        self.shortcut = nn.Sequential(*shortcut)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shortcut(x) + self.residual(x))


@register_model("xresnet1d", display="XResNet1d")
class XResNet1d(ECGClassifier):
    """xresnet1d (``layers`` blocks per stage of ``widths``) on the 10 s strip."""

    smoke_settings = {"layers": [1, 1], "widths": [8, 8], "stem_channels": [8, 8, 8], "head_width": 8}

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 64, 64, 64),
        expansion: int = 4,
        kernel_size: int = 5,
        stem_channels: Sequence[int] = (32, 32, 64),
        stem_stride: int = 2,
        stem_pool: bool = True,
        head_width: int = 128,
        dropout: float = 0.5,
        in_leads: int = 12,
        **base_kwargs,
    ) -> None:
        super().__init__(**base_kwargs)
        if len(layers) != len(widths):
            raise ConfigError(f"model.layers {list(layers)} and model.widths {list(widths)} need one entry per stage")
        stem_widths = [in_leads, *stem_channels]
        stem: list[nn.Module] = [conv_bn_relu(c_in, c_out, kernel_size, stem_stride if i == 0 else 1)
                                 for i, (c_in, c_out) in enumerate(pairwise(stem_widths))]  # fmt: skip
        if stem_pool:
            stem.append(nn.MaxPool1d(3, stride=2, padding=1))
        blocks: list[nn.Module] = []
        c_in = stem_channels[-1]
        for stage, (n_blocks, width) in enumerate(zip(layers, widths, strict=True)):
            for i in range(n_blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(Bottleneck(c_in, width, expansion, kernel_size, stride))
                c_in = width * expansion
        self.features = nn.Sequential(*stem, *blocks)
        self.head = benchmark_head(c_in, head_width, dropout)
        self.attach_clinical(c_in)
