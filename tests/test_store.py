"""The signal cache: built once, memory-mapped, invalidated on change, written atomically."""

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import restamp_checksums
from ecg_mi.data.sources import PtbxlSource, SyntheticSource
from ecg_mi.data.store import load_or_build
from ecg_mi.errors import InputError


class CountingSource(SyntheticSource):
    """A synthetic source that counts reads and can fail on a chosen record."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__(n_records=20, seed=0)
        self.reads = 0
        self.fail_on = fail_on

    def read(self, row, native_rate):
        self.reads += 1
        if row["record_id"] == self.fail_on:
            raise InputError(f"{row['record_id']}: broken on purpose")
        return super().read(row, native_rate)


def test_second_load_uses_the_memmap_without_reading_sources(tmp_path):
    source = CountingSource()
    rows = source.index()
    first = load_or_build(source, rows, 100, tmp_path)
    assert source.reads == 20 and first.signals.shape == (20, 12, 1000)
    second = load_or_build(source, rows, 100, tmp_path)
    assert source.reads == 20
    assert isinstance(second.signals, np.memmap)
    np.testing.assert_array_equal(first.signals, second.signals)


def test_each_sample_rate_gets_its_own_cache(tmp_path):
    source = CountingSource()
    a = load_or_build(source, source.index(), 100, tmp_path)
    b = load_or_build(source, source.index(), 250, tmp_path)
    assert a.path != b.path and b.signals.shape == (20, 12, 2500)


def test_failed_build_leaves_no_cache_file(tmp_path):
    source = CountingSource(fail_on="syn00010")
    with pytest.raises(InputError, match="broken on purpose"):
        load_or_build(source, source.index(), 100, tmp_path)
    assert list((tmp_path / "signals").iterdir()) == []


def test_editing_a_record_file_rebuilds_the_cache(tiny_ptbxl, tmp_path):
    source = PtbxlSource(tiny_ptbxl(n_records=12, n_mi=4, with_500=False))
    rows = source.index()
    first = load_or_build(source, rows, 100, tmp_path / "cache")
    path = source.record_path(rows.iloc[0], 100) + ".dat"
    raw = np.fromfile(path, dtype="<i2")
    raw[:12] += 500
    raw.tofile(path)
    restamp_checksums(Path(path).with_suffix(""))  # a new recording, not a damaged one
    os.utime(path, ns=(1, 1))  # a changed mtime and content, whatever the clock resolution
    second = load_or_build(source, rows, 100, tmp_path / "cache")
    assert second.path != first.path
    assert not np.array_equal(first.signals[0], second.signals[0])
