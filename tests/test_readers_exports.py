"""Export readers behind one Record: every format on its real samples (shape, rate, mV,
Einthoven identities, known answers), detection from content, self-made files, errors,
and a mutation fuzz (only a Record or an EcgMiError may come out)."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from conftest import EXPORT_SAMPLES
from ecg_mi.data.readers import FORMATS, detect_format, read_ecg, read_wfdb
from ecg_mi.data.readers.dicom_ecg import read_dicom_ecg
from ecg_mi.data.readers.muse_xml import read_muse_xml
from ecg_mi.data.readers.philips_xml import identical_tail_start
from ecg_mi.data.record import STANDARD_LEADS, Record
from ecg_mi.errors import EcgMiError, InputError
from ecg_mi.utils.fuzz import fix_scp_crc, mutate

SAMPLES = [(fmt, i) for fmt in FORMATS for i in range(len(EXPORT_SAMPLES.get(fmt, [])))]
SAMPLE_IDS = [Path(EXPORT_SAMPLES[f][i]).name for f, i in SAMPLES]
# Known per-file facts (from each file's header / SOURCE.txt): native rate, stored leads.
EXPECTED = {
    "ptbxl_00139_cardiosoft.xml": (500, 12, 5000),
    "guangxi_teaching_sinus_rhythm.xml": (500, 8, 5000),
    "ml4h_muse_ecg_deidentified_1.xml": (240, 8, 2500),
    "129DYPRG.XML": (500, 12, 5264),  # 5500 less the calibration tail
    "3191723_ZZDEMOPTONLY_1-04_orig.xml": (500, 12, 5300),
    "Example_aECG.xml": (500, 12, 5000),
    "guangxi_teaching_sinus_rhythm.dcm": (500, 12, 5000),
    "pydicom_waveform_ecg.dcm": (1000, 12, 10000),
    "ECG_20070321_110542_ANON000004.SCP": (600, 8, 6000),
    "ECG_20170504_163507_123456789.SCP": (600, 8, 6000),
    "s0010_re.hea": (1000, 15, 38400),
}
# Two quantisation steps (5 µV files) for the identities of stored, rounded leads.
EINTHOVEN_ATOL_MV = 0.011


def _copy_wfdb(header: Path, directory: Path) -> Path:
    """Copy a WFDB record (header and the files it lists) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for sibling in header.parent.glob(f"{header.stem}.*"):
        shutil.copy(sibling, directory / sibling.name)
    return directory / header.name


# --- registry and real samples -----------------------------------------------------------


def test_every_registry_format_has_a_real_sample():
    assert set(FORMATS) == set(EXPORT_SAMPLES)


@pytest.mark.parametrize(("fmt", "index"), SAMPLES, ids=SAMPLE_IDS)
def test_sample_reads_as_a_standard_record(fmt, index, export_sample):
    path = export_sample(fmt, index)
    fs, n_leads, length = EXPECTED[path.name]
    record = FORMATS[fmt](path)
    assert isinstance(record, Record) and record.leads == STANDARD_LEADS
    assert record.signal.shape == (12, length) and record.signal.dtype == np.float32
    assert record.fs == fs and record.metadata["fs_in"] == fs
    assert record.metadata["format"] == fmt and record.metadata["n_leads_in"] == n_leads


@pytest.mark.parametrize(("fmt", "index"), SAMPLES, ids=SAMPLE_IDS)
def test_sample_amplitudes_are_plausible_millivolts(fmt, index, export_sample):
    signal = FORMATS[fmt](export_sample(fmt, index)).signal
    centred = np.abs(signal - np.median(signal, axis=1, keepdims=True))
    r_peak = centred.max(axis=1).max()
    assert 0.5 < r_peak < 6.0  # an R wave in mV; µV or V would be off by 1000
    assert np.all(np.ptp(signal, axis=1) < 10.0)


@pytest.mark.parametrize(("fmt", "index"), SAMPLES, ids=SAMPLE_IDS)
def test_sample_limb_leads_obey_einthoven_and_goldberger(fmt, index, export_sample):
    i, ii, iii, avr, avl, avf = FORMATS[fmt](export_sample(fmt, index)).signal[:6].astype(float)
    np.testing.assert_allclose(iii, ii - i, atol=EINTHOVEN_ATOL_MV)
    np.testing.assert_allclose(avr, -(i + ii) / 2, atol=EINTHOVEN_ATOL_MV)
    np.testing.assert_allclose(avl, i - ii / 2, atol=EINTHOVEN_ATOL_MV)
    np.testing.assert_allclose(avf, ii - i / 2, atol=EINTHOVEN_ATOL_MV)


@pytest.mark.parametrize(("fmt", "index"), SAMPLES, ids=SAMPLE_IDS)
def test_sample_is_detected_from_content(fmt, index, export_sample):
    assert detect_format(export_sample(fmt, index)) == fmt


@pytest.mark.parametrize(
    ("fmt", "index"), [s for s in SAMPLES if s[0] != "wfdb"], ids=[
        n for s, n in zip(SAMPLES, SAMPLE_IDS, strict=True) if s[0] != "wfdb"]
)  # fmt: skip
def test_misleading_extension_does_not_fool_detection(fmt, index, export_sample, tmp_path):
    copy = tmp_path / "scan.png"
    shutil.copy(export_sample(fmt, index), copy)
    assert detect_format(copy) == fmt
    assert read_ecg(copy).metadata["format"] == fmt


def test_wfdb_is_found_from_record_name_and_signal_file(export_sample, tmp_path):
    header = _copy_wfdb(export_sample("wfdb"), tmp_path)
    for path in (header.with_suffix(""), header.with_suffix(".dat")):
        assert detect_format(path) == "wfdb"
        assert read_ecg(path).signal.shape == (12, 38400)


def test_sample_patient_fields_reach_metadata(export_sample):
    meta = read_ecg(export_sample("dicom_ecg", 1)).metadata
    assert (meta["patient_id"], meta["age"], meta["sex"]) == ("642341", 42.0, 1)
    meta = read_ecg(export_sample("wfdb")).metadata
    assert (meta["age"], meta["sex"]) == (81.0, 1)  # '# age: 81', '# sex: female'


# --- known answers and cross-checks ------------------------------------------------------


def test_cardiosoft_sample_equals_ptbxl_record_139(export_sample, shared_ptbxl):
    record = read_ecg(export_sample("cardiosoft_xml"))
    expected, _ = wfdb.rdsamp(str(shared_ptbxl / "records500" / "00000" / "00139_hr"))
    np.testing.assert_allclose(record.signal, expected.T, atol=0.0025 + 1e-6)


def test_muse_sample_equals_its_dicom_conversion(export_sample):
    muse = read_ecg(export_sample("ge_muse_xml", 0)).signal
    dicom = read_ecg(export_sample("dicom_ecg", 0)).signal
    np.testing.assert_allclose(
        muse[[0, 1, 6, 7, 8, 9, 10, 11]], dicom[[0, 1, 6, 7, 8, 9, 10, 11]], atol=1e-5
    )
    np.testing.assert_allclose(muse, dicom, atol=0.0025)  # DICOM stores the 4 derived, rounded


@pytest.mark.parametrize("index", [0, 1])
def test_dicom_reader_agrees_with_ecgdatakit(index, export_sample):
    from ecgdatakit import FileParser

    path = export_sample("dicom_ecg", index)
    theirs = FileParser.parse(path, units="mV")
    expected = np.stack([lead.samples for lead in theirs.leads])
    np.testing.assert_allclose(read_dicom_ecg(path).signal, expected, atol=1e-5)


@pytest.mark.parametrize("index", [0, 1])
def test_philips_reader_agrees_with_sierraecg(index, export_sample):
    sierraecg = pytest.importorskip(
        "sierraecg", reason="sierraecg (independent XLI decoder) not installed"
    )
    path = export_sample("philips_sierra_xml", index)
    record = read_ecg(path)
    counts = np.stack([lead.samples for lead in sierraecg.read_file(str(path)).leads]).astype(float)
    np.testing.assert_allclose(
        record.signal, counts[:, : record.signal.shape[1]] * 0.005, atol=1e-5
    )


def test_philips_calibration_tail_is_trimmed(export_sample):
    record = read_ecg(export_sample("philips_sierra_xml", 0))
    assert record.metadata["trimmed_tail_samples"] == 236
    assert identical_tail_start(record.signal) == record.signal.shape[1]


def test_ptbdb_sample_keeps_the_twelve_leads_and_drops_frank(export_sample):
    path = export_sample("wfdb")
    record = read_ecg(path)
    expected, fields = wfdb.rdsamp(str(path.with_suffix("")))
    assert fields["sig_name"][12:] == ["vx", "vy", "vz"]
    np.testing.assert_allclose(record.signal, expected[:, :12].T, atol=1e-6)


def test_generic_wfdb_equals_the_project_reader(tmp_path, write_wfdb):
    path = write_wfdb(tmp_path, "rec")
    np.testing.assert_allclose(read_ecg(f"{path}.hea").signal, read_wfdb(path).signal, atol=1e-6)


# --- self-made files ---------------------------------------------------------------------

EIGHT = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]


def muse_xml(counts: np.ndarray, fs: int = 250, uv_per_bit: float = 4.88, prolog: str = "") -> str:
    """A minimal GE MUSE RestingECG with the 8 leads of ``counts`` (int16) as its Rhythm."""
    leads = "".join(
        f"<LeadData><LeadSampleCountTotal>{counts.shape[1]}</LeadSampleCountTotal>"
        f"<LeadAmplitudeUnitsPerBit>{uv_per_bit}</LeadAmplitudeUnitsPerBit>"
        f"<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadID>{name}</LeadID>"
        f"<WaveFormData>{base64.b64encode(row.astype('<i2').tobytes()).decode()}</WaveFormData></LeadData>"
        for name, row in zip(EIGHT, counts, strict=True)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}<RestingECG><PatientDemographics>'
        "<PatientID>P-7</PatientID><PatientAge>63</PatientAge><AgeUnits>YEARS</AgeUnits>"
        "<Gender>FEMALE</Gender></PatientDemographics><Waveform><WaveformType>Rhythm</WaveformType>"
        f"<NumberofLeads>8</NumberofLeads><SampleBase>{fs}</SampleBase><SampleExponent>0</SampleExponent>"
        f"{leads}</Waveform></RestingECG>"
    )


def hl7_aecg(digits: np.ndarray, codes: list[str], increment_s: float = 0.004) -> str:
    """A minimal HL7 aECG: one RHYTHM series, one sequence per code, scale 2.5 µV."""
    sequences = "".join(
        f'<component><sequence><code code="{code}" codeSystem="2.16.840.1.113883.6.24"/>'
        '<value xsi:type="SLIST_PQ"><origin value="0" unit="uV"/><scale value="2.5" unit="uV"/>'
        f"<digits>{' '.join(map(str, row))}</digits></value></sequence></component>"
        for code, row in zip(codes, digits, strict=True)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<AnnotatedECG xmlns="urn:hl7-org:v3" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><id root="1"/><code code="93000"/>'
        '<component><series><code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4"/><component>'
        '<sequenceSet><component><sequence><code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>'
        f'<value xsi:type="GLIST_TS"><head value="20240101120000"/><increment value="{increment_s}" unit="s"/>'
        f"</value></sequence></component>{sequences}</sequenceSet></component></series></component></AnnotatedECG>"
    )


def write_dicom_ecg(path: Path, counts: np.ndarray, labels: list[str], fs: float = 500.0,
                    uv_per_count: float = 2.5, sop_class: str = "1.2.840.10008.5.1.4.1.1.9.1.1") -> Path:  # fmt: skip
    """A minimal DICOM 12-lead ECG (one rhythm group, int16, ``uv_per_count`` µV/count)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.SOPClassUID, ds.SOPInstanceUID = (
        meta,
        sop_class,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.PatientID, ds.PatientSex, ds.PatientAge = "D-1", "M", "055Y"
    channels = []
    for label in labels:
        source, unit, ch = Dataset(), Dataset(), Dataset()
        source.CodeValue, source.CodingSchemeDesignator, source.CodeMeaning = "x", "MDC", label
        unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "uV", "UCUM", "microvolt"
        ch.ChannelSourceSequence, ch.ChannelSensitivityUnitsSequence = [source], [unit]
        ch.ChannelSensitivity, ch.ChannelSensitivityCorrectionFactor, ch.ChannelBaseline = (
            uv_per_count,
            1,
            0,
        )
        ch.WaveformBitsStored = 16
        channels.append(ch)
    group = Dataset()
    group.MultiplexGroupLabel, group.WaveformOriginality = "RHYTHM", "ORIGINAL"
    group.NumberOfWaveformChannels, group.NumberOfWaveformSamples = len(labels), counts.shape[1]
    group.SamplingFrequency, group.WaveformBitsAllocated, group.WaveformSampleInterpretation = (
        fs,
        16,
        "SS",
    )
    group.ChannelDefinitionSequence = channels
    group.WaveformData = counts.T.astype("<i2").tobytes()
    ds.WaveformSequence = [group]
    ds.save_as(path, enforce_file_format=True)
    return path


def _counts(n_leads: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, 100, size=(n_leads, n))).astype(np.int16)


def test_self_made_muse_xml_reads_in_mv_with_derived_leads(tmp_path):
    counts = _counts(8, 2500)
    path = tmp_path / "muse.xml"
    path.write_text(muse_xml(counts))
    record = read_ecg(path)
    mv = counts * 4.88e-3
    assert record.fs == 250 and record.metadata["derived_leads"] == ["III", "aVR", "aVL", "aVF"]
    np.testing.assert_allclose(record.signal[[0, 1, 6, 7, 8, 9, 10, 11]], mv, atol=1e-5)
    np.testing.assert_allclose(record.signal[2], mv[1] - mv[0], atol=1e-5)
    assert (record.metadata["patient_id"], record.metadata["age"], record.metadata["sex"]) == (
        "P-7",
        63.0,
        1,
    )


def test_self_made_hl7_aecg_maps_mdc_codes(tmp_path):
    digits = _counts(8, 2500, seed=1)
    path = tmp_path / "aecg.xml"
    path.write_text(hl7_aecg(digits, [f"MDC_ECG_LEAD_{n}" for n in EIGHT]))
    record = read_ecg(path)
    assert record.fs == 250 and record.signal.shape == (12, 2500)
    np.testing.assert_allclose(
        record.signal[[0, 1, 6, 7, 8, 9, 10, 11]], digits * 2.5e-3, atol=1e-5
    )


def test_self_made_dicom_maps_code_meanings(tmp_path):
    names = ["Lead I (Einthoven)", "Lead II", "Lead III", "Lead aVR", "Lead aVL", "Lead aVF",
             *[f"Lead V{i}" for i in range(1, 7)]]  # fmt: skip
    counts = _counts(12, 5000, seed=2)
    record = read_ecg(write_dicom_ecg(tmp_path / "ecg.dcm", counts, names))
    np.testing.assert_allclose(record.signal, counts * 2.5e-3, atol=1e-5)
    assert (record.metadata["age"], record.metadata["sex"]) == (55.0, 0)


# --- errors ------------------------------------------------------------------------------


def test_garbage_bytes_are_rejected_naming_the_file(tmp_path):
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match=r"noise\.bin: not a supported ECG format"):
        read_ecg(path)


def test_empty_file_is_rejected(tmp_path):
    (tmp_path / "empty.xml").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.xml: empty file"):
        read_ecg(tmp_path / "empty.xml")


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(InputError, match=r"nope\.scp: ECG file not found"):
        read_ecg(tmp_path / "nope.scp")


@pytest.mark.parametrize(("fmt", "index"), SAMPLES, ids=SAMPLE_IDS)
def test_truncated_sample_is_rejected_naming_the_file(fmt, index, export_sample, tmp_path):
    source = export_sample(fmt, index)
    if fmt == "wfdb":
        path = _copy_wfdb(source, tmp_path)
        dat = path.with_suffix(".dat")
        dat.write_bytes(dat.read_bytes()[:1000])
    else:
        path = tmp_path / source.name
        path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(InputError, match=path.stem):
        read_ecg(path)


def test_unknown_xml_root_is_named(tmp_path):
    (tmp_path / "a.xml").write_text("<?xml version='1.0'?><svg><g/></svg>")
    with pytest.raises(InputError, match="unsupported XML document with root <svg>"):
        read_ecg(tmp_path / "a.xml")


def test_xml_entity_declarations_are_refused(tmp_path):
    bomb = '<!DOCTYPE RestingECG [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>\n'
    path = tmp_path / "bomb.xml"
    path.write_text(muse_xml(_counts(8, 10), prolog=bomb))
    with pytest.raises(InputError, match="entity declarations are refused"):
        read_ecg(path)


def test_muse_external_dtd_name_is_allowed(tmp_path):
    path = tmp_path / "muse.xml"
    path.write_text(
        muse_xml(_counts(8, 2500), prolog='<!DOCTYPE RestingECG SYSTEM "restecg.dtd">\n')
    )
    assert read_ecg(path).signal.shape == (12, 2500)


def test_scp_with_a_damaged_byte_fails_its_crc(export_sample, tmp_path):
    data = bytearray(export_sample("scp_ecg").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.scp").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bad\.scp: SCP-ECG CRC mismatch"):
        read_ecg(tmp_path / "bad.scp")


def test_dicom_that_is_not_an_ecg_is_rejected(tmp_path):
    path = write_dicom_ecg(tmp_path / "ct.dcm", _counts(12, 10), list(STANDARD_LEADS),
                           sop_class="1.2.840.10008.5.1.4.1.1.2")  # fmt: skip
    with pytest.raises(InputError, match=r"ct\.dcm: DICOM SOP class .* is not an ECG waveform"):
        read_ecg(path)


def test_reader_given_another_format_names_the_root(export_sample):
    with pytest.raises(InputError, match=r"root element is <AnnotatedECG>, expected <RestingECG>"):
        read_muse_xml(export_sample("hl7_aecg"))


def test_unknown_format_name_lists_the_known_ones(tmp_path):
    with pytest.raises(InputError, match="unknown format 'edf'; known: cardiosoft_xml"):
        read_ecg(tmp_path / "x", fmt="edf")


def test_missing_required_lead_is_an_input_error(tmp_path):
    counts = _counts(7, 100)
    path = tmp_path / "seven.xml"
    path.write_text(hl7_aecg(counts, [f"MDC_ECG_LEAD_{n}" for n in EIGHT[:7]]))
    with pytest.raises(InputError, match=r"seven\.xml: missing lead\(s\) V6"):
        read_ecg(path)


# --- mutation fuzz -----------------------------------------------------------------------


FUZZ_RUNS = 200


@pytest.mark.parametrize(("fmt", "index"), SAMPLES, ids=SAMPLE_IDS)
def test_mutated_samples_give_a_record_or_an_ecg_mi_error(fmt, index, export_sample, tmp_path):
    source = export_sample(fmt, index)
    path = _copy_wfdb(source, tmp_path) if fmt == "wfdb" else tmp_path / source.name
    original = source.read_bytes()  # for WFDB the header is mutated: it drives the reading
    rng = np.random.default_rng(index)
    for run in range(FUZZ_RUNS):
        mutated = mutate(original, rng)
        # half the SCP runs get a valid CRC, so the corruption reaches the decoder
        path.write_bytes(fix_scp_crc(mutated) if fmt == "scp_ecg" and run % 2 else mutated)
        try:
            assert isinstance(read_ecg(path), Record)
        except EcgMiError:
            pass
