"""The signal cache: decoded records stored once, memory-mapped on every later load.

One contiguous ``float32 [N, 12, L]`` ``.npy`` file per (data set, sample rate, record
set), plus a small JSON sidecar holding the row order and the cache key. Both are written
atomically (temp file + rename), the array first, so a sidecar on disk always describes a
complete array. The key hashes the source fingerprint, the sample rate, the reader/resampler
version, the record ids and the size + mtime of every source file, so editing a record,
the metadata table or a setting rebuilds the cache.

Suspicious but readable records are counted while the array is built and the counts kept in
the sidecar: *flat* records (every lead constant, e.g. all zero: a disconnected recorder or
an empty export) and *duplicate signals* (exactly the signal of an earlier record, e.g. one
file copied under several participant ids). Both are left in and logged as a warning on every
load (:meth:`SignalStore.quality` gives the counts to log with a run); a record set whose
every record is flat is refused, since a model trained on it scores AUC 0.5 without a word.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ecg_mi.data.resample import resample
from ecg_mi.errors import DataError, InputError
from ecg_mi.utils.io import (
    atomic_path,
    atomic_write_text,
    sha256_text,
    sweep_stale_temporaries,
)

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
    flat_ids: tuple[str, ...] = ()  # records whose 12 leads are all constant
    duplicates: dict[str, str] = field(default_factory=dict)  # record id -> earlier same signal

    def quality(self) -> dict[str, int]:
        """Counts of suspicious records, named as they are logged with a run."""
        return {"n_flat_records": len(self.flat_ids), "n_duplicate_signals": len(self.duplicates)}

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

    Raises:
        DataError: every record is flat (nothing to learn from).
    """
    key = cache_key(source, rows, sample_rate)
    signals_dir = Path(cache_dir) / "signals"
    sweep_stale_temporaries(signals_dir)  # an interrupted build's array, even on a cache hit
    stem = signals_dir / f"{source.name}-{sample_rate}hz-{key[:16]}"
    array_path, meta_path = stem.with_suffix(".npy"), stem.with_suffix(".json")
    record_ids = rows["record_id"].astype(str).tolist()
    meta = _read_sidecar(meta_path) if array_path.is_file() else None
    if meta is not None and meta.get("key") == key:
        signals = np.load(array_path, mmap_mode="r")
        if "flat_ids" not in meta or "duplicates" not in meta:  # a cache from before the counts
            meta.update(_quality(signals, meta["record_ids"]))
            atomic_write_text(meta_path, json.dumps(meta))
        record_ids = meta["record_ids"]
    else:
        meta = {"key": key, "record_ids": record_ids,
                **_build(source, rows, sample_rate, array_path)}  # fmt: skip
        atomic_write_text(meta_path, json.dumps(meta))
        signals = np.load(array_path, mmap_mode="r")
    store = SignalStore(signals, record_ids, sample_rate, array_path,
                        tuple(meta["flat_ids"]), dict(meta["duplicates"]))  # fmt: skip
    _report_quality(store, source.name)
    return store


def _read_sidecar(meta_path: Path) -> dict | None:
    """The sidecar's content, or None when absent or unreadable (the cache is then rebuilt)."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_flat(signal: np.ndarray) -> bool:
    """Whether every lead of ``signal`` ``[12, L]`` is constant (all zero included)."""
    return bool((signal.max(axis=1) == signal.min(axis=1)).all())


def signal_digest(signal: np.ndarray) -> str:
    """A digest of the stored samples: equal digests mean the same signal, bit for bit."""
    return hashlib.blake2b(np.ascontiguousarray(signal).tobytes(), digest_size=16).hexdigest()


def _quality(signals: np.ndarray, record_ids: list[str]) -> dict:
    """Flat records and duplicate signals of a finished array (for caches built before the
    counts were kept; a new build counts while it decodes)."""
    counter = _QualityCounter()
    for i, rid in enumerate(record_ids):
        counter.add(rid, np.asarray(signals[i]))
    return counter.result()


class _QualityCounter:
    """Accumulates flat records and repeated signals, record by record, in row order."""

    def __init__(self) -> None:
        self.flat: list[str] = []
        self.first_with: dict[str, str] = {}  # digest -> first record id holding it
        self.duplicates: dict[str, str] = {}

    def add(self, record_id: str, signal: np.ndarray) -> None:
        if is_flat(signal):  # counted as flat only: every all-zero record would "repeat"
            self.flat.append(record_id)
            return
        first = self.first_with.setdefault(signal_digest(signal), record_id)
        if first != record_id:
            self.duplicates[record_id] = first

    def result(self) -> dict:
        return {"flat_ids": self.flat, "duplicates": self.duplicates}


def _refuse_all_flat(n: int, n_flat: int, where: str) -> None:
    if n and n_flat == n:
        raise DataError(
            f"{where}: all {n} records are flat (every lead constant, e.g. all zero); "
            "nothing to learn from — check the export"
        )


def _report_quality(store: SignalStore, source_name: str) -> None:
    """Refuse an all-flat record set; warn with the counts about flat or repeated records."""
    n = len(store.record_ids)
    where = f"{source_name} at {store.sample_rate} Hz"
    _refuse_all_flat(n, len(store.flat_ids), where)
    if store.flat_ids:
        log.warning(
            "%s: %d of %d records are flat (every lead constant, e.g. all zero), e.g. %s; "
            "kept, counted as n_flat_records", where, len(store.flat_ids), n,
            ", ".join(store.flat_ids[:3]),
        )  # fmt: skip
    if store.duplicates:
        examples = ", ".join(f"{d} = {o}" for d, o in list(store.duplicates.items())[:3])
        log.warning(
            "%s: %d of %d records repeat an earlier record's signal exactly (e.g. %s); "
            "kept, counted as n_duplicate_signals", where, len(store.duplicates), n, examples,
        )  # fmt: skip


def _build(source, rows: pd.DataFrame, sample_rate: int, array_path: Path) -> dict:
    """Decode ``rows`` into ``array_path`` atomically; return the quality counts for the
    sidecar. An all-flat record set is refused before the array is renamed into place."""
    native = source.native_rate(sample_rate)
    length = int(round(DURATION_S * sample_rate))
    counter = _QualityCounter()
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
            counter.add(str(row["record_id"]), out[i])
        out.flush()
        del out
        quality = counter.result()
        _refuse_all_flat(len(rows), len(quality["flat_ids"]), f"{source.name} at {sample_rate} Hz")
    log.info(
        "cached %d records of %s at %d Hz in %s", len(rows), source.name, sample_rate, array_path
    )
    return quality
