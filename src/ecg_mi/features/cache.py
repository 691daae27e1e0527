"""Feature matrices computed once per (data set, sample rate, feature version), cached.

The cache sits beside the signal cache it is computed from and is keyed by that cache's
name (which hashes the records and source files) plus :data:`FEATURE_VERSION`; written
atomically. Records whose beats cannot be found keep NaN rows and are counted.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ecg_mi.data.store import load_or_build
from ecg_mi.features.extract import FEATURE_VERSION, feature_names, record_features
from ecg_mi.utils.io import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureTable:
    """``values[i]`` holds the 408 features of ``record_ids[i]``."""

    values: np.ndarray  # float32 [N, 408]
    record_ids: list[str]
    names: list[str]
    path: Path
    quality: dict[str, int] = field(default_factory=dict)  # the signal cache's counts

    @property
    def n_failed(self) -> int:
        """Records with no usable beats (every feature NaN)."""
        return int(np.isnan(self.values).all(axis=1).sum())

    def matrix(self, record_ids: list[str]) -> np.ndarray:
        position = {rid: i for i, rid in enumerate(self.record_ids)}
        return self.values[[position[r] for r in record_ids]]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.values, index=pd.Index(self.record_ids, name="record_id"), columns=self.names
        )


#: Records per task of the feature workers: big enough that a task outweighs its dispatch.
CHUNK = 256


def feature_workers(n_records: int) -> int:
    """Processes for ``n_records``: one per core this process may use (``ECG_MI_FEATURE_WORKERS``
    overrides), and none (in-process) below two chunks, where starting workers costs more."""
    wanted = int(os.environ.get("ECG_MI_FEATURE_WORKERS") or len(os.sched_getaffinity(0)))
    return max(1, min(wanted, n_records // CHUNK)) if n_records >= 2 * CHUNK else 1


def _chunk_features(path: str, start: int, stop: int, sample_rate: float) -> np.ndarray:
    """The features of rows ``start:stop`` of the signal cache at ``path`` (opened memory-mapped,
    so a worker reads only its rows)."""
    signals = np.load(path, mmap_mode="r")
    out = np.empty((stop - start, len(feature_names())), dtype=np.float32)
    for i in range(start, stop):
        out[i - start] = record_features(np.asarray(signals[i]), sample_rate)
    return out


def compute_features(path: Path, n_records: int, sample_rate: float, desc: str = "features") -> np.ndarray:
    """The 408 features of every record of the signal cache at ``path`` (float32 ``[N, 408]``),
    in chunks of :data:`CHUNK` records over :func:`feature_workers` processes (joblib's loky);
    a record's features do not depend on the chunk it is in, so the result is the same for any
    number of workers."""
    chunks = [(start, min(start + CHUNK, n_records)) for start in range(0, n_records, CHUNK)]
    workers = feature_workers(n_records)
    tasks = (delayed(_chunk_features)(str(path), a, b, sample_rate) for a, b in chunks)
    parts = Parallel(n_jobs=workers, return_as="generator")(tasks) if workers > 1 else (t[0](*t[1]) for t in tasks)
    progress = tqdm(total=n_records, desc=desc, disable=n_records < 200 or bool(os.environ.get("ECG_MI_NO_PROGRESS")))
    values = np.empty((n_records, len(feature_names())), dtype=np.float32)
    for (start, stop), part in zip(chunks, parts, strict=True):
        values[start:stop] = part
        progress.update(stop - start)
    progress.close()
    return values


def load_or_compute_features(
    source, rows: pd.DataFrame, sample_rate: int, cache_dir: str | Path
) -> FeatureTable:
    """The feature table of ``rows`` at ``sample_rate`` (signals cached first if needed)."""
    store = load_or_build(source, rows, sample_rate, cache_dir)
    stem = Path(cache_dir) / "features" / f"{store.path.stem}-features-v{FEATURE_VERSION}"
    array_path, meta_path = stem.with_suffix(".npy"), stem.with_suffix(".json")
    names = feature_names()
    if array_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("record_ids") == store.record_ids:
            return FeatureTable(
                np.load(array_path), store.record_ids, names, array_path, store.quality()
            )
    values = compute_features(store.path, len(store.record_ids), float(sample_rate),
                              desc=f"features {source.name} @ {sample_rate} Hz")  # fmt: skip
    with atomic_path(array_path, suffix=".npy") as tmp:
        np.save(tmp, values)
    atomic_write_text(
        meta_path, json.dumps({"record_ids": store.record_ids, "version": FEATURE_VERSION})
    )
    table = FeatureTable(values, store.record_ids, names, array_path, store.quality())
    if table.n_failed:
        log.warning(
            "%d of %d records have no usable beats (NaN features)", table.n_failed, len(values)
        )
    return table
