import numpy as np
import pytest

from ecg_mi.data.record import STANDARD_LEADS, Record, canonical_lead_name, reorder_leads
from ecg_mi.errors import InputError


def test_canonical_lead_names_accept_file_spellings():
    assert canonical_lead_name("AVR") == "aVR"
    assert canonical_lead_name(" v1 ") == "V1"
    assert canonical_lead_name("X") is None


def test_reorder_leads_puts_rows_in_standard_order():
    names = list(reversed(STANDARD_LEADS))
    signal = np.arange(12, dtype=np.float32)[::-1, None].repeat(
        3, axis=1
    )  # row value = standard index
    out = reorder_leads(signal, names, "src")
    assert out[:, 0].tolist() == list(range(12))


def test_reorder_leads_rejects_wrong_count():
    with pytest.raises(InputError, match="expected 12 leads, found 11"):
        reorder_leads(np.zeros((11, 5)), list(STANDARD_LEADS[:11]), "f.xml")


def test_reorder_leads_rejects_duplicates():
    names = list(STANDARD_LEADS[:11]) + ["I"]
    with pytest.raises(InputError, match="duplicated"):
        reorder_leads(np.zeros((12, 5)), names, "f.xml")


def test_record_rejects_non_finite_samples_naming_the_lead():
    signal = np.zeros((12, 10), dtype=np.float32)
    signal[7, 3] = np.inf
    with pytest.raises(InputError, match="1 NaN/inf samples in lead\\(s\\) V2"):
        Record("r1", signal, 500.0)


def test_record_rejects_wrong_dtype_and_shape():
    with pytest.raises(InputError, match="float32"):
        Record("r1", np.zeros((12, 10)), 500.0)
    with pytest.raises(InputError, match="shape"):
        Record("r1", np.zeros((8, 10), dtype=np.float32), 500.0)


def test_record_duration_in_seconds():
    assert Record("r", np.zeros((12, 5000), dtype=np.float32), 500.0).duration_s == 10.0
