"""Data sources: PTB-XL layout, UKB XML folder + outcomes, synthetic."""

import pandas as pd
import pytest

from conftest import cardiosoft_xml, make_signal
from ecg_mi.data.sources import PtbxlSource, SyntheticSource, UkbXmlSource
from ecg_mi.errors import ConfigError, InputError


def test_ptbxl_label_rule_uses_diagnostic_class(tiny_ptbxl):
    index = PtbxlSource(tiny_ptbxl(n_records=30, n_mi=10)).index()
    assert index["label"].sum() == 10  # 'IMI' has diagnostic_class MI; 'SR', 'LVH', 'NORM' do not
    expected_norm = sum(1 for i in range(11, 31) if i % 3)  # controls are NORM unless id % 3 == 0
    assert index.loc[index["label"] == 0, "is_norm"].sum() == expected_norm
    assert set(index.columns) >= {"record_id", "patient_id", "age", "sex", "label", "is_norm"}


def test_ptbxl_reads_each_rate_from_its_folder(tiny_ptbxl):
    source = PtbxlSource(tiny_ptbxl(n_records=6, n_mi=2))
    row = source.index().iloc[0]
    assert source.read(row, 100).signal.shape == (12, 1000)
    assert source.read(row, source.native_rate(250)).signal.shape == (12, 5000)
    assert source.read(row, 500).metadata["patient_id"] == row["patient_id"]


def test_ptbxl_missing_root_names_the_path(tmp_path):
    with pytest.raises(InputError, match=f"PTB-XL root {tmp_path / 'nowhere'} does not exist"):
        PtbxlSource(tmp_path / "nowhere")


def test_ptbxl_root_defaults_to_env(tiny_ptbxl, monkeypatch):
    root = tiny_ptbxl(n_records=6, n_mi=2)
    monkeypatch.setenv("ECG_MI_DATA", str(root.parent))
    assert PtbxlSource().root == root


def test_ptbxl_missing_columns_are_named(tiny_ptbxl):
    root = tiny_ptbxl(n_records=6, n_mi=2)
    db = pd.read_csv(root / "ptbxl_database.csv").drop(columns=["scp_codes"])
    db.to_csv(root / "ptbxl_database.csv", index=False)
    with pytest.raises(
        InputError, match=r"ptbxl_database.csv: missing column\(s\) \['scp_codes'\]"
    ):
        PtbxlSource(root).index()


def test_synthetic_source_rejects_tiny_sizes():
    with pytest.raises(ConfigError, match="n_records=3"):
        SyntheticSource(n_records=3)


def _ukb(tmp_path, table: str) -> UkbXmlSource:
    (tmp_path / "xml").mkdir()
    for eid in ("1000001", "1000002"):
        (tmp_path / "xml" / f"{eid}_20205_2_0.xml").write_text(
            cardiosoft_xml(make_signal(5000, 500) * 1000)
        )
    (tmp_path / "outcomes.csv").write_text(table)
    return UkbXmlSource(tmp_path / "xml", tmp_path / "outcomes.csv")


def test_ukb_matches_files_by_eid_and_reads_them(tmp_path):
    source = _ukb(tmp_path, "eid,mi,age,sex\n1000001,1,61,0\n1000002,0,55,1\n")
    index = source.index()
    assert index["label"].tolist() == [1, 0]
    record = source.read(index.iloc[0], 500)
    assert record.signal.shape == (12, 5000) and record.metadata["label"] == 1


def test_ukb_outcome_table_needs_its_columns(tmp_path):
    with pytest.raises(InputError, match=r"missing column\(s\) \['mi'\]"):
        _ukb(tmp_path, "eid,age,sex\n1000001,61,0\n").index()


def test_ukb_labels_must_be_binary(tmp_path):
    with pytest.raises(InputError, match="'mi' must be 0/1"):
        _ukb(tmp_path, "eid,mi,age,sex\n1000001,2,61,0\n").index()


def test_ukb_needs_both_paths():
    with pytest.raises(ConfigError, match="data.source.root"):
        UkbXmlSource(None, None)


@pytest.mark.integration
def test_shared_ptbxl_counts_match_its_source_notes(shared_ptbxl):
    index = PtbxlSource(shared_ptbxl).index()
    assert len(index) == 1687 and index["patient_id"].nunique() == 1571
    assert int(index["label"].sum()) == 312
    assert int((index["sex"] == 0).sum()) == 788


@pytest.mark.integration
def test_shared_ptbxl_reads_a_few_dozen_records(shared_ptbxl):
    source = PtbxlSource(shared_ptbxl)
    index = source.index()
    for _, row in index.iloc[::60].iterrows():  # 29 records across the id range
        record = source.read(row, 100)
        assert record.signal.shape == (12, 1000)
        assert 0.05 < float(abs(record.signal).max()) < 20  # mV
