"""Lightning DataModules over one cohort/fold definition.

:func:`prepare_fold` is the shared part — source index → fold file → train/val/test
tables with metadata, missing-file handling — so the signal DataModule here and the
feature-matrix DataModule build on exactly the same records and folds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ecg_mi.data.cohort import FoldFile, fold_file_for, train_val_split
from ecg_mi.data.resample import check_sample_rate
from ecg_mi.data.store import SignalStore, load_or_build
from ecg_mi.errors import ConfigError, DataError, InputError
from ecg_mi.paths import default_cache_dir

log = logging.getLogger(__name__)

META_COLUMNS = ["record_id", "patient_id", "age", "sex", "label", "fold"]


@dataclass(frozen=True)
class FoldSplit:
    """The records of one outer fold: ``train`` (fit), ``val`` (early stopping and
    thresholds, carved from the training folds) and ``test`` (the held-out fold)."""

    fold: int
    fold_file: FoldFile
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    n_missing: int  # cohort records skipped because their file is absent at this rate

    @property
    def fold_hash(self) -> str:
        return self.fold_file.sha256

    def summary(self) -> dict[str, Any]:
        """Flat facts worth logging with a run."""
        return {
            "fold_hash": self.fold_hash,
            "fold_file": str(self.fold_file.path),
            "n_cohort": len(self.fold_file.table),
            "n_missing_skipped": self.n_missing,
            "n_train": len(self.train),
            "n_val": len(self.val),
            "n_test": len(self.test),
            "n_test_mi": int(self.test["label"].sum()),
        }


def resolve_skip_missing(skip_missing: bool | str, source, native_rate: int) -> bool:
    """``auto`` skips only at rates the source declares partial (PTB-XL subset: 500 Hz).

    Called for every fold, whether or not files are missing, so a typo such as
    ``data.skip_missing=maybe`` fails at once rather than on the day a file goes missing.
    """
    if isinstance(skip_missing, bool):
        return skip_missing
    if skip_missing == "auto":
        return native_rate in source.partial_rates
    raise ConfigError(f"data.skip_missing={skip_missing!r}; use true, false or auto")


def prepare_fold(
    source,
    fold: int,
    sample_rate: int,
    n_folds: int = 5,
    cohort: dict[str, Any] | None = None,
    val_fraction: float = 0.2,
    skip_missing: bool | str = "auto",
    cache_dir: str | Path | None = None,
    fold_file: str | Path | None = None,
    seed: int = 0,
) -> FoldSplit:
    """Resolve the cohort, folds and splits for ``fold`` (see module docstring)."""
    if not isinstance(fold, int) or not 0 <= fold < n_folds:
        raise ConfigError(f"fold={fold!r} is outside 0..{n_folds - 1} (data.n_folds={n_folds})")
    check_sample_rate(sample_rate)
    native = source.native_rate(sample_rate)
    skip = resolve_skip_missing(skip_missing, source, native)  # before anything is written
    cohort = dict(cohort or {})
    index = source.index()
    folds = fold_file_for(
        index, source.fingerprint(), Path(cache_dir or default_cache_dir()) / "folds",
        ratio=cohort.get("ratio", 2), controls=cohort.get("controls", "non_mi"),
        n_folds=n_folds, seed=cohort.get("seed", seed), path=fold_file,
        max_cases=cohort.get("max_cases"),
    )  # fmt: skip
    meta = index.drop(columns=["label"]).astype({"record_id": str, "patient_id": str})
    table = folds.table.merge(
        meta.drop(columns=["patient_id"]), on="record_id", how="left", validate="1:1"
    )

    paths = table.apply(lambda r: source.record_path(r, native), axis=1)
    absent = paths.map(lambda p: p is not None and not _record_exists(p))
    n_missing = int(absent.sum())
    if n_missing:
        examples = ", ".join(paths[absent].head(3))
        if not skip:
            raise InputError(
                f"{n_missing} of {len(table)} cohort records have no {native} Hz file (e.g. {examples}); "
                "set data.skip_missing=true to leave them out"
            )
        log.warning(
            "leaving out %d of %d cohort records with no %d Hz file (e.g. %s)",
            n_missing,
            len(table),
            native,
            examples,
        )
        table = table[~absent].reset_index(drop=True)

    test = table[table["fold"] == fold].reset_index(drop=True)
    train_all = table[table["fold"] != fold].reset_index(drop=True)
    for name, part in (("test fold", test), ("training folds", train_all)):
        if part.empty or part["label"].nunique() < 2:
            raise DataError(
                f"fold {fold}: the {name} hold {len(part)} records and not both classes after filtering"
            )
    train, val = train_val_split(train_all, val_fraction, seed + fold)
    return FoldSplit(fold, folds, train, val, test, n_missing)


def _record_exists(path: str) -> bool:
    p = Path(path)
    return p.is_file() or p.with_suffix(".hea").is_file()


class SignalDataset(Dataset):
    """Items ``(x [12, L] float32, y float32, row)`` from a memory-mapped cache.

    The memmap is opened lazily in each worker process, so workers share the page cache
    instead of receiving a pickled copy of the array.
    """

    def __init__(
        self,
        array_path: Path,
        rows: np.ndarray,
        labels: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
    ) -> None:
        self.array_path = array_path
        self.rows = rows
        self.labels = labels.astype(np.float32)
        self.mean = mean.astype(np.float32)
        self.std = std.astype(np.float32)
        self._signals: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if self._signals is None:
            self._signals = np.load(self.array_path, mmap_mode="r")
        x = (self._signals[self.rows[i]] - self.mean) / self.std
        return (
            torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            torch.tensor(self.labels[i]),
            i,
        )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_signals": None}


def loader_seed(seed: int, fold: int) -> int:
    """Seed of a fold's batch order: changes with ``seed`` (a seed study varies the batches
    too) and with ``fold``, and stays the same for the same pair."""
    return int(np.random.SeedSequence([int(seed), int(fold)]).generate_state(1)[0])


def lead_statistics(signals: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and std ``[12, 1]`` (mV) over the given rows (the training part)."""
    mean = np.zeros((12, 1), dtype=np.float64)
    sq = np.zeros((12, 1), dtype=np.float64)
    for start in range(0, len(rows), 256):
        chunk = np.asarray(signals[np.sort(rows[start : start + 256])], dtype=np.float64)
        mean += chunk.sum(axis=(0, 2))[:, None]
        sq += (chunk**2).sum(axis=(0, 2))[:, None]
    n = len(rows) * signals.shape[2]
    mean /= n
    std = np.sqrt(np.maximum(sq / n - mean**2, 1e-12))
    return mean, std


class FoldDataModule(pl.LightningDataModule):
    """What every DataModule shares: one outer fold of one cohort (:func:`prepare_fold`).

    Args:
        source: a data source (``_target_``-instantiated from ``conf/data/*.yaml``).
        sample_rate: Hz (500, 250 or 100).
        fold: the held-out test fold.
        n_folds, cohort, val_fraction, skip_missing, fold_file, seed: see :func:`prepare_fold`.
        cache_dir: signal/feature/fold cache root (default ``$ECG_MI_CACHE`` or ``.cache/ecg_mi``).
    """

    def __init__(
        self,
        source,
        sample_rate: int = 100,
        fold: int = 0,
        n_folds: int = 5,
        cohort: dict[str, Any] | None = None,
        val_fraction: float = 0.2,
        skip_missing: bool | str = "auto",
        fold_file: str | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.sample_rate = check_sample_rate(sample_rate)
        self.fold = fold
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.split = prepare_fold(source, fold, self.sample_rate, n_folds, cohort, val_fraction,
                                  skip_missing, self.cache_dir, fold_file, seed)  # fmt: skip

    def cohort_rows(self) -> pd.DataFrame:
        """Source index rows of every record in this fold's parts, sorted by record_id."""
        split = self.split
        ids = pd.concat([split.train, split.val, split.test])["record_id"].sort_values(
            kind="stable"
        )
        index = self.source.index().astype({"record_id": str}).set_index("record_id")
        return index.loc[ids].reset_index()

    def metadata(self, part: str) -> pd.DataFrame:
        """``META_COLUMNS`` of the ``train``/``val``/``test`` records, in loader order."""
        table = getattr(self.split, part)
        if table.empty:
            raise DataError(f"fold {self.fold}: no {part} records")
        return table[META_COLUMNS].reset_index(drop=True)


class SignalDataModule(FoldDataModule):
    """Fold-split ECG tensors ``[B, 12, L]`` for one outer fold.

    Args (besides :class:`FoldDataModule`'s):
        batch_size, num_workers, pin_memory: DataLoader settings.
        normalize: per-lead standardisation fitted on the training part only.
    """

    def __init__(
        self,
        source,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        normalize: bool = True,
        **fold_kwargs: Any,
    ) -> None:
        super().__init__(source, **fold_kwargs)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.normalize = normalize
        self.store: SignalStore | None = None
        self.mean = self.std = None

    def setup(self, stage: str | None = None) -> None:
        if self.store is not None:
            return
        self.store = load_or_build(
            self.source, self.cohort_rows(), self.sample_rate, self.cache_dir
        )
        train_rows = self.store.rows(self.split.train["record_id"].tolist())
        if self.normalize:
            self.mean, self.std = lead_statistics(self.store.signals, train_rows)
        else:
            self.mean, self.std = np.zeros((12, 1)), np.ones((12, 1))

    def quality(self) -> dict[str, int]:
        """Counts of suspicious but kept records (flat, duplicated signals), to log."""
        self.setup()
        return self.store.quality()

    @property
    def input_length(self) -> int:
        return int(round(10.0 * self.sample_rate))

    def _dataset(self, part: pd.DataFrame) -> SignalDataset:
        if self.store is None:
            self.setup()
        rows = self.store.rows(part["record_id"].tolist())
        return SignalDataset(self.store.path, rows, part["label"].to_numpy(), self.mean, self.std)

    def _loader(self, part: pd.DataFrame, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(loader_seed(self.seed, self.fold))
        return DataLoader(
            self._dataset(part), batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
            pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0, generator=generator,
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.split.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split.val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split.test, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class FeatureDataModule(FoldDataModule):
    """The 408 clinical features of one outer fold as matrices (classical models).

    Same cohort, folds and parts as :class:`SignalDataModule`; features are computed once
    per (data set, sample rate, feature version) from the cached signals and cached too.
    """

    def __init__(self, source, **fold_kwargs: Any) -> None:
        super().__init__(source, **fold_kwargs)
        self.table = None

    def setup(self, stage: str | None = None) -> None:
        if self.table is None:
            from ecg_mi.features.cache import load_or_compute_features

            self.table = load_or_compute_features(
                self.source, self.cohort_rows(), self.sample_rate, self.cache_dir
            )

    def quality(self) -> dict[str, int]:
        """Counts of suspicious but kept records (flat, duplicated signals), to log."""
        self.setup()
        return dict(self.table.quality)

    def arrays(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X [n, 408] float32 with NaN for unmeasurable features, y [n])`` of a part."""
        self.setup()
        meta = self.metadata(part)
        return self.table.matrix(meta["record_id"].tolist()), meta["label"].to_numpy()

    def groups(self, part: str) -> np.ndarray:
        """Patient ids of a part (for patient-grouped inner cross-validation)."""
        return self.metadata(part)["patient_id"].to_numpy()
