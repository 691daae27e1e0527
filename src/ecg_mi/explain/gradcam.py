"""Grad-CAM (Selvaraju et al. 2017) on the last convolutional stage, with Captum, and the
explanation of a trained network on its test fold (:func:`explain_network`).

``LayerGradCam`` on ``model.features`` (the last convolutional stage every conv network
exposes), upsampled to the input length with ``LayerAttribution.interpolate`` (linear,
1-D), ReLU-ed and normalised to a maximum of 1 per record. The map is one curve over time
(the convolutions mix the leads); :func:`lead_attributions` gives per-lead maps by Guided
Grad-CAM (Grad-CAM × guided backpropagation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from captum.attr import GuidedGradCam, LayerAttribution, LayerGradCam
from torch import nn

from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.explain.st_segment import compare_groups, st_mask, st_ratio
from ecg_mi.utils.reporting import write_csv

Artifact = tuple[Path, str | None]  # (file, MLflow artifact folder)


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


#: Test records explained at a time (a multiple of the 64-record batches).
EXPLAIN_CHUNK = 512


def explain_network(model: torch.nn.Module, data, probs: np.ndarray, out_dir: Path, n_examples: int = 8,
                    seed: int = 0) -> tuple[dict[str, float], list[Artifact]]:  # fmt: skip
    """Grad-CAM of every test record; ST-attention ratio per record, overall and per lead
    (Guided Grad-CAM), in ``st_attention.csv``; by class as metrics (the records they count as
    ``gradcam_n_mi``/``gradcam_n_non_mi``: test records with a defined ratio, not the test
    part's counts); figures of ``n_examples`` records under ``gradcam/``."""
    from ecg_mi.explain.figures import (  # matplotlib only here, not when scoring
        gradcam_figure,
        pick_examples,
    )

    model = model.cpu().eval()
    meta = data.metadata("test")
    labels, fs = meta["label"].to_numpy(), float(data.sample_rate)
    examples = dict(pick_examples(labels, probs, n_examples))  # {test row: why}
    shown: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # test row -> (signal, map) to plot
    ratios, lead_ratios = [], []
    # In chunks of test records, so memory does not grow with the test part (UK Biobank scale).
    for start in range(0, len(meta), EXPLAIN_CHUNK):
        chunk = slice(start, min(start + EXPLAIN_CHUNK, len(meta)))
        raw = np.asarray(data.store.signals[data.store.rows(meta["record_id"].iloc[chunk].tolist())])  # mV
        # The chunk's inputs (a hybrid's features are passed along, not explained), in batches of 64.
        inputs = [torch.from_numpy(a) for a in data.model_inputs("test", chunk)]
        batches = [[a[i : i + 64] for a in inputs] for i in range(0, len(raw), 64)]
        cams = np.concatenate([gradcam(model, *batch) for batch in batches])
        per_lead = np.concatenate([lead_attributions(model, *batch) for batch in batches])
        # Maps over a median beat are shown on every beat of the strip.
        cams, per_lead = data.fitted.map_on_windows(cams, raw), data.fitted.map_on_windows(per_lead, raw)
        masks = [st_mask(signal, fs) for signal in raw]
        ratios += [st_ratio(cam, mask) for cam, mask in zip(cams, masks, strict=True)]
        # Guided Grad-CAM, lead by lead
        lead_ratios += [[st_ratio(attr[k], mask) for k in range(len(STANDARD_LEADS))]
                        for attr, mask in zip(per_lead, masks, strict=True)]  # fmt: skip
        shown.update({start + j: (raw[j], cams[j]) for j in range(len(raw)) if start + j in examples})
    ratios = np.array(ratios)
    table = meta.assign(prob=probs, st_ratio=ratios)
    for k, lead in enumerate(STANDARD_LEADS):
        table[f"st_ratio_{lead}"] = [row[k] for row in lead_ratios]
    artifacts: list[Artifact] = [(write_csv(table, out_dir / "st_attention.csv"), None)]
    for i, why in examples.items():
        truth = "MI" if labels[i] else "non-MI"
        title = f"record {meta['record_id'][i]} — {why}: true {truth}, P(MI) = {probs[i]:.2f}"
        name = f"{why.replace(' ', '_')}_{meta['record_id'][i]}.png"
        artifacts.append((gradcam_figure(*shown[i], fs, title, out_dir / "gradcam" / name), "gradcam"))
    compared = compare_groups(ratios, labels, meta["patient_id"].to_numpy(), seed=seed)
    return {(f"gradcam_{k}" if k in COUNTS else k): v for k, v in compared.items()}, artifacts


#: The counts of :func:`compare_groups`, logged with a ``gradcam_`` prefix.
COUNTS = ("n_mi", "n_non_mi")
