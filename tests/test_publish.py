"""Publishing a benchmark into BENCHMARKS.md: generated sections and the target verdicts."""

import subprocess

import pandas as pd
import pytest

from ecg_mi.evaluate.publish import markers, replace_section, stale_table, target_lines
from ecg_mi.paths import repo_root


def test_replace_section_appends_when_absent_and_keeps_the_rest(tmp_path):
    doc = tmp_path / "B.md"
    doc.write_text("# Title\n\nhand-written\n")
    replace_section(doc, "speed", "first")
    text = doc.read_text()
    begin, end = markers("speed")
    assert text.startswith("# Title\n\nhand-written\n") and f"{begin}\nfirst\n{end}" in text


def test_replace_section_replaces_only_its_own_section(tmp_path):
    doc = tmp_path / "B.md"
    replace_section(doc, "benchmark", "old table")
    replace_section(doc, "speed", "old speed")
    doc.write_text(doc.read_text() + "\nnotes after\n")
    replace_section(doc, "benchmark", "new table")
    text = doc.read_text()
    assert "new table" in text and "old table" not in text
    assert "old speed" in text and text.endswith("notes after\n")
    assert text.count(markers("benchmark")[0]) == 1


def test_replace_section_takes_backslashes_literally(tmp_path):
    doc = tmp_path / "B.md"
    replace_section(doc, "s", "a")
    replace_section(doc, "s", r"p \1 \g<0>")
    assert r"p \1 \g<0>" in doc.read_text()


def _table(resnet: float, xgboost: float) -> pd.DataFrame:
    return pd.DataFrame({
        "arm": ["raw ECG", "raw ECG", "clinical features"], "model": ["resnet", "cnn", "xgboost"],
        "name": ["ResNet", "CNN", "XGBoost"], "auc_mean": [resnet, 0.80, xgboost],
        "pooled_auc": [resnet, 0.80, xgboost],
    })  # fmt: skip


def test_targets_report_met_and_not_met_from_the_table():
    lines = "\n".join(target_lines(_table(resnet=0.93, xgboost=0.85)))
    assert "resnet mean test AUC 0.930 vs target ≥ 0.90: **met**" in lines
    assert "best network mean test AUC 0.930 vs target ≥ 0.92: **met**" in lines
    assert "xgboost mean test AUC 0.850 vs target ≥ 0.88: **not met**" in lines
    assert "the deep networks beat the features" in lines


def test_targets_say_when_the_networks_do_not_beat_the_features():
    lines = "\n".join(target_lines(_table(resnet=0.82, xgboost=0.88)))
    assert "do **not** beat" in lines and "best feature model XGBoost 0.880" in lines


def _git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def table_repo(tmp_path):
    """A git repository with a model config and a document whose benchmark section names HEAD."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "resnet.yaml").write_text("name: resnet\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "model")
    document = tmp_path / "BENCHMARKS.md"
    replace_section(document, "benchmark", f"Command: `make benchmark` · commit `{_git(tmp_path, 'rev-parse', '--short=12', 'HEAD')}`")
    return tmp_path, document


def test_a_table_from_the_last_model_change_is_fresh(table_repo):
    root, document = table_repo
    assert stale_table(document, root) is None


def test_a_model_change_after_the_tables_commit_makes_it_stale(table_repo):
    root, document = table_repo
    (root / "conf" / "model" / "resnet.yaml").write_text("name: resnet\nlr: 0.1\n")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "tune resnet")
    assert "stale" in stale_table(document, root)


def test_a_table_from_uncommitted_changes_is_refused(table_repo):
    root, document = table_repo
    replace_section(document, "benchmark", "Command: `make benchmark` · commit `0123456789ab-dirty`")
    assert "not from a commit" in stale_table(document, root)


def test_the_published_table_2_describes_todays_models():
    """BENCHMARKS.md's Table 2 came from a commit no later change to the models predates."""
    root = repo_root()
    if _git(root, "rev-parse", "--is-shallow-repository") == "true":
        pytest.skip("a shallow clone lacks the history that dates Table 2 (git fetch --unshallow)")
    assert stale_table(root / "BENCHMARKS.md", root) is None
