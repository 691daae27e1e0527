"""The embedded synthetic generator (src/ecg_mi/data/sources/synthetic.py)."""

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.data.sources import synthetic

LEAD = {name: i for i, name in enumerate(STANDARD_LEADS)}


def test_same_seed_same_records():
    a, b = synthetic.generate_index(50, seed=7), synthetic.generate_index(50, seed=7)
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(
        synthetic.synthesize_record(a.iloc[3]), synthetic.synthesize_record(b.iloc[3])
    )


def test_different_seed_different_records():
    a, b = synthetic.generate_index(50, seed=1), synthetic.generate_index(50, seed=2)
    assert not np.array_equal(
        synthetic.synthesize_record(a.iloc[0]), synthetic.synthesize_record(b.iloc[0])
    )


def test_record_shape_units_and_range():
    signal = synthetic.synthesize_record(synthetic.generate_index(5, seed=0).iloc[0])
    assert signal.shape == (12, 5000) and signal.dtype == np.float32
    assert 0.3 < np.abs(signal).max() < 6.0  # mV: a QRS is present, nothing absurd


def test_limb_leads_obey_einthoven_and_goldberger():
    v = synthetic.lead_vectors()
    np.testing.assert_allclose(v[LEAD["III"]], v[LEAD["II"]] - v[LEAD["I"]])
    np.testing.assert_allclose(v[LEAD["aVR"]] + v[LEAD["aVL"]] + v[LEAD["aVF"]], 0, atol=1e-12)


def test_territories_face_their_leads():
    v = synthetic.lead_vectors()
    facing = {
        "inferior": ["II", "III", "aVF"],
        "anterior": ["V1", "V2", "V3", "V4"],
        "lateral": ["I", "aVL", "V5", "V6"],
    }
    for territory, leads in facing.items():
        projection = v @ synthetic.TERRITORIES[territory]
        top = {STANDARD_LEADS[i] for i in np.argsort(-projection)[: len(leads)]}
        assert len(top & set(leads)) >= len(leads) - 1, (territory, top)


def test_acute_inferior_mi_elevates_st_in_inferior_leads():
    """At the peak of the ST plateau, II/III/aVF sit > 0.1 mV higher than in a healthy heart
    with the same beats, and aVL is depressed (reciprocal change)."""
    common = dict(rotation=np.eye(3), amp_scale=1.0, qrs_scale=1.0, base_hr=60.0, confounder=None)
    healthy = synthetic.HeartParams(mi=False, territory=None, severity=0.0, acute=False, **common)
    infarct = synthetic.HeartParams(
        mi=True, territory="inferior", severity=0.9, acute=True, **common
    )
    t = np.arange(5000) / 500.0
    dipole_h, _ = synthetic._dipole(healthy, np.random.default_rng(0), t)
    dipole_mi, st = synthetic._dipole(infarct, np.random.default_rng(0), t)  # same beat times
    at = st.argmax()
    shift = synthetic.lead_vectors() @ (dipole_mi[:, at] - dipole_h[:, at])
    assert (shift[[LEAD["II"], LEAD["III"], LEAD["aVF"]]] > 0.1).all()
    assert shift[LEAD["aVL"]] < 0


def test_mi_more_likely_in_older_men():
    index = synthetic.generate_index(3000, seed=0)
    model = LogisticRegression().fit(np.c_[index["age"], index["sex"]], index["label"])
    age_coef, female_coef = model.coef_[0]
    assert age_coef > 0 and female_coef < 0


def test_some_patients_have_two_records():
    index = synthetic.generate_index(600, seed=0)
    counts = index["patient_id"].value_counts()
    assert 20 < (counts == 2).sum() < 120 and counts.max() == 2
    assert index.groupby("patient_id")["label"].nunique().max() == 1
