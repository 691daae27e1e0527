"""The input gate (src/ecg_mi/data/gate.py): hostile signals and files are refused with the
right check named — through the gate's functions, through the readers' resource guards (before
anything is allocated) and through predict.py end to end (exit 2, status=refused, no traceback);
a synthetic valid record passes; the limits are fitted on the training strips and overridable."""

from __future__ import annotations

import binascii
import re
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import compose_config, load_script
from ecg_mi.data.gate import (
    PLAUSIBLE_RANGE_MV,
    GateLimits,
    check_record,
    check_windows,
    fit_limits,
    robust_ranges,
    strictest,
)
from ecg_mi.data.readers import read_ecg
from ecg_mi.data.record import Record
from ecg_mi.data.sources.synthetic import heart_for, synthesize_ecg
from ecg_mi.errors import ConfigError, Refused
from ecg_mi.representation import Representation

LIMITS = GateLimits.for_model(100.0)  # a model reading 10 s at 100 Hz, default amplitude band


def ecg(fs: float = 100.0, seconds: float = 10.0, seed: int = 3) -> np.ndarray:
    """A synthetic 12-lead ECG ``[12, seconds·fs]`` float64 mV (the 10 s strip repeated)."""
    strip = synthesize_ecg(
        heart_for(pd.Series({"heart_seed": seed, "label": 0})), np.random.default_rng(seed), fs
    )
    return np.tile(strip.astype(np.float64), int(np.ceil(seconds / 10)))[
        :, : int(round(seconds * fs))
    ]


def refusal(signal: np.ndarray, fs: float = 100.0, limits: GateLimits = LIMITS) -> Refused:
    """The refusal of a Record of ``signal`` at ``fs`` Hz (made or checked)."""
    with pytest.raises(Refused) as caught:
        check_record(Record("hostile", np.asarray(signal, dtype=np.float32), fs), limits)
    return caught.value


# ---------------------------------------------------------------------------- the gate's checks


def test_a_synthetic_valid_record_passes():
    record = Record("ok", ecg(500.0).astype(np.float32), 500.0)
    check_record(record, GateLimits.for_model(500.0))
    check_windows(record.signal[None], GateLimits.for_model(500.0))


@pytest.mark.parametrize(
    ("make", "fs", "reason"),
    [
        (lambda: np.sign(ecg()) * 30_000.0, 100.0, r"amplitude: lead \w+ robust range 6e\+04 mV > 25 mV \(units or gain\?\)"),
        (lambda: ecg() * np.r_[np.ones(7), 1000.0, np.ones(4)][:, None], 100.0, r"amplitude: lead V2 robust range [\d.]+ mV > 25 mV \(units or gain\?\)"),
        (lambda: ecg() / 1000.0, 100.0, r"amplitude: largest lead robust range 0.00\d+ mV < 0.3 mV \(units or gain\? every lead flat\?\)"),
        (lambda: ecg() * 1000.0, 100.0, r"amplitude: lead \w+ robust range \d+ mV > 25 mV \(units or gain\?\)"),
        (lambda: ecg(10.0), 10.0, r"sample_rate: fs=10 Hz < 50 Hz \(too coarse for the model, or a mislabelled rate\)"),
        (lambda: ecg(), 50_000.0, r"sample_rate: fs=50000 Hz > 20000 Hz \(a mislabelled rate\?\)"),
        (lambda: ecg(seconds=5.0), 100.0, r"duration: 5.00 s < 9.98 s \(the model reads 10 s windows\)"),
        (lambda: ecg(seconds=700.0), 100.0, r"duration: 700 s > 600 s \(gate.max_duration_s\)"),
        (lambda: ecg() * np.r_[np.ones(9), 0.0, np.ones(2)][:, None], 100.0, r"flat: lead\(s\) V4 robust range 0 mV < 0.02 mV \(lead off\?\)"),
        (lambda: np.vstack([ecg()[:1], np.clip(ecg()[1:2], None, 0.1), ecg()[2:]]), 100.0,
         r"clipped: lead II sits at its extreme value in \d+% of its samples ≥ 10% \(saturated\?\)"),
    ],
    ids=["30000-mV", "gain-x1000-one-lead", "units-V", "uV-as-mV", "10-Hz", "50-kHz", "too-short", "too-long", "flat-lead",
         "clipped-lead"],
)  # fmt: skip
def test_hostile_signal_is_refused_naming_the_check(make, fs, reason):
    found = refusal(make(), fs).reason
    assert re.fullmatch(reason, found), found


@pytest.mark.parametrize(("value", "check"), [(np.nan, "finite"), (np.inf, "finite")])
def test_nan_and_inf_are_refused_by_the_record_contract(value, check):
    signal = ecg().astype(np.float32)
    signal[3, 10] = value
    with pytest.raises(Refused, match=r"finite: 1 NaN/inf samples in lead\(s\) aVR") as caught:
        Record("r", signal, 100.0)
    assert caught.value.check == check


@pytest.mark.parametrize("fs", [0.0, -500.0, float("nan")])
def test_a_rate_that_is_not_positive_is_refused(fs):
    with pytest.raises(Refused, match="sample_rate: sampling frequency must be a positive number"):
        Record("r", ecg().astype(np.float32), fs)


def test_windows_check_names_the_window_and_catches_nan():
    x = np.stack([ecg(), ecg(seed=4)]).astype(np.float32)
    x[1, 0, 5] = np.nan
    with pytest.raises(Refused, match=r"^finite: window 1: 1 NaN/inf samples in lead\(s\) I$"):
        check_windows(x, LIMITS)


def test_the_robust_range_ignores_a_spike():
    signal = ecg()
    spiked = signal.copy()
    spiked[0, 500] = 500.0  # one pacing-like spike
    assert np.ptp(spiked[0]) > 400 and robust_ranges(spiked)[0] == pytest.approx(
        robust_ranges(signal)[0], rel=0.1
    )


# ---------------------------------------------------------------------------- limits


def test_fitted_band_holds_every_training_strip_and_refuses_a_gain_error():
    strips = np.stack([ecg(seed=s) for s in range(20)]).astype(np.float32)
    limits = fit_limits(strips, np.arange(20), 100.0)
    assert (
        limits.fitted_on == 20
        and limits.min_fs == 50.0
        and limits.min_duration_s == pytest.approx(9.98)
    )
    for strip in strips:
        check_record(Record("train", strip, 100.0), limits)
    assert (
        min(limits.max_range_mv) >= PLAUSIBLE_RANGE_MV[1]
        and limits.min_range_mv <= PLAUSIBLE_RANGE_MV[0]
    )
    assert refusal(strips[0] * 100, limits=limits).check == "amplitude"


def test_representation_state_carries_the_fitted_gate():
    strips = np.stack([ecg(seed=s) for s in range(4)]).astype(np.float32)
    fitted = Representation("window").fit(100.0, strips, np.arange(4), strips=strips)
    back = Representation.from_state(fitted.state())
    assert back.gate_limits == fitted.gate_limits == fit_limits(strips, np.arange(4), 100.0)


def test_a_format_1_state_reads_with_the_default_limits_of_its_rate():
    state = {
        **Representation("window").fit(500.0, np.ones((1, 12, 5)), np.arange(1)).state(),
        "format": 1,
    }
    state.pop("gate")
    assert (
        Representation.from_state(state).gate_limits
        == GateLimits.for_model(500.0)
        == GateLimits(min_fs=100.0)
    )


def test_an_ensemble_applies_what_every_member_accepts():
    narrow = GateLimits(max_range_mv=(12.0,) * 12, min_range_mv=0.3, min_fs=200.0)
    wide = GateLimits(max_range_mv=(30.0,) * 11 + (8.0,), min_range_mv=0.1, min_fs=50.0)
    both = strictest([narrow, wide])
    assert (
        both.max_range_mv == (12.0,) * 11 + (8.0,)
        and both.min_range_mv == 0.3
        and both.min_fs == 200.0
    )


def test_overrides_change_one_limit_and_refuse_nonsense():
    assert LIMITS.override({"max_range_mv": 40, "max_file_mb": None}).max_range_mv == (40.0,) * 12
    assert LIMITS.override({"max_samples": 1e6}).max_samples == 1_000_000
    with pytest.raises(ConfigError, match=r"gate.max_abs: unknown; the input gate's limits are \["):
        LIMITS.override({"max_abs": 3})
    with pytest.raises(ConfigError, match=r"gate.flat_mv=-1: must be a positive number"):
        LIMITS.override({"flat_mv": -1})
    with pytest.raises(
        ConfigError,
        match=r"gate.max_range_mv=\[1, 2\]: must be a positive number \(or 12, one per lead\)",
    ):
        LIMITS.override({"max_range_mv": [1, 2]})


# ---------------------------------------------------------------------------- files, before reading


def _edit_record_line(record: Path, field: int, value: str) -> None:
    header = Path(f"{record}.hea")
    lines = header.read_text().splitlines()
    fields = lines[0].split()
    fields[field] = value
    header.write_text("\n".join([" ".join(fields), *lines[1:]]) + "\n")


def test_corrupted_wfdb_checksum_is_refused(tmp_path, write_wfdb):
    record = write_wfdb(tmp_path, "r", ecg())
    raw = np.fromfile(f"{record}.dat", dtype="<i2")
    raw[12 * 10 + 10] += 7  # one damaged sample of lead V5
    raw.tofile(f"{record}.dat")
    with pytest.raises(
        Refused,
        match=r"checksum: signal V5: the header's checksum is -?\d+, its samples add up to \d+",
    ):
        read_ecg(f"{record}.hea")


def test_wfdb_header_rate_that_wfdb_would_misread_is_refused(tmp_path, write_wfdb):
    record = write_wfdb(tmp_path, "r", ecg())
    _edit_record_line(record, 2, "-500")  # wfdb itself reads it as 250 Hz
    with pytest.raises(Refused, match=r"sample_rate: fs='-500' Hz is not a positive number"):
        read_ecg(f"{record}.hea")


def test_wfdb_rate_inconsistent_with_the_signal_file_is_refused(tmp_path, write_wfdb):
    record = write_wfdb(tmp_path, "r", ecg(500.0), fs=500.0)  # 5000 samples per lead
    _edit_record_line(record, 2, "100")  # relabelled 100 Hz, count cut to 10 s at that rate
    _edit_record_line(record, 3, "1000")
    with pytest.raises(
        Refused,
        match=r"sample_rate: the header declares 1,000 samples per signal at 100 Hz but r.dat holds 5,000",
    ):
        read_ecg(f"{record}.hea")


def test_huge_header_sample_count_is_refused_before_allocating(tmp_path, write_wfdb):
    record = write_wfdb(tmp_path, "r", ecg())
    _edit_record_line(record, 3, "2000000000")
    tracemalloc.start()
    with pytest.raises(
        Refused,
        match=r"samples: the header declares 12 × 2,000,000,000 samples > 8,000,000 \(gate.max_samples\)",
    ):
        read_ecg(f"{record}.hea")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5e6


def test_a_rate_of_a_thousandth_of_a_hertz_allocates_nothing(tmp_path, write_wfdb):
    """fs=0.001 makes 1000 samples last 11 days: resampled to 100 Hz they would take 4.8 GB."""
    record = write_wfdb(tmp_path, "r", ecg())
    _edit_record_line(record, 2, "0.001")
    tracemalloc.start()
    with pytest.raises(Refused, match=r"sample_rate: fs=0.001 Hz < 50 Hz"):
        read_ecg(f"{record}.hea", limits=LIMITS)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5e6


def test_oversized_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.xml"
    with open(path, "wb") as handle:  # a MUSE-like head, then 200 MB (sparse: no disk used)
        handle.write(b'<?xml version="1.0"?>\n<RestingECG>')
        handle.truncate(200_000_000)
    with pytest.raises(
        Refused, match=r"file_size: huge.xml: 200.0 MB > 32 MB \(gate.max_file_mb\)"
    ):
        read_ecg(path)


def test_scp_declaring_billions_of_samples_is_refused_before_decoding(export_sample, tmp_path):
    data = bytearray(export_sample("scp_ecg").read_bytes())
    pointers = {struct.unpack_from("<H", data, p)[0]: struct.unpack_from("<I", data, p + 6)[0]
                for p in range(22, 6 + struct.unpack_from("<I", data, 10)[0] - 9, 10)}  # fmt: skip
    struct.pack_into(
        "<I", data, pointers[3] - 1 + 16 + 2 + 4, 4_000_000_000
    )  # lead 1's last sample
    length = struct.unpack_from("<I", data, 2)[0]
    struct.pack_into("<H", data, 0, binascii.crc_hqx(bytes(data[2:length]), 0xFFFF))  # a valid CRC
    (tmp_path / "big.scp").write_bytes(bytes(data))
    with pytest.raises(Refused, match=r"samples: the header declares 8 × 4,000,000,000 samples"):
        read_ecg(tmp_path / "big.scp")


def test_dicom_scaled_ten_thousand_times_is_refused(export_sample, tmp_path):
    import pydicom

    ds = pydicom.dcmread(export_sample("dicom_ecg"))
    for channel in ds.WaveformSequence[0].ChannelDefinitionSequence:
        channel.ChannelSensitivity = float(channel.ChannelSensitivity) * 10_000
    ds.save_as(tmp_path / "scaled.dcm")
    record = read_ecg(tmp_path / "scaled.dcm")
    with pytest.raises(
        Refused, match=r"amplitude: lead \w+ robust range [\d.e+]+ mV > 25 mV \(units or gain\?\)"
    ):
        check_record(record, GateLimits.for_model(500.0))


# ---------------------------------------------------------------------------- predict.py end to end


@pytest.fixture
def hostile_folder(tmp_path, write_wfdb) -> Path:
    """A valid WFDB record and five hostile ones, each refused by another check."""
    folder = tmp_path / "in"
    write_wfdb(folder, "valid", ecg())
    write_wfdb(folder, "plus_minus_30000_mV", np.sign(ecg()) * 30_000.0, gain=1.0)
    write_wfdb(folder, "ten_hz", ecg(10.0), fs=10.0)
    write_wfdb(folder, "flat_lead", ecg() * np.r_[np.ones(9), 0.0, np.ones(2)][:, None])
    damaged = write_wfdb(folder, "damaged", ecg())
    raw = np.fromfile(f"{damaged}.dat", dtype="<i2")
    raw[50] += 3
    raw.tofile(f"{damaged}.dat")
    huge = write_wfdb(folder, "huge_count", ecg())
    _edit_record_line(huge, 3, "2000000000")
    return folder


def test_predict_refuses_hostile_records_in_one_line_each(
    run_cli, tmp_path, standin_model, hostile_folder
):
    out = tmp_path / "out.csv"
    done = run_cli("predict.py", f"model_uri={standin_model()}", f"input={hostile_folder}", f"output={out}",
                   f"hydra.run.dir={tmp_path}/hydra")  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {hostile_folder}: 5 of 6 files could not be scored (5 refused by the input gate) (see {out})"
    )
    rows = pd.read_csv(out).set_index("record_id")
    assert rows.loc["valid", "status"] == "ok" and 0 <= rows.loc["valid", "prob_mi"] <= 1
    refused = rows.drop("valid")
    assert (refused["status"] == "refused").all() and refused["prob_mi"].isna().all()
    checks = refused["error"].str.split(":").str[0].to_dict()
    assert checks == {"plus_minus_30000_mV": "amplitude", "ten_hz": "sample_rate", "flat_lead": "flat",
                      "damaged": "checksum", "huge_count": "samples"}  # fmt: skip
    assert (
        refused.loc["flat_lead", "duration_s"] == 10.0
    )  # a record read, then refused: what was read


def test_predict_gate_overrides_let_a_record_through(tmp_path, standin_model, write_wfdb):
    from ecg_mi.predict import run

    record = write_wfdb(tmp_path / "in", "wide", ecg() * 20, gain=100.0)  # leads up to ~30 mV
    cfg = compose_config("predict", f"model_uri={standin_model()}", f"input={record}.hea",
                         f"output={tmp_path / 'out.csv'}", "gate.max_range_mv=100")  # fmt: skip
    assert run(cfg)["status"].tolist() == ["ok"]


def test_predict_refuses_a_bad_gate_override_in_one_line(
    run_cli, tmp_path, standin_model, write_wfdb
):
    record = write_wfdb(tmp_path / "in", "r", ecg())
    done = run_cli("predict.py", f"model_uri={standin_model()}", f"input={record}.hea", f"output={tmp_path / 'o.csv'}",
                   "gate.flat_mv=-1", f"hydra.run.dir={tmp_path}/hydra")  # fmt: skip
    assert (
        done.returncode == 2
        and done.stderr.strip() == "error: gate.flat_mv=-1: must be a positive number"
    )


@pytest.mark.slow
def test_no_shared_record_is_refused(shared_ptbxl, shared_formats):
    """Zero false refusals: every shared PTB-XL record (1,687 at 100 Hz, 488 at 500 Hz) and every
    export sample passes, with default limits at 100 and 500 Hz and limits fitted as training
    fits them (benchmarks/gate_check.py, which prints the counts per check)."""
    gate_check = load_script("benchmarks/gate_check.py")
    assert (
        gate_check.main(
            ["--data", str(shared_ptbxl.parent), "--limits", "default_100,default_500,fitted_100"]
        )
        == 0
    )
