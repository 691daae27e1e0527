"""Attention network after Singstad & Tronstad (CinC 2020): a convolutional encoder, then
self-attention over time (a small transformer encoder) and attention pooling.

The encoder downsamples by ``prod(strides)`` so self-attention sees ~60–300 steps; the
attention pooling learns one weight per time step (softmax over time) to form the record
embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecg_mi.models.base import ECGClassifier
from ecg_mi.models.layers import strided_encoder
from ecg_mi.models.registry import register_model


class AttentionPool(nn.Module):
    """Weighted mean over time with learned, softmax-normalised weights."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # h: [B, T, D]
        weights = torch.softmax(self.score(h), dim=1)
        return (weights * h).sum(dim=1)


class _AttentionHead(nn.Module):
    """``[B, D, T]`` encoder output → positions → transformer → attention pooling → logit."""

    def __init__(
        self,
        d_model: int,
        heads: int,
        layers: int,
        dropout: float,
        max_len: int,
    ) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.zeros(1, max_len, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model,
            heads,
            dim_feedforward=2 * d_model,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pool = AttentionPool(d_model)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h.transpose(1, 2)  # [B, T, D]
        h = h + self.position[:, : h.shape[1]]
        return self.head(self.pool(self.transformer(h)))


@register_model("attention", display="Attention")
class Attention(ECGClassifier):
    """Conv encoder (``channels``, ``strides``) → transformer (``layers`` × ``heads``) → attention pooling."""

    smoke_settings = {"channels": [8, 16, 16], "heads": 2, "layers": 1}

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 64),
        strides: Sequence[int] = (2, 2, 4),
        kernel_size: int = 7,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.2,
        max_len: int = 1024,
        in_leads: int = 12,
        **base_kwargs,
    ) -> None:
        super().__init__(**base_kwargs)
        self.features = strided_encoder(in_leads, channels, strides, kernel_size)  # Grad-CAM target
        self.head = _AttentionHead(channels[-1], heads, layers, dropout, max_len)
