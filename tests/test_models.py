"""The model registry and the ResNet."""

import pytest
import torch

from ecg_mi.errors import ConfigError
from ecg_mi.models import create_model, list_models, register_model
from ecg_mi.models.resnet import ResidualUnit, ResNet


def test_registry_knows_resnet():
    assert "resnet" in list_models()
    assert isinstance(create_model("resnet", channels=[8, 8, 8]), ResNet)


def test_unknown_model_lists_known_names():
    with pytest.raises(ConfigError, match="unknown model 'resnot'; known models: .*resnet"):
        create_model("resnot")


def test_bad_model_settings_are_config_errors():
    with pytest.raises(ConfigError, match="model 'resnet': bad settings"):
        create_model("resnet", widht=3)


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet")(type("Other", (), {}))


@pytest.mark.parametrize("length", [1000, 2500, 5000])
def test_resnet_gives_one_logit_per_record(length):
    model = create_model("resnet").eval()
    assert model(torch.randn(3, 12, length)).shape == (3,)


def test_resnet_has_three_residual_units_with_1x1_shortcuts():
    model = create_model("resnet")
    units = [m for m in model.modules() if isinstance(m, ResidualUnit)]
    assert len(units) == 3
    assert all(u.shortcut[0].kernel_size == (1,) for u in units)


def test_one_step_lowers_the_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    model = create_model("resnet", channels=[8, 16, 16], dropout=0.0)
    x, y = torch.randn(8, 12, 1000), torch.tensor([0.0, 1.0] * 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(2):
        loss = model.loss_fn(model(x), y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[1] < losses[0]
