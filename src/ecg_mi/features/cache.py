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
    values = np.empty((len(store.record_ids), len(names)), dtype=np.float32)
    progress = tqdm(range(len(values)), desc=f"features {source.name} @ {sample_rate} Hz",
                    disable=len(values) < 200 or bool(os.environ.get("ECG_MI_NO_PROGRESS")))  # fmt: skip
    for i in progress:
        values[i] = record_features(np.asarray(store.signals[i]), float(sample_rate))
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
