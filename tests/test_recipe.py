"""The docs' recipe for adding a model (docs/development.md), followed on a copy of the package: one module
and one YAML, and the registry, the configs and the train route pick the model up."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

RECIPE_CHECK = """
from hydra import compose, initialize_config_dir
from ecg_mi.models import list_models
from ecg_mi.learners import learner_for
from ecg_mi.train import run

assert "tiny" in list_models("network"), list_models("network")
assert learner_for("tiny").family == "network"
with initialize_config_dir(config_dir={conf!r}, version_base="1.3"):
    cfg = compose("train", overrides=["model=tiny", "data.source.n_records=120", "trainer.max_epochs=1",
                                      "trainer.enable_progress_bar=false", "explain.n_examples=1"])
results = run(cfg)
assert 0 <= results["test_auc"] <= 1
print("recipe ok", round(results["test_auc"], 3))
"""


def _recipe_block(language: str, after: str) -> str:
    page = (REPO / "docs" / "development.md").read_text()
    section = page[page.index(after):]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_docs_recipe_adds_a_network_with_one_module_and_one_yaml(tmp_path):
    shutil.copytree(REPO / "src" / "ecg_mi", tmp_path / "src" / "ecg_mi",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    recipe = "### Adding a model"
    (tmp_path / "src" / "ecg_mi" / "models" / "tiny.py").write_text(_recipe_block("python", recipe))
    (tmp_path / "conf" / "model" / "tiny.yaml").write_text(_recipe_block("yaml", recipe))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    done = subprocess.run([sys.executable, "-c", RECIPE_CHECK.format(conf=str(tmp_path / "conf"))],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "recipe ok" in done.stdout
