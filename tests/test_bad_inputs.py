"""Bad input never shows a traceback and is never silently accepted (issue 17).

Function level: each bad input raises the project's error (InputError, ConfigError,
DataError) naming the input and the problem; suspicious-but-readable input is refused or
warned about and counted. CLI level: ``train.py`` / ``evaluate.py`` print exactly one
``error: …`` line on stderr, exit 2 and show no traceback (a handful here; the whole list
is the ``slow`` sweep at the end). Plus a seeded fuzz of the WFDB and CardioSoft readers,
file modes under the umask, and stale temporaries of a SIGKILLed cache build.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import (
    REPO,
    TINY_TRAINING,
    cardiosoft_xml,
    load_script,
    make_signal,
    restamp_checksums,
)
from ecg_mi.config_checks import check_evaluate_config, check_train_config
from ecg_mi.data.cohort import fold_file_for, read_fold_file
from ecg_mi.data.readers import read_cardiosoft_xml, read_wfdb
from ecg_mi.data.record import Record
from ecg_mi.data.sources import PtbxlSource, SyntheticSource, UkbXmlSource
from ecg_mi.data.store import load_or_build
from ecg_mi.datamodule import prepare_fold
from ecg_mi.errors import ConfigError, DataError, InputError
from ecg_mi.utils import io

# --- helpers ------------------------------------------------------------------------------


def edit_ptbxl_table(root: Path, line: int, column: str, value: object) -> None:
    """Set ``column`` on CSV ``line`` (line 2 = first data row) of ``ptbxl_database.csv``."""
    db = pd.read_csv(root / "ptbxl_database.csv", dtype=str, keep_default_na=False)
    db.loc[line - 2, column] = str(value)
    db.to_csv(root / "ptbxl_database.csv", index=False)


def write_ukb(tmp_path: Path, signals: dict[str, np.ndarray], table: str) -> UkbXmlSource:
    """A UKB-style folder: one CardioSoft XML per eid (signals in µV) and an outcome CSV."""
    folder = tmp_path / "xml"
    folder.mkdir(exist_ok=True)
    for eid, signal_uv in signals.items():
        (folder / f"{eid}_20205_2_0.xml").write_text(cardiosoft_xml(signal_uv))
    (tmp_path / "outcomes.csv").write_text(table)
    return UkbXmlSource(folder, tmp_path / "outcomes.csv")


class FlatSource(SyntheticSource):
    """Synthetic records, except that the ids in ``flat`` (or every id) read all zero."""

    def __init__(self, flat: set[str] | None, n_records: int = 20) -> None:
        super().__init__(n_records=n_records, seed=0)
        self.flat = flat

    def read(self, row, native_rate):
        record = super().read(row, native_rate)
        if self.flat is None or row["record_id"] in self.flat:
            return Record(record.record_id, np.zeros_like(record.signal), record.fs)
        return record


def temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".tmp" in p.name)


# --- tables: empty files, bad values -------------------------------------------------------


@pytest.mark.parametrize("name", ["ptbxl_database.csv", "scp_statements.csv"])
def test_zero_byte_ptbxl_table_is_an_input_error(tiny_ptbxl, name):
    root = tiny_ptbxl(n_records=6, n_mi=2, with_500=False)
    (root / name).write_bytes(b"")
    with pytest.raises(InputError, match=f"{name}: empty file"):
        PtbxlSource(root).index()


def test_zero_byte_ukb_outcome_table_is_an_input_error(tmp_path):
    source = write_ukb(tmp_path, {"1000001": make_signal(5000, 500) * 1000}, "")
    with pytest.raises(InputError, match=r"outcomes\.csv: empty file"):
        source.index()


def test_zero_byte_fold_file_is_an_input_error(tmp_path):
    (tmp_path / "folds.csv").write_bytes(b"")
    index = SyntheticSource(n_records=20).index()
    with pytest.raises(InputError, match=r"fold file .*folds\.csv: empty file"):
        read_fold_file(tmp_path / "folds.csv", index, 5)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("age", "sixty", r"column 'age' must hold years .* found 'sixty' \(line 4\)"),
        ("age", "-3", r"column 'age' must hold years .* found -3.0 \(line 4\)"),
        ("patient_id", "", r"column 'patient_id' is empty on line\(s\) 4"),
        ("patient_id", "12.5", r"column 'patient_id' must hold integer ids, found 12.5"),
        ("ecg_id", "abc", r"column 'ecg_id' must hold integer ids, found 'abc'"),
        ("sex", "7", r"column 'sex' must be 0 \(male\), 1 \(female\) or empty, found 7 \(line 4\)"),
        ("sex", "male", r"column 'sex' must be 0 \(male\), 1 \(female\) or empty"),
        ("filename_lr", "", r"column 'filename_lr' is empty on line\(s\) 4"),
        ("scp_codes", "", r"scp_codes .* is not a dict literal"),
    ],
)
def test_ptbxl_bad_metadata_value_is_refused(tiny_ptbxl, column, value, message):
    root = tiny_ptbxl(n_records=6, n_mi=2, with_500=False)
    edit_ptbxl_table(root, 4, column, value)
    with pytest.raises(InputError, match=message):
        PtbxlSource(root).index()


def test_ptbxl_empty_age_and_sex_are_kept_as_missing(tiny_ptbxl):
    root = tiny_ptbxl(n_records=6, n_mi=2, with_500=False)
    edit_ptbxl_table(root, 4, "age", "")
    edit_ptbxl_table(root, 5, "sex", "")
    index = PtbxlSource(root).index()
    assert np.isnan(index.loc[2, "age"]) and np.isnan(index.loc[3, "sex"])
    assert set(index["sex"].dropna()) <= {0, 1}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "1000002,0,55,7",
            r"column 'sex' must be 0 \(male\), 1 \(female\) or empty, found 7 \(line 3\)",
        ),
        ("1000002,0,sixty,1", r"column 'age' must hold years .* found 'sixty' \(line 3\)"),
        (",0,55,1", r"column 'eid' is empty on line\(s\) 3"),
    ],
)
def test_ukb_bad_outcome_value_is_refused(tmp_path, row, message):
    signal = make_signal(5000, 500) * 1000
    table = f"eid,mi,age,sex\n1000001,1,61,0\n{row}\n"
    source = write_ukb(tmp_path, {"1000001": signal, "1000002": signal}, table)
    with pytest.raises(InputError, match=message):
        source.index()


@pytest.mark.parametrize("column", ["record_id", "patient_id"])
def test_fold_file_with_a_blank_id_is_refused(tmp_path, column):
    source = SyntheticSource(n_records=40)
    folds = fold_file_for(source.index(), source.fingerprint(), tmp_path)
    table = pd.read_csv(folds.path, dtype=str)
    table.loc[0, column] = ""
    table.to_csv(tmp_path / "edited.csv", index=False)
    with pytest.raises(InputError, match=rf"column '{column}' is empty on line\(s\) 2"):
        read_fold_file(tmp_path / "edited.csv", source.index(), 5)


def test_skip_missing_is_validated_when_nothing_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="data.skip_missing='maybe'; use true, false or auto"):
        prepare_fold(
            SyntheticSource(n_records=60), 0, 100, skip_missing="maybe", cache_dir=tmp_path
        )
    assert not (tmp_path / "folds").exists()  # refused before the fold file is written


# --- readers ---------------------------------------------------------------------------------


def _edit_header(path: Path, edit) -> None:
    header = Path(f"{path}.hea")
    lines = header.read_text().splitlines()
    header.write_text("\n".join(edit(lines)) + "\n")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: ls[:1], r"declares 12 signals but 0 signal line\(s\) follow"),
        (lambda ls: ls[:7], r"declares 12 signals but 6 signal line\(s\) follow"),
        (
            lambda ls: [ls[0], *[" ".join(ln.split()[:8]) for ln in ls[1:]]],
            r"signal line 1 has 8 fields; a 12-lead record needs 9",
        ),  # fmt: skip
        (
            lambda ls: [ls[0].replace(" 1000", " -1000")] + ls[1:],
            r"record line declares signal length '-1000'",
        ),  # fmt: skip
        (
            lambda ls: [ls[0].replace(" 12 ", " x ")] + ls[1:],
            r"number of signals must be an integer",
        ),
        (lambda ls: [""], r"empty WFDB header"),
    ],
    ids=[
        "record-line-only",
        "missing-signal-lines",
        "no-lead-name",
        "negative-length",
        "non-numeric-count",
        "empty",
    ],  # fmt: skip
)
def test_wfdb_malformed_header_is_refused(tmp_path, write_wfdb, edit, message):
    path = write_wfdb(tmp_path, "rec")
    _edit_header(path, edit)
    with pytest.raises(InputError, match=message):
        read_wfdb(path)


@pytest.mark.parametrize("gain", ["-1000", "0", "-0.5", "nan", "inf"])
def test_wfdb_non_positive_adc_gain_is_refused_not_negated(tmp_path, write_wfdb, gain):
    path = write_wfdb(tmp_path, "rec")
    _edit_header(path, lambda ls: [ls[0], ls[1].replace(" 1000.0(", f" {gain}("), *ls[2:]])
    with pytest.raises(InputError, match=rf"signal line 1 \(I\): ADC gain '{gain}\(0\)/mV' must"):
        read_wfdb(path)


def test_wfdb_non_positive_gain_is_refused_on_the_wfdb_package_path_too(tmp_path):
    import wfdb

    from conftest import PTBXL_LEADS

    wfdb.wrsamp("rec", fs=100, units=["mV"] * 12, sig_name=PTBXL_LEADS, p_signal=make_signal().T,
                fmt=["212"] * 12, adc_gain=[200.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))  # fmt: skip
    _edit_header(tmp_path / "rec", lambda ls: [ls[0], ls[1].replace(" 200", " -200", 1), *ls[2:]])
    with pytest.raises(InputError, match="ADC gain '-200"):
        read_wfdb(tmp_path / "rec")


@pytest.mark.parametrize("fs", [float("nan"), float("inf"), 0.0, -100.0])
def test_record_refuses_a_sampling_rate_that_is_not_a_positive_number(fs):
    with pytest.raises(InputError, match="sampling frequency must be a positive number"):
        Record("r", np.zeros((12, 100), dtype=np.float32), fs)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('encoding="ISO-8859-1"', 'encoding="no-such-codec"', "unreadable XML"),
        ('encoding="ISO-8859-1"', 'encoding="UTF-16"', "unreadable XML|malformed XML"),
    ],
)
def test_cardiosoft_unusable_declared_encoding_is_an_input_error(tmp_path, old, new, message):
    path = tmp_path / "e.xml"
    path.write_text(cardiosoft_xml().replace(old, new), encoding="latin-1")
    with pytest.raises(InputError, match=message):
        read_cardiosoft_xml(path)


def test_cardiosoft_odd_digit_in_sample_count_is_not_a_crash(tmp_path):
    path = tmp_path / "c.xml"
    text = cardiosoft_xml().replace(
        "<ChannelSampleCountTotal>5000", "<ChannelSampleCountTotal>\u00b2"
    )
    path.write_text(text, encoding="latin-1")
    assert read_cardiosoft_xml(path).signal.shape == (12, 5000)


def test_random_mutations_give_a_record_or_the_projects_error(tmp_path, write_wfdb):
    fuzz = load_script("benchmarks/fuzz_wfdb_cardiosoft.py")
    record = write_wfdb(tmp_path / "src", "00001_lr")
    xml = tmp_path / "src" / "c.xml"
    xml.write_text(cardiosoft_xml(make_signal(1000, 500) * 1000), encoding="latin-1")
    tallies = fuzz.run(list(fuzz.TARGETS), 150, 17, record, xml, tmp_path / "work")
    for target, tally in tallies.items():
        assert tally.counts["foreign"] == 0, f"{target}: {tally.foreign}"
        assert tally.counts["ok"] > 0 and tally.counts["EcgMiError"] > 0  # both outcomes reached


# --- the signal cache: flat and duplicate records --------------------------------------------


def test_one_flat_record_is_warned_about_and_counted(tmp_path, caplog):
    source = FlatSource(flat={"syn00003"})
    with caplog.at_level(logging.WARNING, logger="ecg_mi.data.store"):
        store = load_or_build(source, source.index(), 100, tmp_path)
    assert store.flat_ids == ("syn00003",)
    assert store.quality() == {"n_flat_records": 1, "n_duplicate_signals": 0}
    assert "1 of 20 records are flat" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ecg_mi.data.store"):  # and again on a cache hit
        assert load_or_build(source, source.index(), 100, tmp_path).quality()["n_flat_records"] == 1
    assert "1 of 20 records are flat" in caplog.text


def test_all_flat_records_are_refused_and_leave_no_cache(tmp_path):
    source = FlatSource(flat=None)
    with pytest.raises(DataError, match="all 20 records are flat .* nothing to learn from"):
        load_or_build(source, source.index(), 100, tmp_path)
    assert list((tmp_path / "signals").iterdir()) == []


def test_identical_ukb_files_under_different_ids_are_warned_about_and_counted(tmp_path, caplog):
    copied = make_signal(5000, 500, seed=1) * 1000
    signals = {f"10000{i:02d}": copied for i in range(15)}  # one file under 15 participant ids
    signals |= {f"20000{i:02d}": make_signal(5000, 500, seed=10 + i) * 1000 for i in range(3)}
    rows = "\n".join(f"{eid},{i % 2},60,{i % 2}" for i, eid in enumerate(signals))
    source = write_ukb(tmp_path, signals, f"eid,mi,age,sex\n{rows}\n")
    with caplog.at_level(logging.WARNING, logger="ecg_mi.data.store"):
        store = load_or_build(source, source.index(), 100, tmp_path / "cache")
    assert store.quality() == {"n_flat_records": 0, "n_duplicate_signals": 14}
    assert set(store.duplicates.values()) == {"1000000"}
    assert "14 of 18 records repeat an earlier record's signal exactly" in caplog.text


def test_a_cache_from_before_the_counts_gets_them_on_load(tmp_path):
    source = FlatSource(flat={"syn00004"})
    first = load_or_build(source, source.index(), 100, tmp_path)
    meta_path = first.path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({"key": meta["key"], "record_ids": meta["record_ids"]}))
    again = load_or_build(source, source.index(), 100, tmp_path)
    assert again.flat_ids == ("syn00004",) and '"flat_ids"' in meta_path.read_text()


# --- configuration values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1: must be a positive integer"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0: must be a positive integer"),
        ("data.batch_size=0", "data.batch_size=0: must be a positive integer"),
        ("data.batch_size=-4", "data.batch_size=-4: must be a positive integer"),
        ("seed=abc", "seed='abc': must be an integer in 0..4294967295"),
        ("seed=-1", "seed=-1: must be an integer in 0..4294967295"),
        ("model.lr=-1", "model.lr=-1: must be a positive number"),
        ("model.lr=0", "model.lr=0: must be a positive number"),
        ("data.num_workers=-2", "data.num_workers=-2: must be an integer >= 0"),
        ("data.skip_missing=maybe", "data.skip_missing='maybe': must be true, false or auto"),
        ("data.val_fraction=0.7", "data.val_fraction=0.7: must be a number in (0, 0.5)"),
        ("data.n_folds=1", "data.n_folds=1: must be an integer >= 2"),
        ("augment.noise=-0.1", "augment.noise=-0.1: must be a number in [0, 1)"),
    ],
)
def test_bad_train_config_value_is_a_config_error(compose_train, override, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check_train_config(compose_train(override))


def test_several_bad_train_values_are_reported_together(compose_train):
    with pytest.raises(ConfigError, match="data.batch_size=0: .*; model.lr=-1: "):
        check_train_config(compose_train("data.batch_size=0", "model.lr=-1"))


@pytest.mark.parametrize("model", sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml")))
def test_shipped_train_configs_pass_the_checks(compose_train, model):
    check_train_config(compose_train(f"model={model}"))


def compose_evaluate(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="evaluate", overrides=list(overrides))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("n_bootstrap=0", "n_bootstrap=0: must be an integer >= 2"),
        ("n_bootstrap=-5", "n_bootstrap=-5: must be an integer >= 2"),
        ("seed=abc", "seed='abc': must be an integer in 0..4294967295"),
        ("min_group=-1", "min_group=-1: must be an integer >= 0"),
        ("age_bands=[[70,55]]", "age_bands=[[70, 55]]: must be a list of [low, high] pairs"),
    ],
)
def test_bad_evaluate_config_value_is_a_config_error(override, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        check_evaluate_config(compose_evaluate(override))


def test_shipped_evaluate_config_passes_the_checks():
    check_evaluate_config(compose_evaluate())
    check_evaluate_config(compose_evaluate("explain=gradcam", "run_id=abc123"))


# --- file modes and interrupted writes -----------------------------------------------------------


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one comes back after."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_cache_and_fold_files_honour_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    source = SyntheticSource(n_records=20)
    store = load_or_build(source, source.index(), 100, tmp_path)
    folds = fold_file_for(source.index(), source.fingerprint(), tmp_path / "folds", n_folds=2)
    for path in (store.path, store.path.with_suffix(".json"), folds.path):
        assert path.stat().st_mode & 0o777 == mode, path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temp(folder: Path, pid: int, host: str | None = None, age_s: float = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / io.temp_name(folder / "x.npy", ".npy")
    if host is not None:  # as written by a process on another machine
        path = path.with_name(path.name.replace(f"@{io._host()}.", f"@{host}."))
    path = path.with_name(path.name.replace(f".{os.getpid()}@", f".{pid}@"))
    path.write_bytes(b"partial")
    os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def test_sweep_removes_only_temporaries_whose_writer_is_gone(tmp_path):
    live = _temp(tmp_path, os.getpid())
    dead = _temp(tmp_path, _dead_pid())
    other_young = _temp(tmp_path, 1, host="elsewhere", age_s=60)
    other_old = _temp(tmp_path, 1, host="elsewhere", age_s=io.STALE_AFTER_S + 60)
    keep = tmp_path / "x.npy"
    keep.write_bytes(b"done")
    assert io.sweep_stale_temporaries(tmp_path) == 2
    assert live.exists() and other_young.exists() and keep.exists()
    assert not dead.exists() and not other_old.exists()


SLOW_BUILD = textwrap.dedent(
    """
    import sys, time
    from ecg_mi.data.sources import SyntheticSource
    from ecg_mi.data.store import load_or_build

    class Slow(SyntheticSource):
        def read(self, row, native_rate):
            time.sleep(0.2)
            return super().read(row, native_rate)

    source = Slow(n_records=40)
    load_or_build(source, source.index(), 100, sys.argv[1])
    """
)


def test_sigkill_mid_build_leaves_no_temporary_the_next_build_keeps(tmp_path):
    script = tmp_path / "slow_build.py"
    script.write_text(SLOW_BUILD)
    cache = tmp_path / "cache"
    child = subprocess.Popen([sys.executable, str(script), str(cache)], env=os.environ.copy(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (cache / "signals").is_dir() or not temporaries(cache / "signals"):
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the child never started its build"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = temporaries(cache / "signals")
    assert len(left) == 1 and f".{child.pid}@" in left[0].name  # the killed writer's array
    source = SyntheticSource(n_records=40)
    store = load_or_build(source, source.index(), 100, cache)
    assert temporaries(cache / "signals") == []
    assert store.signals.shape == (40, 12, 1000)


# --- command line: one line, exit 2, no traceback -------------------------------------------------


def assert_one_error_line(done: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2, no traceback, exactly one ``error:`` line on stderr, naming ``message``, and
    nothing after it. (Libraries' own warnings and log lines may come before it.)"""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr[-3000:]
    assert message in errors[0], errors[0]


@pytest.mark.slow
def test_cli_zero_byte_ptbxl_table(run_cli, tiny_ptbxl, tmp_path):
    root = tiny_ptbxl(n_records=12, n_mi=4, with_500=False)
    (root / "ptbxl_database.csv").write_bytes(b"")
    done = run_cli("train.py", *TINY_TRAINING, "data=ptbxl", f"data.root={root}",
                   f"hydra.run.dir={tmp_path}/run")  # fmt: skip
    assert_one_error_line(done, "ptbxl_database.csv: empty file (no header row)")


@pytest.mark.slow
def test_cli_zero_byte_fold_file(run_cli, tmp_path):
    (tmp_path / "folds.csv").write_bytes(b"")
    done = run_cli("train.py", *TINY_TRAINING, "data.source.n_records=120",
                   f"data.fold_file={tmp_path / 'folds.csv'}", f"hydra.run.dir={tmp_path}/run")  # fmt: skip
    assert_one_error_line(done, "folds.csv: empty file (no header row)")


@pytest.mark.slow
def test_cli_every_record_flat(run_cli, tiny_ptbxl, tmp_path):
    root = tiny_ptbxl(n_records=24, n_mi=8, with_500=False)
    _all_flat(root)
    done = run_cli("train.py", *TINY_TRAINING, "trainer.max_epochs=1", "data=ptbxl",
                   f"data.root={root}", "data.n_folds=2", f"hydra.run.dir={tmp_path}/run")  # fmt: skip
    assert_one_error_line(done, "records are flat (every lead constant, e.g. all zero)")


def _ptbxl_case(edit):
    def setup(tmp_path: Path, tiny_ptbxl) -> list[str]:
        root = tiny_ptbxl(n_records=24, n_mi=8, with_500=False)
        edit(root)
        return ["data=ptbxl", f"data.root={root}", "data.n_folds=2"]

    return setup


def _header_case(edit):
    return _ptbxl_case(lambda root: _edit_header(root / "records100" / "00000" / "00001_lr", edit))


def _table_case(column, value):
    return _ptbxl_case(lambda root: edit_ptbxl_table(root, 3, column, value))


def _ukb_zero_byte_outcomes(tmp_path: Path, tiny_ptbxl) -> list[str]:
    write_ukb(tmp_path, {"1000001": make_signal(5000, 500) * 1000}, "")
    return [
        "data=ukb",
        f"data.root={tmp_path / 'xml'}",
        f"data.outcomes={tmp_path / 'outcomes.csv'}",
    ]


def _zero_byte(name):
    return _ptbxl_case(lambda root: (root / name).write_bytes(b""))


def _zero_byte_fold_file(tmp_path: Path, tiny_ptbxl) -> list[str]:
    (tmp_path / "folds.csv").write_bytes(b"")
    return ["data.source.n_records=120", f"data.fold_file={tmp_path / 'folds.csv'}"]


def _overrides(*args):
    """Overrides on small synthetic data."""
    return lambda tmp_path, tiny_ptbxl: ["data.source.n_records=120", *args]


def _all_flat(root: Path) -> None:
    for dat in (root / "records100").rglob("*.dat"):
        dat.write_bytes(bytes(dat.stat().st_size))
        restamp_checksums(dat.with_suffix(""))  # flat as recorded, not damaged


SWEEP = {
    "zero-byte ptbxl_database.csv": (_zero_byte("ptbxl_database.csv"), "empty file"),
    "zero-byte scp_statements.csv": (_zero_byte("scp_statements.csv"), "empty file"),
    "zero-byte fold file": (_zero_byte_fold_file, "empty file"),
    "zero-byte UKB outcomes": (_ukb_zero_byte_outcomes, "empty file"),
    "age sixty": (_table_case("age", "sixty"), "column 'age' must hold years"),
    "empty patient_id": (_table_case("patient_id", ""), "column 'patient_id' is empty"),
    "sex 7": (_table_case("sex", "7"), "column 'sex' must be 0 (male), 1 (female) or empty"),
    "max_epochs -1": (_overrides("trainer.max_epochs=-1"), "trainer.max_epochs=-1: must be"),
    "batch_size 0": (_overrides("data.batch_size=0"), "data.batch_size=0: must be"),
    "batch_size -4": (_overrides("data.batch_size=-4"), "data.batch_size=-4: must be"),
    "seed abc": (_overrides("seed=abc"), "seed='abc': must be"),
    "lr -1": (_overrides("model.lr=-1"), "model.lr=-1: must be"),
    "skip_missing maybe": (_overrides("data.skip_missing=maybe"), "data.skip_missing='maybe'"),
    "header record line only": (_header_case(lambda ls: ls[:1]), "0 signal line(s) follow"),
    "header without lead name": (
        _header_case(lambda ls: [ls[0], " ".join(ls[1].split()[:8]), *ls[2:]]),
        "signal line 1 has 8 fields",
    ),
    "negative ADC gain": (
        _header_case(lambda ls: [ls[0], ls[1].replace(" 1000.0(", " -1000("), *ls[2:]]),
        "ADC gain '-1000(0)/mV' must be a positive number",
    ),
    "every record flat": (_ptbxl_case(_all_flat), "records are flat"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SWEEP))
def test_cli_sweep_train(run_cli, tiny_ptbxl, tmp_path, case):
    setup, message = SWEEP[case]
    args = setup(tmp_path, tiny_ptbxl)
    done = run_cli("train.py", *TINY_TRAINING, "trainer.max_epochs=1", *args,
                   f"hydra.run.dir={tmp_path}/run")  # fmt: skip
    assert_one_error_line(done, message)


@pytest.mark.slow
@pytest.mark.parametrize("value", ["0", "-5"])
def test_cli_sweep_evaluate_n_bootstrap(run_cli, tmp_path, value):
    done = run_cli("evaluate.py", f"n_bootstrap={value}", f"output_dir={tmp_path}/report",
                   f"hydra.run.dir={tmp_path}/run")  # fmt: skip
    assert_one_error_line(done, f"n_bootstrap={value}: must be an integer >= 2")
