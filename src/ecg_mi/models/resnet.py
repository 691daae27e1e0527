"""ResNet after the paper: three residual units ``y = h(x) + F(x)``.

``F`` stacks Conv1d → BatchNorm → ReLU (the last ReLU after the sum), ``h`` is a 1×1
convolution matching channels (and stride); a strided stem reduces the length first,
global average pooling and a linear layer give one logit.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ecg_mi.models.base import ECGClassifier
from ecg_mi.models.layers import classifier_head
from ecg_mi.models.registry import register_model


class ResidualUnit(nn.Module):
    """``relu(h(x) + F(x))`` with ``F`` = ``n_convs`` × (Conv1d + BN [+ ReLU])."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        n_convs: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [
                nn.Conv1d(c_in if i == 0 else c_out, c_out, kernel_size, stride=stride if i == 0 else 1,
                          padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(c_out),
            ]  # fmt: skip
            if i < n_convs - 1:
                layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.residual = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(
            nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.shortcut(x) + self.residual(x))


@register_model("resnet", display="ResNet")
class ResNet(ECGClassifier):
    """Paper ResNet. ``channels`` sets the width of each residual unit (3 by default)."""

    smoke_settings = {"channels": [8, 16, 16]}

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 128),
        kernel_size: int = 9,
        stem_kernel: int = 15,
        stem_stride: int = 2,
        unit_stride: int = 2,
        n_convs: int = 2,
        dropout: float = 0.1,
        in_leads: int = 12,
        **base_kwargs,
    ) -> None:
        super().__init__(**base_kwargs)
        channels = list(channels)
        stem = [nn.Conv1d(in_leads, channels[0], stem_kernel, stride=stem_stride, padding=stem_kernel // 2, bias=False),
                nn.BatchNorm1d(channels[0]), nn.ReLU(inplace=True)]  # fmt: skip
        units = [ResidualUnit(c_in, c_out, kernel_size, unit_stride, n_convs, dropout)
                 for c_in, c_out in zip([channels[0], *channels[:-1]], channels, strict=True)]  # fmt: skip
        self.features = nn.Sequential(*stem, *units)
        self.head = classifier_head(channels[-1], dropout)


@register_model("resnet_beat", display="ResNet (median beat)")
class ResNetBeat(ResNet):
    """The paper's ResNet on the median beat (:mod:`ecg_mi.data.beats`, ``[12, 80]`` at
    100 Hz) instead of the 10 s strip: no strided stem and shorter kernels, since the input
    is 12× shorter. Settings chosen on the validation parts (BENCHMARKS.md, issue 18)."""

    input_kind = "median_beat"

    def __init__(self, kernel_size: int = 5, stem_kernel: int = 7, stem_stride: int = 1, **kwargs) -> None:
        super().__init__(kernel_size=kernel_size, stem_kernel=stem_kernel, stem_stride=stem_stride, **kwargs)
