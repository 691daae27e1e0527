"""Publishing a benchmark into BENCHMARKS.md: generated sections and the target verdicts."""

import pandas as pd

from ecg_mi.evaluate.publish import markers, replace_section, target_lines


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
