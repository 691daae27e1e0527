"""The Lightning DataModule over one cohort/fold definition.

:func:`prepare_fold` resolves the source index → fold file → train/val/test tables with
metadata and missing-file handling; :class:`FoldDataModule` serves one fold through the
model's :class:`~ecg_mi.representation.Representation`, fitted on the training part: batches of
normalised signals ``[B, 12, L]`` (and a hybrid's scaled features) for the networks, feature
matrices for the classical models — the same records and folds for both.
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
from ecg_mi.representation import Representation
from ecg_mi.targets import Targets

log = logging.getLogger(__name__)

META_COLUMNS = ["record_id", "patient_id", "age", "sex", "label", "fold"]
TRAIN_POOLS = ("cohort", "all")
#: ``fold`` of a training record from outside the cohort (``data.train_pool=all``).
OUTSIDE_COHORT = -1


@dataclass(frozen=True)
class FoldSplit:
    """The records of one outer fold: ``train`` (fit), ``val`` (early stopping and
    thresholds, carved from the training folds) and ``test`` (the held-out fold)."""

    fold: int
    fold_file: FoldFile
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    n_missing: int  # records skipped because their file is absent at this rate
    pool: pd.DataFrame  # the records outside the cohort that may train (train_pool=all), any fold

    @property
    def n_outside_cohort(self) -> int:
        """Training records from outside the cohort (0 with ``train_pool=cohort``)."""
        return int((self.train["fold"] == OUTSIDE_COHORT).sum())

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
            "n_train_outside_cohort": self.n_outside_cohort,
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
    train_pool: str = "cohort",
    also_at_rate: int | None = None,
) -> FoldSplit:
    """Resolve the cohort, folds and splits for ``fold`` (see module docstring).

    ``train_pool``: ``cohort`` trains on the cohort's training records only (the paper's
    protocol); ``all`` adds every other labelled record of the source whose patient is
    neither in the test fold nor in the validation part — the training patients' other
    ECGs and the patients the cohort rule left out — to the *training* part only;
    validation and test stay the cohort's, so the scores compare with ``cohort``.
    ``also_at_rate`` (Hz): keep only the records that also have a file at that rate (e.g. 500
    in the PTB-XL subset), so that two sample rates are compared on the same records."""
    if not isinstance(fold, int) or not 0 <= fold < n_folds:
        raise ConfigError(f"fold={fold!r} is outside 0..{n_folds - 1} (data.n_folds={n_folds})")
    check_sample_rate(sample_rate)
    if also_at_rate is not None:
        check_sample_rate(also_at_rate)
    if train_pool not in TRAIN_POOLS:
        raise ConfigError(f"data.train_pool={train_pool!r}; choose one of {list(TRAIN_POOLS)}")
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
    table, n_missing = _drop_missing(table, source, native, skip, "cohort")
    table, n_other = _keep_also_at(table, source, also_at_rate, "cohort")
    n_missing += n_other

    test = table[table["fold"] == fold].reset_index(drop=True)
    train_all = table[table["fold"] != fold].reset_index(drop=True)
    for name, part in (("test fold", test), ("training folds", train_all)):
        if part.empty or part["label"].nunique() < 2:
            raise DataError(
                f"fold {fold}: the {name} hold {len(part)} records and not both classes after filtering"
            )
    train, val = train_val_split(train_all, val_fraction, seed + fold)
    pool = train.iloc[:0]
    if train_pool == "all":
        pool, n_missing_pool = _drop_missing(_outside_cohort(index, folds.table), source, native, skip, "non-cohort")
        pool, n_other = _keep_also_at(pool, source, also_at_rate, "non-cohort")
        n_missing += n_missing_pool + n_other
        held_out = set(test["patient_id"]) | set(val["patient_id"])
        train = pd.concat([train, pool[~pool["patient_id"].isin(held_out)]], ignore_index=True)
    return FoldSplit(fold, folds, train, val, test, n_missing, pool)


def _outside_cohort(index: pd.DataFrame, cohort: pd.DataFrame) -> pd.DataFrame:
    """Every labelled record of the source that the cohort rule left out, as fold-table rows
    (``fold`` = :data:`OUTSIDE_COHORT`), sorted by record_id."""
    index = index.astype({"record_id": str, "patient_id": str})
    pool = index[~index["record_id"].isin(set(cohort["record_id"]))].assign(fold=OUTSIDE_COHORT)
    return pool.sort_values("record_id", kind="stable").reset_index(drop=True)


def _drop_missing(table: pd.DataFrame, source, native: int, skip: bool, what: str) -> tuple[pd.DataFrame, int]:
    """``table`` without the records that have no file at ``native`` Hz (InputError unless
    ``skip``), and how many were left out."""
    paths = table.apply(lambda r: source.record_path(r, native), axis=1)
    absent = paths.map(lambda p: p is not None and not _record_exists(p)) if len(table) else paths
    n_missing = int(absent.sum())
    if not n_missing:
        return table, 0
    examples = ", ".join(paths[absent].head(3))
    if not skip:
        raise InputError(
            f"{n_missing} of {len(table)} {what} records have no {native} Hz file (e.g. {examples}); "
            "set data.skip_missing=true to leave them out"
        )
    log.warning("leaving out %d of %d %s records with no %d Hz file (e.g. %s)",
                n_missing, len(table), what, native, examples)  # fmt: skip
    return table[~absent].reset_index(drop=True), n_missing


def _keep_also_at(table: pd.DataFrame, source, rate: int | None, what: str) -> tuple[pd.DataFrame, int]:
    """``table`` without the records that have no file at ``rate`` Hz (None: unchanged), and how
    many were left out (logged and counted like any skipped record)."""
    if rate is None:
        return table, 0
    return _drop_missing(table, source, source.native_rate(rate), True, f"{what} (data.also_at_rate={rate})")


def _record_exists(path: str) -> bool:
    p = Path(path)
    return p.is_file() or p.with_suffix(".hea").is_file()


class SignalDataset(Dataset):
    """Items ``(x, y, i)``: ``x`` the representation's normalised signal input ``[12, L]``
    float32 of row ``rows[i]`` of ``signals`` (a memory-mapped ``.npy`` path, or an array of
    derived inputs such as median beats), or ``(signal, features)`` with a hybrid's scaled
    features ``[n, F]`` (in ``rows`` order); ``y`` a scalar, or ``[1 + K]`` with auxiliary targets.

    The memmap is opened lazily in each worker process, so workers share the page cache
    instead of receiving a pickled copy of the array.
    """

    def __init__(self, signals: Path | np.ndarray, rows: np.ndarray, labels: np.ndarray,
                 representation: Representation, features: np.ndarray | None = None) -> None:  # fmt: skip
        self.array_path = signals if isinstance(signals, Path) else None
        self.rows = rows
        self.labels = labels.astype(np.float32)
        self.representation = representation
        self.features = features
        self._signals: np.ndarray | None = None if self.array_path else signals

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor, int]:
        if self._signals is None:
            self._signals = np.load(self.array_path, mmap_mode="r")
        x = torch.from_numpy(self.representation.normalise_signal(self._signals[self.rows[i]]))
        if self.features is not None:
            x = (x, torch.from_numpy(self.features[i]))
        return x, torch.tensor(self.labels[i]), i

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_signals": None} if self.array_path else dict(self.__dict__)


def loader_seed(seed: int, fold: int) -> int:
    """Seed of a fold's batch order: changes with ``seed`` (a seed study varies the batches
    too) and with ``fold``, and stays the same for the same pair."""
    return int(np.random.SeedSequence([int(seed), int(fold)]).generate_state(1)[0])


class FoldDataModule(pl.LightningDataModule):
    """One outer fold of one cohort (:func:`prepare_fold`), served through ``representation``
    (fitted on the training part in :meth:`setup`; :attr:`fitted`).

    Args:
        source: a data source (``_target_``-instantiated from ``conf/data/*.yaml``).
        representation: what the model reads (``conf/representation/*.yaml``); default the window.
        targets: the networks' training targets (:class:`~ecg_mi.targets.Targets`); default MI.
        batch_size, num_workers, pin_memory: DataLoader settings (networks).
        sample_rate: Hz (500, 250 or 100).
        fold: the held-out test fold.
        n_folds, cohort, val_fraction, skip_missing, fold_file, seed, train_pool, also_at_rate: see
            :func:`prepare_fold`.
        cache_dir: signal/feature/fold cache root (default ``$ECG_MI_CACHE`` or ``.cache/ecg_mi``).
    """

    def __init__(
        self,
        source,
        representation: Representation | None = None,
        targets: Targets | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        sample_rate: int = 100,
        fold: int = 0,
        n_folds: int = 5,
        cohort: dict[str, Any] | None = None,
        val_fraction: float = 0.2,
        skip_missing: bool | str = "auto",
        fold_file: str | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        train_pool: str = "cohort",
        also_at_rate: int | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.representation = representation or Representation("window")
        self.targets = targets or Targets()
        self.batch_size, self.num_workers, self.pin_memory = int(batch_size), int(num_workers), bool(pin_memory)
        self.sample_rate = check_sample_rate(sample_rate)
        self.fold = fold
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.split = prepare_fold(source, fold, self.sample_rate, n_folds, cohort, val_fraction,
                                  skip_missing, self.cache_dir, fold_file, seed, train_pool, also_at_rate)  # fmt: skip
        self.targets.check_offered(self.split.train.columns, getattr(source, "name", source))
        self.fitted: Representation | None = None  # the representation fitted on the training part
        self.store: SignalStore | None = None
        self.n_without_beats = 0
        self._feature_table = None
        self._signal_inputs: np.ndarray | None = None
        self._train_targets: np.ndarray | None = None

    @property
    def feature_table(self):
        """The 408 features of :meth:`cohort_rows` (computed once per data set, sample rate and
        feature version, and cached on disk): the feature models' input, a teacher's, a hybrid's."""
        if self._feature_table is None:
            from ecg_mi.features.cache import load_or_compute_features

            self._feature_table = load_or_compute_features(self.source, self.cohort_rows(), self.sample_rate,
                                                           self.cache_dir)  # fmt: skip
        return self._feature_table

    def feature_matrix(self, part: pd.DataFrame) -> np.ndarray:
        """The 408 features ``[n, 408]`` (NaN = unmeasured) of ``part``'s records, in its order."""
        return self.feature_table.matrix(part["record_id"].tolist())

    def cohort_rows(self) -> pd.DataFrame:
        """Source index rows of the records to cache, sorted by record_id: the cohort's, and
        with ``train_pool=all`` every record outside it too (whatever the fold, so the five
        folds share one cache)."""
        split = self.split
        parts = pd.concat([split.train, split.val, split.test, split.pool])
        ids = parts["record_id"].drop_duplicates().sort_values(kind="stable")
        index = self.source.index().astype({"record_id": str}).set_index("record_id")
        return index.loc[ids].reset_index()

    def metadata(self, part: str) -> pd.DataFrame:
        """``META_COLUMNS`` of the ``train``/``val``/``test`` records, in loader order."""
        table = getattr(self.split, part)
        if table.empty:
            raise DataError(f"fold {self.fold}: no {part} records")
        return table[META_COLUMNS].reset_index(drop=True)

    def setup(self, stage: str | None = None) -> None:
        """Cache what the representation derives (signals, median beats, features) and fit it
        on the training part (the input gate's limits on the training strips, whatever the
        model reads)."""
        if self.fitted is not None:
            return
        representation, train = self.representation, self.split.train
        store = load_or_build(self.source, self.cohort_rows(), self.sample_rate, self.cache_dir)
        rows, signals, features = store.rows(train["record_id"].tolist()), None, None
        if representation.signal is not None:
            self.store = store
            signals = self.signal_inputs
        if representation.features == "scaled":
            features = self.feature_matrix(train)
        self.fitted = representation.fit(self.sample_rate, signals, rows, features, strips=store.signals)

    @property
    def signal_inputs(self) -> np.ndarray:
        """The representation's signal inputs ``[N, 12, T]`` (mV) in the store's row order: the
        strips (memory-mapped), or their median beats (cached per record set)."""
        if self._signal_inputs is None:
            if self.store is None:
                self.setup()
            self._signal_inputs = self.store.signals
            if self.representation.signal == "median_beat":
                from ecg_mi.features.beats import load_or_compute_median_beats

                self._signal_inputs, self.n_without_beats = load_or_compute_median_beats(self.store, self.cache_dir)
                if self.n_without_beats:
                    log.warning("%d of %d records have fewer than 2 usable beats: their median beat is all zero",
                                self.n_without_beats, len(self._signal_inputs))  # fmt: skip
        return self._signal_inputs

    def quality(self) -> dict[str, int]:
        """Counts of suspicious but kept records (flat, duplicated signals; with median-beat
        input, strips without usable beats), to log."""
        self.setup()
        if self.store is None:
            return dict(self.feature_table.quality)
        counts = self.store.quality()
        if self.representation.signal == "median_beat":
            counts["n_records_without_beats"] = self.n_without_beats
        return counts

    @property
    def input_length(self) -> int:
        """Samples of the signal input: a 10 s strip, or a median beat."""
        return self.representation.input_length(self.sample_rate)

    # ------------------------------------------------------------------ classical models

    def arrays(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X [n, 408] float32 with NaN for unmeasurable features, y [n])`` of a part."""
        meta = self.metadata(part)
        return self.feature_matrix(meta), meta["label"].to_numpy()

    def groups(self, part: str) -> np.ndarray:
        """Patient ids of a part (for patient-grouped inner cross-validation)."""
        return self.metadata(part)["patient_id"].to_numpy()

    # ------------------------------------------------------------------ networks

    def model_inputs(self, part: str, records: slice | None = None) -> tuple[np.ndarray, ...]:
        """The model inputs of every record of ``part`` (of its ``records``, a slice of its
        rows, when given) in loader order, as its batches carry them: ``(signal [n, 12, T],)``
        or a hybrid's ``(signal, features [n, F])``."""
        self.setup()
        meta = self.metadata(part)
        meta = meta.iloc[records] if records is not None else meta
        signal = self.fitted.normalise_signal(np.asarray(self.signal_inputs[self.store.rows(meta["record_id"].tolist())]))
        return (signal,) if self.fitted.features != "scaled" else (signal, self._scaled_features(meta))

    def _scaled_features(self, part: pd.DataFrame) -> np.ndarray:
        return self.fitted.scale_features(self.feature_matrix(part))

    def _dataset(self, part: pd.DataFrame, train: bool) -> SignalDataset:
        self.setup()
        if train:
            if self._train_targets is None:
                self._train_targets = self.targets.training(part, lambda: self.feature_matrix(part))
            labels = self._train_targets
        else:
            labels = self.targets.evaluation(part)
        rows = self.store.rows(part["record_id"].tolist())
        signals = self.store.path if self.representation.signal == "window" else self.signal_inputs
        features = self._scaled_features(part) if self.fitted.features == "scaled" else None
        return SignalDataset(signals, rows, labels, self.fitted, features)

    def _loader(self, part: pd.DataFrame, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(loader_seed(self.seed, self.fold))
        return DataLoader(
            self._dataset(part, train=shuffle), batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
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
