"""The signal cache: decoded records stored once, memory-mapped on every later load.

One contiguous ``float32 [N, 12, L]`` ``.npy`` file per (data set, sample rate, record
set), plus a small JSON sidecar holding the row order and the cache key. Both are written
atomically (temp file + rename), the array first, so a sidecar on disk always describes a
complete array. The key hashes the source fingerprint, the sample rate, the reader/resampler
version, the record ids and the size + mtime of every source file, so editing a record,
the metadata table or a setting rebuilds the cache.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ecg_mi.data.resample import resample
from ecg_mi.errors import InputError
from ecg_mi.utils.io import atomic_path, atomic_write_text, sha256_text

log = logging.getLogger(__name__)

STORE_VERSION = "1"
DURATION_S = 10.0


@dataclass(frozen=True)
class SignalStore:
    """A loaded cache: ``signals[i]`` is the record ``record_ids[i]`` (mV, ``sample_rate``)."""

    signals: np.ndarray  # memmap, float32 [N, 12, L]
    record_ids: list[str]
    sample_rate: int
    path: Path

    def rows(self, record_ids: list[str]) -> np.ndarray:
        """Row positions of ``record_ids`` in ``signals``."""
        position = {rid: i for i, rid in enumerate(self.record_ids)}
        return np.array([position[r] for r in record_ids], dtype=np.int64)


def _file_stamp(path: str | None) -> str:
    if path is None:
        return "-"
    stamps = []
    for candidate in (path, path + ".hea", path + ".dat"):  # a file, or a WFDB record's pair
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        stamps.append(f"{st.st_size}:{st.st_mtime_ns}")
    return "|".join(stamps) or "absent"


def cache_key(source, rows: pd.DataFrame, sample_rate: int) -> str:
    """Hash of everything the cached array depends on."""
    native = source.native_rate(sample_rate)
    parts = [STORE_VERSION, source.fingerprint(), str(sample_rate), str(native)]
    for row in rows.to_dict("records"):  # ~10x faster than iterrows; this runs on every load
        parts.append(f"{row['record_id']}={_file_stamp(source.record_path(row, native))}")
    return sha256_text("\n".join(parts))


def load_or_build(
    source, rows: pd.DataFrame, sample_rate: int, cache_dir: str | Path
) -> SignalStore:
    """Return the cached signals of ``rows`` at ``sample_rate``, decoding them if needed.

    Args:
        source: a data source (see :mod:`ecg_mi.data.sources`).
        rows: index rows to cache (every row must be readable).
        sample_rate: target rate in Hz; records are decimated from the source's native rate.
        cache_dir: root of the cache (``<cache_dir>/signals/``).
    """
    key = cache_key(source, rows, sample_rate)
    stem = Path(cache_dir) / "signals" / f"{source.name}-{sample_rate}hz-{key[:16]}"
    array_path, meta_path = stem.with_suffix(".npy"), stem.with_suffix(".json")
    if meta_path.is_file() and array_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            signals = np.load(array_path, mmap_mode="r")
            return SignalStore(signals, meta["record_ids"], sample_rate, array_path)
    _build(source, rows, sample_rate, array_path)
    atomic_write_text(
        meta_path, json.dumps({"key": key, "record_ids": rows["record_id"].astype(str).tolist()})
    )
    signals = np.load(array_path, mmap_mode="r")
    return SignalStore(signals, rows["record_id"].astype(str).tolist(), sample_rate, array_path)


def _build(source, rows: pd.DataFrame, sample_rate: int, array_path: Path) -> None:
    native = source.native_rate(sample_rate)
    length = int(round(DURATION_S * sample_rate))
    with atomic_path(array_path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(len(rows), 12, length)
        )
        iterator = tqdm(rows.iterrows(), total=len(rows), desc=f"caching {source.name} @ {sample_rate} Hz",
                        disable=len(rows) < 200 or bool(os.environ.get("ECG_MI_NO_PROGRESS")))  # fmt: skip
        for i, (_, row) in enumerate(iterator):
            record = source.read(row, native)
            signal = resample(record.signal, record.fs, sample_rate)
            if signal.shape[1] != length:
                raise InputError(
                    f"{source.record_path(row, native) or record.record_id}: {signal.shape[1]} samples at "
                    f"{sample_rate} Hz, expected {length} ({DURATION_S:g} s)"
                )
            out[i] = signal
        out.flush()
        del out
    log.info(
        "cached %d records of %s at %d Hz in %s", len(rows), source.name, sample_rate, array_path
    )
