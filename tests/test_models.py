"""The model registry and every registered network (enumerated from the registry)."""

import pytest
import torch
from torch import nn

from ecg_mi.errors import ConfigError
from ecg_mi.models import create_model, get_model_class, list_models, register_model
from ecg_mi.models.base import Augment, ECGClassifier
from ecg_mi.models.resnet import ResidualUnit, ResNet
from ecg_mi.models.xresnet import Bottleneck

NETWORKS = list_models("network")
SMALL = {name: get_model_class(name).smoke_settings for name in NETWORKS}


def inputs(model, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A network's inputs for signals ``x``: with random scaled features for a hybrid."""
    generator = torch.Generator().manual_seed(1)
    return (x, torch.randn(len(x), model.hparams.n_clinical, generator=generator)) if model.clinical is not None else (x,)


def test_registry_lists_models_by_family():
    assert {"resnet", "cnn", "lstm", "inception", "attention"} <= set(NETWORKS)
    assert not set(NETWORKS) & set(list_models("classical"))
    assert sorted(NETWORKS + list_models("classical")) == list_models()
    assert isinstance(create_model("resnet", channels=[8, 8, 8]), ResNet)


def test_a_network_without_its_feature_stage_is_refused_when_built(monkeypatch):
    from ecg_mi.models import registry

    registry.list_models()  # every model module imported before the copy
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))  # registered for this test only

    @register_model("headless_test_net")
    class Headless(ECGClassifier):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.head = nn.Linear(12, 1)  # no self.features

    with pytest.raises(ConfigError, match="'headless_test_net': a network must set self.features"):
        create_model("headless_test_net")


@pytest.mark.parametrize("name", NETWORKS)
def test_checkpoint_stores_each_weight_once(name, tmp_path):
    model = create_model(name, **SMALL[name])
    state = model.state_dict()
    feature_keys = [k for k in state if k.startswith("features.")]
    assert feature_keys and not [k for k in state if k.startswith("net.")]
    assert len({t.data_ptr() for t in state.values() if t.numel()}) == sum(1 for t in state.values() if t.numel())


def test_unknown_model_lists_known_names():
    with pytest.raises(ConfigError, match="unknown model 'resnot'; known models: .*resnet"):
        create_model("resnot")


def test_bad_model_settings_are_config_errors():
    with pytest.raises(ConfigError, match="model 'resnet': bad settings"):
        create_model("resnet", widht=3)


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet")(type("Other", (), {}))


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("length", [1000, 2500, 5000])
def test_network_gives_one_logit_per_record(name, length):
    model = create_model(name).eval()
    with torch.no_grad():
        assert model(*inputs(model, torch.randn(2, 12, length))).shape == (2,)


@pytest.mark.parametrize("name", NETWORKS)
def test_default_networks_stay_under_a_million_parameters(name):
    assert 10_000 < create_model(name).n_params <= 1_000_000


def test_resnet_has_three_residual_units_with_1x1_shortcuts():
    model = create_model("resnet")
    units = [m for m in model.modules() if isinstance(m, ResidualUnit)]
    assert len(units) == 3
    assert all(u.shortcut[0].kernel_size == (1,) for u in units)


def test_xresnet_block_starts_as_the_identity():
    """Its last BatchNorm starts at zero: relu(x + 0) before any training."""
    block = Bottleneck(16, 4, expansion=4, kernel_size=5, stride=1).eval()
    x = torch.randn(2, 16, 50)
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(x))


def test_xresnet_strided_shortcut_averages_every_sample():
    block = Bottleneck(8, 4, expansion=4, kernel_size=5, stride=2).eval()
    assert isinstance(block.shortcut[0], nn.AvgPool1d)
    x = torch.zeros(1, 8, 10)
    x[..., 1] = 1.0  # an odd sample, which a strided 1x1 convolution would skip
    with torch.no_grad():
        assert block.shortcut[0](x)[..., 0].eq(0.5).all()
    assert block(x).shape == (1, 16, 5)


def test_xresnet1d101_layout_has_its_published_depth():
    model = create_model("xresnet1d", layers=[3, 4, 23, 3])
    assert sum(isinstance(m, Bottleneck) for m in model.modules()) == 33
    assert 1_500_000 < model.n_params < 2_000_000


def test_xresnet_needs_one_width_per_stage():
    with pytest.raises(ConfigError, match=r"model.layers \[3, 4\] and model.widths \[64\]"):
        create_model("xresnet1d", layers=[3, 4], widths=[64])


def test_resnet1d_wang_has_three_units_of_kernels_5_then_3_at_one_width():
    model = create_model("resnet1d_wang")
    units = [m for m in model.modules() if isinstance(m, ResidualUnit)]
    convs = [[c for c in u.residual if isinstance(c, nn.Conv1d)] for u in units]
    assert [[c.kernel_size[0] for c in unit] for unit in convs] == [[5, 3]] * 3
    assert {c.out_channels for unit in convs for c in unit} == {128}
    assert [unit[0].stride[0] for unit in convs] == [1, 2, 2]


@pytest.mark.parametrize("name", NETWORKS)
def test_one_step_lowers_the_loss_on_a_tiny_batch(name):
    torch.manual_seed(0)
    model = create_model(name, dropout=0.0, **SMALL[name])
    x, y = torch.randn(8, 12, 1000), torch.tensor([0.0, 1.0] * 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(2):
        loss = model.loss_fn(model(*inputs(model, x)), y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[1] < losses[0]


@pytest.mark.parametrize("name", NETWORKS)
def test_a_training_batch_of_one_record_trains(name):
    """An epoch's last batch holds one record when the training part is one more than a
    multiple of the batch size."""
    model = create_model(name, **SMALL[name]).train()
    x, y = torch.randn(1, 12, 1000), torch.tensor([1.0])
    assert torch.isfinite(model.training_step((inputs(model, x), y, torch.arange(1)), 0))


def test_augment_is_identity_at_eval_and_zero_settings():
    x = torch.randn(4, 12, 100)
    assert torch.equal(Augment(shift=0.2, scale=0.1, noise=0.1).eval()(x), x)
    assert torch.equal(Augment().train()(x), x)


def test_augment_shift_is_circular_per_record():
    torch.manual_seed(0)
    x = torch.arange(100.0).repeat(2, 12, 1)
    out = Augment(shift=0.3).train()(x)
    assert torch.equal(out.sort(dim=-1).values, x)  # same samples, rotated
    assert not torch.equal(out, x)


def test_augment_rejects_out_of_range_settings():
    with pytest.raises(ConfigError, match="model.augment.noise=1.5"):
        Augment(noise=1.5)


def test_unknown_scheduler_is_a_config_error():
    with pytest.raises(ConfigError, match="model.scheduler='step'"):
        create_model("cnn", scheduler="step")


def test_augment_crop_trains_on_a_window():
    out = Augment(crop=0.25).train()(torch.randn(2, 12, 1000))
    assert out.shape == (2, 12, 250)


@pytest.mark.parametrize("name", NETWORKS)
def test_networks_accept_cropped_training_windows(name):
    model = create_model(name, augment={"crop": 0.5}, **SMALL[name]).train()
    x, y = torch.randn(4, 12, 1000), torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert model.training_step((inputs(model, x), y, torch.arange(4)), 0).ndim == 0


@pytest.mark.parametrize("name", NETWORKS)
def test_aux_targets_train_a_second_head_and_leave_p_mi_alone(name, tmp_path):
    """Every network takes auxiliary targets: the head is sized in setup(), its loss is added
    in training, and prediction, saved weights and reloads work as without it."""
    from ecg_mi.models.base import load_weights

    model = create_model(name, **SMALL[name], aux_targets=["A", "B"], aux_weight=1.0)
    model.setup("fit")
    assert model.aux_head[-1].weight.shape[0] == 2
    x, y = torch.randn(4, 12, 1000), torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]])
    plain = create_model(name, **SMALL[name])
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("aux_head.")})
    model.train(), plain.train()
    torch.manual_seed(0)
    with_aux = model.training_step((inputs(model, x), y, None), 0)
    torch.manual_seed(0)
    without = plain.training_step((inputs(model, x), y[:, 0], None), 0)
    assert with_aux > without  # the auxiliary BCE is added to the same MI loss
    model.save_weights(tmp_path / "w.pt")
    reloaded = load_weights(tmp_path / "w.pt")
    with torch.no_grad():
        assert torch.allclose(reloaded(*inputs(model, x)), model.eval()(*inputs(model, x)))
        assert reloaded(*inputs(model, x)).shape == (4,)


HYBRIDS = [n for n in NETWORKS if create_model(n, **SMALL[n], n_clinical=8, check=False).clinical is not None]


def test_the_paper_resnet_and_the_benchmark_architectures_can_be_hybrids():
    assert {"resnet", "resnet1d_wang", "xresnet1d"} <= set(HYBRIDS)


@pytest.mark.parametrize("name", sorted(set(NETWORKS) - set(HYBRIDS)))
def test_a_network_that_cannot_read_features_refuses_them_when_built(name):
    with pytest.raises(ConfigError, match="cannot read clinical features"):
        create_model(name, **SMALL[name], n_clinical=408)


@pytest.mark.parametrize("name", HYBRIDS)
def test_hybrid_refuses_a_call_without_its_features(name):
    model = create_model(name, **SMALL[name], n_clinical=408).eval()
    with pytest.raises(ValueError, match="408 clinical features"):
        model(torch.randn(2, 12, 80))


@pytest.mark.parametrize("name", HYBRIDS)
def test_hybrid_logit_follows_the_features_as_well_as_the_signal(name):
    torch.manual_seed(0)
    model = create_model(name, **SMALL[name], n_clinical=408).eval()
    beat, features = torch.randn(2, 12, 80), torch.randn(2, 408)
    with torch.no_grad():
        logits = model(beat, features)
        assert not torch.allclose(model(beat, features + 1.0), logits)
        assert not torch.allclose(model(beat + 1.0, features), logits)


def test_weights_of_a_network_registered_before_the_representation_load_into_its_architecture(tmp_path):
    from ecg_mi.models.base import load_weights

    model = create_model("resnet", **SMALL["resnet"], kernel_size=5, stem_stride=1)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    torch.save({"model": "resnet_beat", "hparams": dict(model.hparams), "state_dict": state}, tmp_path / "w.pt")
    x = torch.randn(2, 12, 80)
    with torch.no_grad():
        assert torch.equal(load_weights(tmp_path / "w.pt")(x), model.eval()(x))


def test_max_epochs_below_one_is_a_config_error():
    with pytest.raises(ConfigError, match="model.max_epochs=0"):
        create_model("resnet", max_epochs=0)


def test_negative_aux_weight_is_a_config_error():
    with pytest.raises(ConfigError, match="model.aux_weight=-1"):
        create_model("resnet", aux_targets=["A"], aux_weight=-1)


def test_test_windows_average_p_mi_over_evenly_spaced_windows_of_the_training_crop():
    torch.manual_seed(0)
    model = create_model("resnet", augment={"crop": 0.5}, test_windows=3, **SMALL["resnet"]).eval()
    x = torch.randn(2, 12, 1000)
    with torch.no_grad():
        windows = [torch.sigmoid(model.logits_and_maps(x[..., s : s + 500])[0]) for s in (0, 250, 500)]
        assert torch.allclose(torch.sigmoid(model(x)), torch.stack(windows).mean(0), atol=1e-6)
        assert not torch.allclose(model(x), model.logits_and_maps(x)[0])  # not the whole strip at once


def test_test_windows_travel_with_the_saved_weights(tmp_path):
    from ecg_mi.models.base import load_weights

    model = create_model("resnet", augment={"crop": 0.5}, test_windows=3, **SMALL["resnet"]).eval()
    model.save_weights(tmp_path / "w.pt")
    x = torch.randn(2, 12, 1000)
    with torch.no_grad():
        assert torch.allclose(load_weights(tmp_path / "w.pt")(x), model.window_logits(x))


def test_test_windows_leave_training_batches_alone():
    model = create_model("resnet", augment={"crop": 0.5}, test_windows=3, **SMALL["resnet"]).train()
    x = torch.randn(2, 12, 1000)
    torch.manual_seed(0)
    windowed = model(x)
    torch.manual_seed(0)
    assert torch.equal(windowed, model.logits_and_maps(x)[0])


def test_test_windows_of_a_network_trained_without_crops_are_the_whole_input():
    model = create_model("resnet", test_windows=3, **SMALL["resnet"]).eval()
    x = torch.randn(2, 12, 1000)
    with torch.no_grad():
        assert torch.equal(model(x), model.logits_and_maps(x)[0])


def test_test_windows_below_one_is_a_config_error():
    with pytest.raises(ConfigError, match="model.test_windows=0"):
        create_model("resnet", test_windows=0)
