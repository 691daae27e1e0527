"""ResNet after the paper: three residual units ``y = h(x) + F(x)``.

``F`` stacks Conv1d → BatchNorm → ReLU (the last ReLU after the sum), ``h`` is a 1×1
convolution matching channels (and stride); a strided stem reduces the length first,
global average pooling and a linear layer give one logit.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ecg_mi.models.base import ECGClassifier
from ecg_mi.models.layers import benchmark_head, classifier_head, conv_bn_relu
from ecg_mi.models.registry import register_model


class ResidualUnit(nn.Module):
    """``relu(h(x) + F(x))`` with ``F`` = ``n_convs`` × (Conv1d + BN [+ ReLU]); ``kernel_size``
    is one kernel for every convolution or one per convolution (then ``n_convs`` is its length)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int | Sequence[int],
        stride: int,
        n_convs: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        kernels = [kernel_size] * n_convs if isinstance(kernel_size, int) else list(kernel_size)
        layers: list[nn.Module] = []
        for i, k in enumerate(kernels):
            layers += [
                nn.Conv1d(c_in if i == 0 else c_out, c_out, k, stride=stride if i == 0 else 1,
                          padding=k // 2, bias=False),
                nn.BatchNorm1d(c_out),
            ]  # fmt: skip
            if i < len(kernels) - 1:
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
    """Paper ResNet. ``channels`` sets the width of each residual unit (3 by default). On the
    median beat (``conf/model/resnet_beat.yaml``) its stem is not strided and its kernels are
    shorter, since the input is 12× shorter than the strip."""

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
        self.attach_clinical(channels[-1])


@register_model("resnet1d_wang", display="ResNet1d (Wang)")
class ResNet1dWang(ECGClassifier):
    """Wang et al. (2017)'s time-series ResNet as the PTB-XL benchmarks ran it (Strodthoff et
    al. 2021, ``resnet1d_wang``): a kernel-7 stem without stride, ``n_units`` residual units of
    ``channels`` channels with kernels 5 then 3 (every unit after the first strided), and the
    benchmarks' concat-pooling head. Wider and less strided than the paper's ResNet."""

    smoke_settings = {"channels": 8, "n_units": 2, "head_width": 8}

    def __init__(
        self,
        channels: int = 128,
        n_units: int = 3,
        kernel_sizes: Sequence[int] = (5, 3),
        stem_kernel: int = 7,
        stem_stride: int = 1,
        unit_stride: int = 2,
        head_width: int = 128,
        dropout: float = 0.5,
        in_leads: int = 12,
        **base_kwargs,
    ) -> None:
        super().__init__(**base_kwargs)
        units = [ResidualUnit(channels, channels, list(kernel_sizes), 1 if i == 0 else unit_stride)
                 for i in range(n_units)]  # fmt: skip
        self.features = nn.Sequential(conv_bn_relu(in_leads, channels, stem_kernel, stem_stride), *units)
        self.head = benchmark_head(channels, head_width, dropout)
        self.attach_clinical(channels)
