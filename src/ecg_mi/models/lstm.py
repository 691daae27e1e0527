"""LSTM: a strided convolutional front-end shortens the sequence, then a (bi)LSTM.

At 500 Hz a 10 s strip is 5000 steps — too long to feed an LSTM raw — so the front-end
reduces it by ``prod(strides)`` (default 16: 5000 → 313, 1000 → 63 steps). The sequence
is summarised by mean and max pooling over time of the LSTM outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecg_mi.models.base import ECGClassifier
from ecg_mi.models.layers import strided_encoder
from ecg_mi.models.registry import register_model


class _LSTMHead(nn.Module):
    """``[B, C, T]`` front-end output → LSTM → mean ⊕ max over time → one logit."""

    def __init__(self, lstm: nn.LSTM, out_features: int, dropout: float) -> None:
        super().__init__()
        self.lstm = lstm
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * out_features, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(h.transpose(1, 2))  # [B, T, C]
        pooled = torch.cat([out.mean(dim=1), out.amax(dim=1)], dim=1)
        return self.head(pooled)


@register_model("lstm", display="LSTM")
class LSTM(ECGClassifier):
    """Conv front-end (``channels``, ``strides``) → LSTM (``hidden`` × ``layers``)."""

    smoke_settings = {"channels": [8, 16, 16], "hidden": 16}

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 64),
        strides: Sequence[int] = (2, 2, 4),
        kernel_size: int = 7,
        hidden: int = 64,
        layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.2,
        in_leads: int = 12,
        **base_kwargs,
    ) -> None:
        super().__init__(**base_kwargs)
        front = strided_encoder(in_leads, channels, strides, kernel_size)
        lstm = nn.LSTM(
            channels[-1], hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )  # fmt: skip
        self.features = front  # the last convolutional stage (Grad-CAM target)
        self.head = _LSTMHead(lstm, hidden * (2 if bidirectional else 1), dropout)
