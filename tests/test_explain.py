"""Grad-CAM and the ST-attention measure."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_features import known_record
from test_models import NETWORKS, SMALL, inputs

from ecg_mi.data.sources import SyntheticSource
from ecg_mi.datamodule import FoldDataModule
from ecg_mi.explain import gradcam as gradcam_module
from ecg_mi.explain.figures import gradcam_figure, pick_examples
from ecg_mi.explain.gradcam import explain_network, gradcam, lead_attributions
from ecg_mi.explain.st_segment import compare_groups, st_mask, st_ratio
from ecg_mi.features import feature_names
from ecg_mi.models import create_model, list_models
from ecg_mi.representation import Representation


@pytest.mark.parametrize("name", NETWORKS)
def test_gradcam_has_input_length_and_is_finite(name):
    model = create_model(name, **SMALL[name])
    cam = gradcam(model, *inputs(model, torch.randn(3, 12, 1000)))  # a hybrid: with its features
    assert cam.shape == (3, 1000) and np.isfinite(cam).all()
    assert cam.min() >= 0 and cam.max() <= 1 + 1e-6


def test_lead_attributions_are_per_lead():
    attr = lead_attributions(create_model("resnet", **SMALL["resnet"]), torch.randn(2, 12, 1000))
    assert attr.shape == (2, 12, 1000) and np.isfinite(attr).all()


def test_st_mask_covers_j_to_t_onset_on_known_geometry():
    mask = st_mask(known_record(500.0), 500.0)
    # 9 beats, ST 80 ms each (QRS 90 ms, ST 80 ms): about 9 x 40 samples of 5000
    assert 0.05 < mask.mean() < 0.1
    onset = 300 + 1000  # second beat's QRS onset (ms)
    assert (
        mask[int((onset + 130) / 2)]
        and not mask[int((onset + 40) / 2)]
        and not mask[int((onset + 250) / 2)]
    )


def test_st_ratio_is_one_for_uniform_attention_and_above_for_st_focus():
    mask = np.zeros(1000, bool)
    mask[100:200] = True
    assert st_ratio(np.ones(1000), mask) == pytest.approx(1.0)
    focused = np.where(mask, 1.0, 0.1)
    assert st_ratio(focused, mask) > 3


def test_compare_groups_reports_means_cis_and_p():
    out = compare_groups(
        np.r_[np.full(20, 2.0), np.full(20, 1.0)] + np.linspace(0, 0.1, 40),
        np.r_[np.ones(20), np.zeros(20)],
        np.arange(40),
    )
    assert out["st_ratio_mi"] > out["st_ratio_non_mi"] and out["st_ratio_p_mannwhitney"] < 1e-3
    assert out["st_ratio_mi_low"] <= out["st_ratio_mi"] <= out["st_ratio_mi_high"]


def test_compare_groups_resamples_patients_not_records():
    # 2 MI patients, one with 30 records at 3.0 and one with a single record at 1.0: a patient
    # bootstrap draws either patient with probability 1/2, so its CI reaches close to 1.0;
    # resampling records would keep nearly every draw near the 30-record mean.
    ratios = np.r_[np.full(30, 3.0), 1.0, np.ones(10)]
    labels = np.r_[np.ones(31), np.zeros(10)]
    patients = np.r_[np.zeros(30), 1, np.arange(2, 12)]
    out = compare_groups(ratios, labels, patients)
    assert out["st_ratio_mi_low"] < 1.5 and out["st_ratio_mi_high"] == pytest.approx(3.0)


def test_pick_examples_takes_confident_hits_and_worst_errors():
    labels = np.array([1, 1, 0, 0, 1, 0])
    probs = np.array([0.9, 0.6, 0.1, 0.4, 0.2, 0.95])
    picked = dict(pick_examples(labels, probs, n=3))
    assert picked == {0: "true positive", 2: "true negative", 5: "worst error"}


def test_gradcam_figure_is_written(tmp_path):
    path = gradcam_figure(
        known_record(100.0), np.linspace(0, 1, 1000), 100.0, "test", tmp_path / "g.png"
    )
    assert path.is_file() and path.stat().st_size > 10_000


def test_trained_resnet_attends_to_injected_st_elevation():
    """The only class evidence is ST elevation: Grad-CAM mass must concentrate in ST."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    fs, n = 100.0, 96
    labels = np.arange(n) % 2
    signals = np.stack([np.roll(known_record(fs, st_mv=0.25 * y, seed=i), rng.integers(0, 1000), axis=1)
                        for i, y in enumerate(labels)])  # fmt: skip
    x, y = torch.from_numpy(signals), torch.from_numpy(labels.astype(np.float32))
    # Small kernels and no striding keep the last layer's receptive field within one beat,
    # so the map can localise (a default ResNet's last layer sees ~3 s at 100 Hz).
    model = create_model("resnet", channels=[8, 16, 16], kernel_size=3, stem_kernel=5, stem_stride=1,
                         unit_stride=1, dropout=0.0)  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(120):
        batch = torch.from_numpy(rng.choice(n, 32, replace=False))
        loss = model.loss_fn(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.3
    cams = gradcam(model, x[labels == 1])
    ratios = [
        st_ratio(cam, st_mask(sig, fs)) for cam, sig in zip(cams, signals[labels == 1], strict=True)
    ]
    assert np.nanmean(ratios) > 1.3


def test_xgboost_importance_names_all_408_features_sorted():
    from xgboost import XGBClassifier

    from ecg_mi.explain.permutation import booster_importance

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 408))
    y = (X[:, 5] + 0.5 * X[:, 100] > 0).astype(int)
    table = booster_importance(XGBClassifier(n_estimators=20, max_depth=2).fit(X, y))
    assert len(table) == 408 and table["gain"].is_monotonic_decreasing
    assert table["feature"].iloc[0] == feature_names()[5]  # the informative column, by name
    assert booster_importance(object()) is None


def test_permutation_importance_finds_the_informative_column():
    from sklearn.linear_model import LogisticRegression

    from ecg_mi.explain.permutation import permutation

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 408))
    y = (X[:, 40] > 0).astype(int)
    table = permutation(LogisticRegression(max_iter=1000).fit(X, y), X, y, repeats=2)
    assert table["feature"].iloc[0] == feature_names()[40] and len(table) == 408


def test_classical_importance_names_the_q_ratios_the_model_sees(tmp_path):
    import pandas as pd

    from ecg_mi.explain.permutation import explain_classical
    from ecg_mi.models import create_model

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(120, 408)), np.tile([0, 1], 60)

    class TestPart:
        def arrays(self, part):
            return X, y

    model = create_model("xgboost", search="none", params={"n_estimators": 5}, q_ratios=True, n_jobs=1).fit(X, y)
    _, artifacts = explain_classical(model, TestPart(), tmp_path, repeats=1)
    for path, _folder in artifacts:
        table = pd.read_csv(path)
        assert len(table) == 432 and "lead12_Q_area_share" in set(table["feature"])


@pytest.mark.parametrize("name", list_models("classical"))
def test_batched_permutation_importance_equals_scikit_learns(name):
    from sklearn.inspection import permutation_importance

    from ecg_mi.explain.permutation import permutation

    rng = np.random.default_rng(1)
    X = rng.normal(size=(320, 408)).astype(np.float32)
    y = (X[:, 3] + X[:, 7] + rng.normal(size=320) > 0).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan
    estimator = create_model(name, search="none", n_jobs=1).fit(X[:160], y[:160], np.arange(160)).estimator_
    X, y = X[160:], y[160:]  # scored on records it did not see, as on a test fold: AUC < 1
    # 1,000 rows per call: 3 features (2 repeats of 160 rows each) per batch, 136 batches
    table = permutation(estimator, X, y, repeats=2, seed=7, rows_per_call=1000).set_index("feature")
    reference = permutation_importance(estimator, X, y, scoring="roc_auc", n_repeats=2, random_state=7)
    names = feature_names()
    assert np.count_nonzero(reference.importances_std) >= 5  # the shuffles matter: a wrong one shows
    np.testing.assert_allclose(table.loc[names, "auc_drop_mean"], reference.importances_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(table.loc[names, "auc_drop_sd"], reference.importances_std, rtol=0, atol=1e-12)


@pytest.mark.parametrize("representation", [Representation("window"), Representation("median_beat", "median_beat")],
                         ids=lambda r: r.name)  # fmt: skip
def test_explaining_in_chunks_gives_what_explaining_at_once_gives(representation, tmp_path, monkeypatch):
    """Grad-CAM streams the test part in chunks (memory bounded at any size): same table, same figures."""
    data = FoldDataModule(SyntheticSource(n_records=120), representation, fold=1, cache_dir=tmp_path / "cache")
    data.setup()
    torch.manual_seed(0)
    model = create_model("resnet", **SMALL["resnet"])
    probs = np.linspace(0.05, 0.95, len(data.metadata("test")))
    results = []
    for chunk in (1024, 7):
        monkeypatch.setattr(gradcam_module, "EXPLAIN_CHUNK", chunk)
        metrics, artifacts = explain_network(model, data, probs, tmp_path / f"chunk{chunk}", n_examples=3)
        results.append((metrics, pd.read_csv(artifacts[0][0]), sorted(Path(p).name for p, _ in artifacts[1:])))
    (metrics_a, table_a, figures_a), (metrics_b, table_b, figures_b) = results
    pd.testing.assert_frame_equal(table_a, table_b)
    assert metrics_a == metrics_b and figures_a == figures_b and len(figures_a) == 3
