"""Readers: WFDB (fast path and wfdb path) and GE CardioSoft XML, good and bad input."""

import re
from pathlib import Path

import numpy as np
import pytest
import wfdb

from conftest import PTBXL_LEADS, cardiosoft_xml, make_signal, restamp_checksums
from ecg_mi.data.readers import read_cardiosoft_xml, read_wfdb, wfdb_reader
from ecg_mi.data.record import STANDARD_LEADS
from ecg_mi.errors import InputError, Refused

# --- WFDB -------------------------------------------------------------------------------


def test_wfdb_reads_signal_in_mv_in_standard_order(tmp_path, write_wfdb):
    signal = make_signal()
    path = write_wfdb(tmp_path, "rec", signal)
    record = read_wfdb(path, expected_fs=100)
    assert record.signal.shape == (12, 1000) and record.signal.dtype == np.float32
    assert record.fs == 100.0 and record.leads == STANDARD_LEADS
    np.testing.assert_allclose(record.signal, signal, atol=1e-3)  # 1 µV ADC resolution


def test_wfdb_reorders_shuffled_leads(tmp_path, write_wfdb):
    signal = make_signal()
    order = [6, 0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    path = write_wfdb(tmp_path, "rec", signal[order], leads=[PTBXL_LEADS[i] for i in order])
    np.testing.assert_allclose(read_wfdb(path).signal, signal, atol=1e-3)


def test_wfdb_fast_path_equals_wfdb_package(tmp_path, write_wfdb):
    path = write_wfdb(tmp_path, "rec", make_signal(seed=3))
    fast = read_wfdb(path).signal
    slow, names, _, _ = wfdb_reader._read_with_wfdb(Path(path), None)
    assert names == PTBXL_LEADS
    np.testing.assert_array_equal(fast, slow.astype(np.float32))


def test_wfdb_microvolt_units_are_converted_to_mv(tmp_path, write_wfdb):
    signal = make_signal()
    path = write_wfdb(tmp_path, "rec", signal * 1000, units="uV", gain=1.0)
    np.testing.assert_allclose(read_wfdb(path).signal, signal, atol=1e-3)


def test_wfdb_missing_header_is_named(tmp_path):
    with pytest.raises(InputError, match=r"nope\.hea: WFDB header file not found"):
        read_wfdb(tmp_path / "nope")


def test_wfdb_missing_dat_is_named(tmp_path, write_wfdb):
    path = write_wfdb(tmp_path, "rec")
    Path(f"{path}.dat").unlink()
    with pytest.raises(InputError, match=r"rec\.dat: WFDB signal file not found"):
        read_wfdb(path)


def test_wfdb_truncated_dat_is_rejected(tmp_path, write_wfdb):
    path = write_wfdb(tmp_path, "rec")
    dat = Path(f"{path}.dat")
    dat.write_bytes(dat.read_bytes()[:5000])
    with pytest.raises(
        InputError, match=r"rec\.dat: truncated, 5000 bytes but the header needs 24000"
    ):
        read_wfdb(path)


def test_wfdb_wrong_lead_count_is_rejected(tmp_path, write_wfdb):
    path = write_wfdb(tmp_path, "rec", make_signal()[:11])
    with pytest.raises(InputError, match="expected 12 leads, found 11"):
        read_wfdb(path)


def test_wfdb_unexpected_sample_rate_is_rejected(tmp_path, write_wfdb):
    path = write_wfdb(tmp_path, "rec", make_signal(n=2500, fs=250), fs=250)
    with pytest.raises(InputError, match="sampling frequency is 250 Hz, expected 500 Hz"):
        read_wfdb(path, expected_fs=500)


def test_wfdb_invalid_samples_are_rejected_as_nan(tmp_path, write_wfdb):
    path = write_wfdb(tmp_path, "rec")
    dat = Path(f"{path}.dat")
    raw = np.fromfile(dat, dtype="<i2")
    raw[12 * 10 + 3] = -32768  # WFDB's "no sample" sentinel, lead aVR
    raw.tofile(dat)
    restamp_checksums(path)  # a file written so, not damaged
    with pytest.raises(Refused, match="finite: 1 NaN/inf samples in lead\\(s\\) aVR"):
        read_wfdb(path)


def test_wfdb_unusual_format_goes_through_wfdb_package(tmp_path):
    signal = make_signal()
    wfdb.wrsamp("rec", fs=100, units=["mV"] * 12, sig_name=PTBXL_LEADS, p_signal=signal.T, fmt=["212"] * 12,
                adc_gain=[200.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))  # fmt: skip
    np.testing.assert_allclose(read_wfdb(tmp_path / "rec").signal, signal, atol=5e-3)


# --- CardioSoft XML ----------------------------------------------------------------------


def write_xml(tmp_path: Path, text: str, name: str = "1234567_20205_2_0.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="latin-1")
    return path


def test_cardiosoft_scales_by_resolution_to_mv(tmp_path):
    signal_uv = make_signal(n=5000, fs=500) * 1000
    record = read_cardiosoft_xml(write_xml(tmp_path, cardiosoft_xml(signal_uv, resolution=5)))
    assert record.signal.shape == (12, 5000) and record.fs == 500.0
    np.testing.assert_allclose(record.signal, signal_uv / 1000, atol=0.0025 + 1e-6)
    assert record.record_id == "1234567_20205_2_0"


def test_cardiosoft_doctype_is_refused_not_expanded(tmp_path):
    laughs = '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n'
    path = write_xml(tmp_path, cardiosoft_xml(prolog=laughs))
    with pytest.raises(InputError, match="DOCTYPE/entity declaration is refused"):
        read_cardiosoft_xml(path)


def test_cardiosoft_external_entity_is_refused(tmp_path):
    xxe = '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    with pytest.raises(InputError, match="refused"):
        read_cardiosoft_xml(write_xml(tmp_path, cardiosoft_xml(prolog=xxe)))


def test_cardiosoft_malformed_xml_is_named(tmp_path):
    path = write_xml(tmp_path, cardiosoft_xml()[:-40])
    with pytest.raises(InputError, match=r"1234567_20205_2_0\.xml: malformed XML"):
        read_cardiosoft_xml(path)


def test_cardiosoft_wrong_root_is_rejected(tmp_path):
    text = cardiosoft_xml().replace("CardiologyXML", "RestingECG")
    with pytest.raises(InputError, match="root element is <RestingECG>"):
        read_cardiosoft_xml(write_xml(tmp_path, text))


def test_cardiosoft_wrong_lead_count_is_rejected(tmp_path):
    text = cardiosoft_xml(make_signal(n=5000, fs=500)[:8] * 1000)
    with pytest.raises(InputError, match="expected 12 leads, found 8"):
        read_cardiosoft_xml(write_xml(tmp_path, text))


def test_cardiosoft_unexpected_sample_rate_is_rejected(tmp_path):
    text = cardiosoft_xml(make_signal(n=2500, fs=250) * 1000, fs=250)
    with pytest.raises(InputError, match="<SampleRate> is 250 Hz, expected 500 Hz"):
        read_cardiosoft_xml(write_xml(tmp_path, text))


def test_cardiosoft_non_numeric_samples_are_named(tmp_path):
    text = cardiosoft_xml().replace('<WaveformData lead="V3">', '<WaveformData lead="V3">abc,')
    with pytest.raises(InputError, match="lead 'V3' holds non-numeric samples"):
        read_cardiosoft_xml(write_xml(tmp_path, text))


def test_cardiosoft_nan_samples_are_rejected(tmp_path):
    text = re.sub(r'(<WaveformData lead="V3">)-?\d+', r"\1nan", cardiosoft_xml())
    with pytest.raises(InputError, match="1 NaN/inf samples in lead\\(s\\) V3"):
        read_cardiosoft_xml(write_xml(tmp_path, text))


def test_cardiosoft_sample_count_mismatch_is_rejected(tmp_path):
    text = cardiosoft_xml().replace(
        "<ChannelSampleCountTotal>5000<", "<ChannelSampleCountTotal>4000<"
    )
    with pytest.raises(InputError, match="says 4000 samples, leads hold 5000"):
        read_cardiosoft_xml(write_xml(tmp_path, text))


@pytest.mark.integration
def test_cardiosoft_real_file_matches_ptbxl_record(shared_cardiosoft, shared_ptbxl):
    """Known answer: the CardioSoft 6.73 export holds PTB-XL 00139_hr at 5 µV/LSB."""
    record = read_cardiosoft_xml(shared_cardiosoft)
    reference = read_wfdb(shared_ptbxl / "records500" / "00000" / "00139_hr", expected_fs=500)
    assert record.signal.shape == (12, 5000) and record.fs == 500.0
    assert np.abs(record.signal - reference.signal).max() <= 0.0025 + 1e-6


@pytest.mark.integration
def test_wfdb_real_ptbxl_records_match_wfdb_package(shared_ptbxl):
    for ecg_id in (1, 139, 250, 777, 1500):
        candidates = list((shared_ptbxl / "records100").glob(f"*/{ecg_id:05d}_lr.hea"))
        if not candidates:
            continue
        path = candidates[0].with_suffix("")
        ours = read_wfdb(path, expected_fs=100)
        signal, _ = wfdb.rdsamp(str(path))
        np.testing.assert_array_equal(ours.signal, signal.T.astype(np.float32))
