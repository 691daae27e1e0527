"""benchmarks/ptbxl_benchmark.py end to end on a small real PTB-XL subset (make benchmark)."""

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO, load_script

pytestmark = pytest.mark.slow

# 40 MI records + 80 controls of the real cohort, 2 folds, 1 epoch: the whole pipeline, small.
SUBSET = ["--folds", "0,1", "--set", "data.n_folds=2", "--set", "data.cohort.max_cases=40",
          "--set", "trainer.max_epochs=1", "--set", "explain.n_examples=2",
          "--set", "explain.permutation_repeats=1", "--classical-set", "++model.search=none",
          "--evaluate-set", "n_bootstrap=200"]  # fmt: skip


@pytest.fixture(scope="module")
def benchmark_runs(tmp_path_factory):
    """The benchmark command twice: from scratch, then re-run on the same store. Returns the
    output dir and the two published BENCHMARKS.md texts. (A third run from scratch on a new
    store cost 4 min of CI for what test_train's same-config-twice tests check per family.)"""
    if not (REPO.parent / "shared" / "data" / "ptbxl" / "ptbxl_database.csv").is_file():
        pytest.skip("shared PTB-XL subset not found beside the repository")
    out = tmp_path_factory.mktemp("benchmark")
    # Module-scoped stores: the autouse per-test store would differ between the calls.
    stores = [tmp_path_factory.mktemp("store")] * 2
    texts = []
    for i, store in enumerate(stores):
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
               "ECG_MI_CACHE": str(store / "cache"), "ECG_MI_NO_PROGRESS": "1"}  # fmt: skip
        args = [sys.executable, "benchmarks/ptbxl_benchmark.py", *SUBSET, "--set", f"hydra.sweep.dir={out}/sweep{i}",
                "--benchmarks-md", str(out / f"BENCHMARKS{i}.md"), "--figures-dir", str(out / "figures"),
                "--reports-dir", str(out / f"reports{i}")]  # fmt: skip
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=1800, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        texts.append((out / f"BENCHMARKS{i}.md").read_text())
    return out, texts


def _section(text: str, heading: str) -> str:
    return re.search(rf"### {heading}\n(.*?)(?=\n### |\Z)", text, re.DOTALL).group(1)


def test_every_model_config_and_ensemble_is_in_the_published_table(benchmark_runs):
    out, (first, _) = benchmark_runs
    table = pd.read_csv(out / "reports0" / "ecg-mi-ptbxl-benchmark_cpu" / "table2.csv")
    script, ensembles = load_script("benchmarks/ptbxl_benchmark.py"), table["model"].str.contains("+", regex=False)
    configs = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))  # every model config, both families
    assert sorted(table.loc[~ensembles, "model"]) == configs == sorted(script.CLASSICAL + script.NETWORKS)
    assert sorted(table.loc[ensembles, "model"]) == sorted(script.ENSEMBLES)
    assert table["ece"].between(0, 1).all() and (table["train_minutes"] > 0).all()
    assert (table["folds"] == 2).all() and (table["n_records"] == 120).all()
    assert "<!-- generated: benchmark begin -->" in first and "Strodthoff" in first


def test_figures_are_written_and_linked(benchmark_runs):
    out, (first, _) = benchmark_runs
    names = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert {"roc.png", "subgroups.png", "importance_xgboost.png"} <= set(names)
    assert {"gradcam_true_positive.png", "gradcam_true_negative.png"} <= set(names)
    for name in names:
        assert f"(figures/{name})" in first  # relative to the published Markdown file


def test_rerun_reuses_every_finished_run(benchmark_runs):
    out, (_, second) = benchmark_runs
    record = json.loads(
        (out / "reports1" / "ecg-mi-ptbxl-benchmark_cpu" / "stages.json").read_text()
    )
    stages = pd.DataFrame(record["stages"])
    trained = stages.dropna(subset=["trained"])
    script = load_script("benchmarks/ptbxl_benchmark.py")
    per_family = [len(script.CLASSICAL) * 2, len(script.NETWORKS) * 2]  # 2 folds
    assert trained["trained"].tolist() == [0, 0] and trained["reused"].tolist() == per_family
    assert all(f"| 0 | {n} |" in second for n in per_family)


TABLE = "Table 2 on PTB-XL \\(ours\\) beside the paper's UK Biobank Table 2"
ST = "ST-segment attention.*?"


def test_rerun_reproduces_the_published_numbers_exactly(benchmark_runs):
    _, (first, second) = benchmark_runs
    assert _section(first, TABLE) == _section(second, TABLE)
    assert _section(first, ST) == _section(second, ST)
