"""Every config option composes and instantiates what it names (lightning-hydra-template's
config tests), so a broken YAML fails ``make test``, not a user's run."""

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from conftest import REPO, compose_config, load_script
from ecg_mi.learners import architecture, build_model, learner_for, representation_of
from ecg_mi.models import list_models
from ecg_mi.utils.config import build

CONF = REPO / "conf"


def options(group: str) -> list[str]:
    """The option names of config group ``group`` (its YAML files, those of subfolders as
    ``folder/name``: ``experiment=ablation/resnet``)."""
    return sorted(p.relative_to(CONF / group).with_suffix("").as_posix() for p in (CONF / group).rglob("*.yaml"))


def test_every_registered_architecture_has_a_config_of_its_name():
    assert set(list_models()) <= set(options("model"))


@pytest.mark.parametrize("model", options("model"))
def test_model_config_builds_its_registered_architecture_on_its_own_representation(model):
    cfg = compose_config("train", f"model={model}")
    built = build_model(cfg)
    assert built.model_name == architecture(cfg.model) and learner_for(built.model_name).family == built.family
    # The representation the config selects is the one it names (the label rests on it).
    assert cfg.representation.name == cfg.model.representation == representation_of(cfg).name


@pytest.mark.parametrize("representation", options("representation"))
def test_representation_config_instantiates_what_it_names(representation):
    from ecg_mi.representation import Representation

    built = build(compose_config("train", f"representation={representation}").representation, "representation")
    assert isinstance(built, Representation) and built.name == representation and not built.fitted


@pytest.mark.parametrize("model", ["resnet_beat", "resnet_hybrid"])
def test_a_teachers_model_config_does_not_change_the_representation(model):
    """teacher=<name> composes a classical model config, which selects the features: the
    network's own selection, composed after it, holds."""
    cfg = compose_config("train", "teacher=random_forest", f"model={model}")
    assert cfg.representation.name == cfg.model.representation != "features"


def test_the_command_line_representation_wins_and_names_the_run():
    from ecg_mi.learners import model_label

    cfg = compose_config("train", "model=resnet", "representation=median_beat")
    assert cfg.representation.name == "median_beat" and model_label(cfg) == "resnet@median_beat"
    assert model_label(compose_config("train", "model=resnet_beat")) == "resnet_beat"


def test_a_representation_the_family_cannot_read_is_a_config_error():
    from ecg_mi.errors import ConfigError

    with pytest.raises(ConfigError, match="a classical model reads the 408 features alone"):
        representation_of(compose_config("train", "model=xgboost", "representation=window"))
    with pytest.raises(ConfigError, match="a network reads a signal"):
        representation_of(compose_config("train", "model=resnet", "representation=features"))


@pytest.mark.parametrize("data", options("data"))
def test_data_config_names_a_source(data, tmp_path):
    cfg = compose_config("train", f"data={data}")
    OmegaConf.resolve(cfg)
    assert cfg.data.name == data and "_target_" in cfg.data.source
    if data == "synthetic":  # the others need their files; their sources are tested with them
        assert len(instantiate(cfg.data.source).index()) > 0


@pytest.mark.parametrize("targets", options("targets"))
def test_targets_config_names_only_targets_ptbxl_offers(targets, shared_ptbxl):
    from ecg_mi.data.columns import AUX_PREFIX
    from ecg_mi.data.sources import PtbxlSource

    cfg = compose_config("train", "data=ptbxl", f"targets={targets}")
    OmegaConf.resolve(cfg)
    offered = {c.removeprefix(AUX_PREFIX) for c in PtbxlSource(shared_ptbxl).index().columns if c.startswith(AUX_PREFIX)}
    assert cfg.model.aux_targets == cfg.data.aux_targets and set(cfg.data.aux_targets) <= offered
    assert len(set(cfg.data.aux_targets)) == len(cfg.data.aux_targets)


@pytest.mark.parametrize("teacher", options("teacher"))
def test_teacher_config_is_its_model_config_and_builds(teacher):
    from ecg_mi.targets.teacher import check_teacher

    cfg = compose_config("train", f"teacher={teacher}", f"model={teacher}")
    # The teacher is the model `model=<name>` trains, settings and all, not the library's defaults.
    estimator = OmegaConf.to_container(cfg.data.teacher.estimator, resolve=True)
    assert estimator == OmegaConf.to_container(cfg.model, resolve=True)
    assert check_teacher(OmegaConf.to_container(cfg.data.teacher, resolve=True))["model"].model_name == teacher


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_config_instantiates_on_cpu(trainer):
    cfg = compose_config("train", f"trainer={trainer}")
    with open_dict(cfg):
        cfg.trainer.accelerator = "cpu"
        cfg.trainer.precision = "32-true"
        if cfg.trainer.get("devices") == -1:
            cfg.trainer.devices = 1
    built = build(cfg.trainer, "trainer", logger=False)
    assert built.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_callbacks_config_builds_the_selecting_checkpoint(callbacks, tmp_path):
    from ecg_mi.learners.network import build_callbacks

    cfg = compose_config("train", f"callbacks={callbacks}")
    checkpoint, built = build_callbacks(cfg, tmp_path)
    # the best val_auc epoch, or (monitor null: `last`) the latest epoch
    assert checkpoint.monitor in ("val_auc", None) and checkpoint.save_top_k == 1 and checkpoint in built


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_config_composes_and_builds_its_model(experiment):
    cfg = compose_config("train", f"experiment={experiment}")
    OmegaConf.resolve(cfg)
    assert build_model(cfg).model_name == architecture(cfg.model)


@pytest.mark.parametrize("launcher", options("hydra/launcher") if (CONF / "hydra" / "launcher").is_dir() else [])
def test_launcher_config_composes(launcher):
    cfg = compose_config("train", f"hydra/launcher={launcher}")
    assert cfg is not None


@pytest.mark.parametrize("entry", sorted(p.stem for p in CONF.glob("*.yaml")))
def test_entry_config_composes(entry):
    assert OmegaConf.to_container(compose_config(entry), resolve=False)


BEAT_NETWORKS = [n for n in options("model") if compose_config("train", f"model={n}").representation.name.startswith("median_beat")]
# Common settings a network deliberately sets for itself (its comment says why): a median-beat
# network its epoch budget and augmentation (no crop or shift).
# Strip networks trained on crops may average windows at prediction (test_windows, chosen on
# validation); median-beat networks that inherit a strip config score the beat whole.
OWN_SETTINGS = ({"attention": {"lr"}, "xresnet1d": {"test_windows"}, "resnet1d_wang": {"test_windows"}}
                | {name: {"max_epochs", "augment", "test_windows"} for name in BEAT_NETWORKS})  # fmt: skip


def test_networks_share_one_copy_of_their_common_settings():
    common = set(OmegaConf.load(CONF / "common" / "network.yaml")) - {"defaults", "representation"}
    for model in [m for m in options("model") if learner_for(architecture(compose_config("train", f"model={m}").model)).family == "network"]:
        own = OmegaConf.load(CONF / "model" / f"{model}.yaml")
        repeated = set(own) & common - OWN_SETTINGS.get(model, set())
        assert not repeated, f"conf/model/{model}.yaml repeats {sorted(repeated)}"


@pytest.mark.parametrize("name", BEAT_NETWORKS)
def test_median_beat_network_keeps_the_sweeps_gain_and_noise_but_never_crops(name):
    cfg = compose_config("train", "experiment=cpu_fast", f"model={name}")
    assert cfg.augment.crop == 0.5 and cfg.model.augment.crop == 0.0 and cfg.model.augment.shift == 0.0
    assert (cfg.model.augment.scale, cfg.model.augment.noise) == (cfg.augment.scale, cfg.augment.noise)


def test_an_experiments_settings_for_a_switched_off_callback_leave_it_off(tmp_path):
    """cpu_fast tunes early_stopping.patience; under callbacks=last early stopping stays off."""
    from pytorch_lightning.callbacks import EarlyStopping

    from ecg_mi.learners.network import build_callbacks

    cfg = compose_config("train", "experiment=cpu_fast", "callbacks=last")
    checkpoint, built = build_callbacks(cfg, tmp_path)
    assert checkpoint.monitor is None and not any(isinstance(c, EarlyStopping) for c in built)


ARMS = load_script("benchmarks/ablation.py").ARMS


def test_the_ablation_runs_every_arm_of_its_folder():
    assert set(ARMS) == set(n.removeprefix("ablation/") for n in options("experiment") if n.startswith("ablation/"))


@pytest.mark.parametrize(("arm", "overrides"), [
    ("resnet_beat_all_statements_et_teacher_last", "model=resnet_beat data.train_pool=all targets=statements "
     "teacher=extra_trees data.teacher.estimator.top_features=null data.teacher.estimator.q_ratios=false callbacks=last"),
    ("random_forest_all_1000", "model=random_forest data.train_pool=all ++model.params.n_estimators=1000"),
    ("xgboost_paper", "model=xgboost ++model.search=none"),
])  # fmt: skip
def test_an_ablation_arm_hashes_as_the_override_list_it_replaced(arm, overrides):
    """Runs the ablation trained as ``experiment=cpu_fast <overrides>`` are found by skip_finished."""
    from ecg_mi.tracking import config_hash

    old, new = compose_config("train", "experiment=cpu_fast", *overrides.split()), compose_config("train", f"experiment=ablation/{arm}")
    learner = learner_for(architecture(new.model))
    for digest in (learner.hashed_config, learner.legacy_hashed_config):
        assert config_hash(digest(new)) == config_hash(digest(old))

@pytest.mark.parametrize("arm", sorted(ARMS))
def test_every_ablation_arm_extends_cpu_fast_with_its_model_a_known_baseline_and_callbacks_that_build(arm, tmp_path):
    """An arm's typo would fail only after the arms before it trained (its model and its
    composition are checked with every experiment config above)."""
    from ecg_mi.learners.network import build_callbacks

    cfg = compose_config("train", f"experiment=ablation/{arm}")
    assert cfg.experiment_name == compose_config("train", "experiment=cpu_fast").experiment_name  # it extends cpu_fast
    assert cfg.model.name == ARMS[arm].model and ARMS[arm].baseline in ARMS
    if learner_for(architecture(cfg.model)).family == "network":
        build_callbacks(cfg, tmp_path)
