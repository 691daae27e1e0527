"""Explain a trained network on its test fold: Grad-CAM maps, ST-attention, figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.explain.figures import gradcam_figure, pick_examples
from ecg_mi.explain.gradcam import gradcam, lead_attributions
from ecg_mi.explain.st_attention import compare_groups, st_mask, st_ratio
from ecg_mi.utils.io import atomic_path

Artifact = tuple[Path, str | None]  # (file, MLflow artifact folder)


def explain_network(model: torch.nn.Module, data, probs: np.ndarray, out_dir: Path, n_examples: int = 8,
                    seed: int = 0) -> tuple[dict[str, float], list[Artifact]]:  # fmt: skip
    """Grad-CAM of every test record; ST-attention ratio per record, overall and per lead
    (Guided Grad-CAM), in ``st_attention.csv``; by class as metrics (the records they count as
    ``gradcam_n_mi``/``gradcam_n_non_mi``: test records with a defined ratio, not the test
    part's counts); figures of ``n_examples`` records under ``gradcam/``."""
    model = model.cpu().eval()
    meta = data.metadata("test")
    raw = np.asarray(data.store.signals[data.store.rows(meta["record_id"].tolist())])  # mV, for delineation and plots
    # The test batches' inputs (a hybrid's features are passed along, not explained).
    inputs = [torch.from_numpy(a) for a in data.model_inputs("test")]
    batches = [[a[i : i + 64] for a in inputs] for i in range(0, len(raw), 64)]
    cams = np.concatenate([gradcam(model, *batch) for batch in batches])
    per_lead = np.concatenate([lead_attributions(model, *batch) for batch in batches])
    fs = float(data.sample_rate)
    # Maps over a median beat are shown on every beat of the strip.
    cams, per_lead = data.fitted.map_on_windows(cams, raw), data.fitted.map_on_windows(per_lead, raw)
    masks = [st_mask(signal, fs) for signal in raw]
    ratios = np.array([st_ratio(cam, mask) for cam, mask in zip(cams, masks, strict=True)])
    table = meta.assign(prob=probs, st_ratio=ratios)
    for k, lead in enumerate(STANDARD_LEADS):  # Guided Grad-CAM, lead by lead
        table[f"st_ratio_{lead}"] = [
            st_ratio(attr[k], mask) for attr, mask in zip(per_lead, masks, strict=True)
        ]
    table_path = out_dir / "st_attention.csv"
    with atomic_path(table_path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6g")
    artifacts: list[Artifact] = [(table_path, None)]
    labels = meta["label"].to_numpy()
    for i, why in pick_examples(labels, probs, n_examples):
        truth = "MI" if labels[i] else "non-MI"
        title = f"record {meta['record_id'][i]} — {why}: true {truth}, P(MI) = {probs[i]:.2f}"
        name = f"{why.replace(' ', '_')}_{meta['record_id'][i]}.png"
        artifacts.append(
            (gradcam_figure(raw[i], cams[i], fs, title, out_dir / "gradcam" / name), "gradcam")
        )
    compared = compare_groups(ratios, labels, meta["patient_id"].to_numpy(), seed=seed)
    return {(f"gradcam_{k}" if k in COUNTS else k): v for k, v in compared.items()}, artifacts


#: The counts of :func:`compare_groups`, logged with a ``gradcam_`` prefix.
COUNTS = ("n_mi", "n_non_mi")
