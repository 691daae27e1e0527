"""benchmarks/ablation.py: how its ensembles weigh their member arms."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import load_script

ablation = load_script("benchmarks/ablation.py")


def _pooled(prob: np.ndarray, label: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An arm's (fold runs, pooled predictions) as ``predictions`` returns them."""
    ids = [f"{i:03d}" for i in range(len(label))]
    pooled = pd.DataFrame({"record_id": ids, "patient_id": ids, "label": label, "prob": prob, "prob_calibrated": prob})
    return pd.DataFrame(), pooled


def test_an_ensemble_weighs_each_member_arm_once_whatever_its_seed_runs(monkeypatch):
    """One forest run and a network run at three seeds: the ensemble is forest/2 + mean(network)/2,
    not a forest weighing a quarter beside three network runs."""
    rng = np.random.default_rng(0)
    label = np.repeat([0, 1], 100)
    forest = label + rng.normal(0, 0.6, label.size)
    networks = [label + rng.normal(0, 1.5, label.size) + rng.normal(0, 1.0) for _ in range(3)]
    found = {("forest", 42): _pooled(forest, label)}
    found |= {("network", seed): _pooled(p, label) for seed, p in zip((42, 1, 2), networks, strict=True)}
    monkeypatch.setattr(ablation, "ENSEMBLES", {"forest + network x seeds": ("", (("forest", 42), ("network", None)))})
    [row] = ablation.ensemble_rows(found)
    per_arm = roc_auc_score(label, (forest + np.mean(networks, axis=0)) / 2)
    per_run = roc_auc_score(label, np.mean([forest, *networks], axis=0))
    assert abs(per_arm - per_run) > 0.005  # the data tell the two weightings apart
    assert (row["members"], row["runs"]) == (2, 4)
    assert float(row["pooled AUC, calibrated"].split()[0]) == pytest.approx(per_arm, abs=5e-4)


def test_an_ensemble_with_a_member_arm_not_run_is_left_out(monkeypatch):
    label = np.repeat([0, 1], 20)
    found = {("forest", 42): _pooled(label.astype(float), label), ("forest", 1): _pooled(label.astype(float), label)}
    monkeypatch.setattr(ablation, "ENSEMBLES", {"forest + network": ("", (("forest", None), ("network", None)))})
    assert ablation.ensemble_rows(found) == []
