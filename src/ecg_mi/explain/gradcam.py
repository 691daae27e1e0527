"""Grad-CAM (Selvaraju et al. 2017) on the last convolutional stage, with Captum.

``LayerGradCam`` on ``model.features`` (the last convolutional stage every conv network
exposes), upsampled to the input length with ``LayerAttribution.interpolate`` (linear,
1-D), ReLU-ed and normalised to a maximum of 1 per record. The map is one curve over time
(the convolutions mix the leads); :func:`lead_attributions` gives per-lead maps by Guided
Grad-CAM (Grad-CAM × guided backpropagation).
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import GuidedGradCam, LayerAttribution, LayerGradCam
from torch import nn


def _target_layer(model: nn.Module) -> nn.Module:
    layer = getattr(model, "features", None)
    if layer is None:
        raise ValueError(
            f"{type(model).__name__} exposes no convolutional `features` stage for Grad-CAM"
        )
    return layer


def _normalise(cam: torch.Tensor) -> torch.Tensor:
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)
    return cam / peak.view(-1, *([1] * (cam.dim() - 1)))


def gradcam(model: nn.Module, x: torch.Tensor, *rest: torch.Tensor) -> np.ndarray:
    """Grad-CAM ``[B, L]`` in [0, 1] for signals ``x`` ``[B, 12, L]`` (the MI logit);
    ``rest``: a hybrid's other inputs (its features), passed to the network unexplained."""
    model.eval()
    explainer = LayerGradCam(model, _target_layer(model))
    with torch.enable_grad():
        attr = explainer.attribute(x.requires_grad_(True), additional_forward_args=rest or None,
                                   relu_attributions=True)  # [B, 1, T]  # fmt: skip
    cam = LayerAttribution.interpolate(attr, (x.shape[-1],), interpolate_mode="linear")[:, 0]
    return _normalise(cam.clamp_min(0)).detach().cpu().numpy()


def lead_attributions(model: nn.Module, x: torch.Tensor, *rest: torch.Tensor) -> np.ndarray:
    """Guided Grad-CAM ``[B, 12, L]``: absolute values, normalised per record; ``rest`` as
    for :func:`gradcam`."""
    model.eval()
    explainer = GuidedGradCam(model, _target_layer(model))
    with torch.enable_grad():
        attr = explainer.attribute(x.requires_grad_(True), additional_forward_args=rest or None,
                                   interpolate_mode="nearest")  # fmt: skip
    return _normalise(attr.abs()).detach().cpu().numpy()
