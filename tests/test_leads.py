"""Lead mapping: names as formats spell them, derived limb leads, dropped extras, errors."""

import numpy as np
import pytest

from ecg_mi.data.leads import derive_limb_leads, standard_lead_name, to_standard_12
from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.errors import InputError

EIGHT = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("AVR", "aVR"), ("avl", "aVL"), (" V1 ", "V1"), ("MDC_ECG_LEAD_AVF", "aVF"),
        ("MDC_ECG_LEAD_I", "I"), ("Lead I (Einthoven)", "I"), ("Lead III", "III"),
        ("aVR, augmented voltage, right", "aVR"), ("Lead V6", "V6"), ("Lead 2", "II"),
    ],
)  # fmt: skip
def test_standard_lead_name_understands_format_spellings(label, name):
    assert standard_lead_name(label) == name


@pytest.mark.parametrize("label", ["vx", "V4R", "V7", "X", "", "MDC_ECG_LEAD_V3R", "-aVR"])
def test_non_standard_leads_have_no_standard_name(label):
    assert standard_lead_name(label) is None


def test_eight_stored_leads_give_the_derived_four():
    rng = np.random.default_rng(0)
    stored = rng.normal(size=(8, 300))
    out, derived = to_standard_12(stored, EIGHT, "f")
    lead = dict(zip(STANDARD_LEADS, out.astype(np.float64), strict=True))
    assert derived == ["III", "aVR", "aVL", "aVF"]
    i, ii = stored[0], stored[1]
    np.testing.assert_allclose(lead["III"], ii - i, atol=1e-6)
    np.testing.assert_allclose(lead["aVR"], -(i + ii) / 2, atol=1e-6)
    np.testing.assert_allclose(lead["aVL"], i - ii / 2, atol=1e-6)
    np.testing.assert_allclose(lead["aVF"], ii - i / 2, atol=1e-6)


def test_shuffled_twelve_leads_come_back_in_standard_order():
    signal = np.arange(12, dtype=float)[:, None] * np.ones((12, 5))
    order = [11, 3, 0, 5, 1, 2, 4, 10, 6, 8, 7, 9]
    out, derived = to_standard_12(signal[order], [STANDARD_LEADS[i] for i in order], "f")
    np.testing.assert_array_equal(out, signal.astype(np.float32))
    assert derived == []


def test_extra_leads_are_dropped():
    signal = np.ones((15, 4))
    labels = [*STANDARD_LEADS, "vx", "vy", "vz"]
    out, _ = to_standard_12(signal, labels, "f")
    assert out.shape == (12, 4) and out.dtype == np.float32


def test_missing_precordial_lead_is_named():
    with pytest.raises(InputError, match=r"rec\.xml: missing lead\(s\) V3"):
        to_standard_12(np.ones((7, 4)), [x for x in EIGHT if x != "V3"], "rec.xml")


def test_duplicated_lead_is_rejected():
    with pytest.raises(InputError, match="lead V1 appears twice"):
        to_standard_12(np.ones((9, 4)), [*EIGHT, "v1"], "f")


def test_lead_i_is_recovered_from_ii_and_iii():
    leads = {"II": np.array([3.0]), "III": np.array([1.0])}
    assert derive_limb_leads(leads)[0] == "I"
    assert leads["I"][0] == 2.0 and leads["aVR"][0] == -2.5


def test_label_count_must_match_rows():
    with pytest.raises(InputError, match="7 lead labels for a signal of shape"):
        to_standard_12(np.ones((8, 4)), EIGHT[:7], "f")
