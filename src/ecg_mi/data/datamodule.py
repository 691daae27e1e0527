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
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, Dataset

from ecg_mi.data.beats import beat_length, check_input_kind, load_or_compute_median_beats
from ecg_mi.data.cohort import FoldFile, fold_file_for, train_val_split
from ecg_mi.data.columns import AUX_PREFIX
from ecg_mi.data.resample import check_sample_rate
from ecg_mi.data.store import SignalStore, load_or_build
from ecg_mi.data.teacher import check_teacher, cross_fitted_probabilities, soft_targets
from ecg_mi.errors import ConfigError, DataError, InputError
from ecg_mi.features.scaling import apply_scaling, fit_scaling
from ecg_mi.paths import default_cache_dir

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
    """Items ``(x [12, L] float32, y float32, row)`` from a memory-mapped cache (``signals``
    a path) or from an array in memory (derived inputs such as median beats, small). With
    ``clinical`` (``[n, 408]`` scaled features, in ``rows`` order) ``x`` is ``(signal, features)``.

    The memmap is opened lazily in each worker process, so workers share the page cache
    instead of receiving a pickled copy of the array.
    """

    def __init__(
        self,
        signals: Path | np.ndarray,
        rows: np.ndarray,
        labels: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        clinical: np.ndarray | None = None,
    ) -> None:
        self.array_path = signals if isinstance(signals, Path) else None
        self.rows = rows
        self.labels = labels.astype(np.float32)
        self.mean = mean.astype(np.float32)
        self.std = std.astype(np.float32)
        self.clinical = clinical
        self._signals: np.ndarray | None = None if self.array_path else signals

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor, int]:
        """``(x, y, i)``: ``x`` ``[12, L]`` (or ``([12, L], [408])``), ``y`` a scalar, or
        ``[1 + K]`` with auxiliary targets."""
        if self._signals is None:
            self._signals = np.load(self.array_path, mmap_mode="r")
        x = torch.from_numpy(np.ascontiguousarray((self._signals[self.rows[i]] - self.mean) / self.std, dtype=np.float32))
        if self.clinical is not None:
            x = (x, torch.from_numpy(self.clinical[i]))
        return x, torch.tensor(self.labels[i]), i

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_signals": None} if self.array_path else dict(self.__dict__)


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
        n_folds, cohort, val_fraction, skip_missing, fold_file, seed, train_pool, also_at_rate: see
            :func:`prepare_fold`.
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
        train_pool: str = "cohort",
        also_at_rate: int | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.sample_rate = check_sample_rate(sample_rate)
        self.fold = fold
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.split = prepare_fold(source, fold, self.sample_rate, n_folds, cohort, val_fraction,
                                  skip_missing, self.cache_dir, fold_file, seed, train_pool, also_at_rate)  # fmt: skip
        self._feature_table = None

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


class SignalDataModule(FoldDataModule):
    """Fold-split ECG tensors ``[B, 12, L]`` for one outer fold.

    Args (besides :class:`FoldDataModule`'s):
        batch_size, num_workers, pin_memory: DataLoader settings.
        normalize: per-lead standardisation fitted on the training part only.
        aux_targets: names of the source's ``aux_<NAME>`` columns served as extra targets of
            the *training* batches (``y`` ``[B, 1 + K]``, the MI label first); validation and
            test batches keep ``y`` ``[B]``, so selection and scores concern MI alone.
        input_kind: ``signal`` serves the 10 s strips; ``median_beat`` each strip's median beat
            ``[12, T]`` (:mod:`ecg_mi.data.beats`; the network asks, ``input_kind`` of its class).
        teacher: ``{estimator, weight, folds}`` (``data.teacher``; ``estimator`` a model config): the training batches' MI
            target becomes ``(1 - weight) * label + weight * P(MI)`` of that feature model, cross-fitted
            on the training part (:mod:`ecg_mi.data.teacher`); None = the labels.
        clinical: also serve each record's 408 features, scaled with the training part's
            median and interquartile range (:mod:`ecg_mi.features.scaling`; a hybrid network
            asks, ``clinical_features`` of its class): ``x`` becomes ``(signal, features)``.
    """

    def __init__(
        self,
        source,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        normalize: bool = True,
        aux_targets: list[str] | tuple[str, ...] = (),
        input_kind: str = "signal",
        teacher: dict[str, Any] | None = None,
        clinical: bool = False,
        **fold_kwargs: Any,
    ) -> None:
        super().__init__(source, **fold_kwargs)
        self.clinical = bool(clinical)
        self.clinical_scaling: tuple[np.ndarray, np.ndarray] | None = None  # (center, scale) [408]
        self.input_kind = check_input_kind(input_kind)
        self.teacher = check_teacher(teacher)
        self.train_targets: np.ndarray | None = None  # the teacher's soft MI targets (training part)
        self.aux_columns = [f"{AUX_PREFIX}{name}" for name in aux_targets]
        offered = [c for c in self.split.train.columns if c.startswith(AUX_PREFIX)]
        absent = [c for c in self.aux_columns if c not in offered]
        if absent:
            names = [c.removeprefix(AUX_PREFIX) for c in offered]
            raise ConfigError(f"model.aux_targets: {[c.removeprefix(AUX_PREFIX) for c in absent]} not offered "
                              f"by data source {getattr(source, 'name', source)!r} (it offers {names})")  # fmt: skip
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.normalize = normalize
        self.store: SignalStore | None = None
        self.beats: np.ndarray | None = None  # median beats of the store's rows (median_beat)
        self.n_without_beats = 0
        self.mean = self.std = None

    def setup(self, stage: str | None = None) -> None:
        if self.store is not None:
            return
        self.store = load_or_build(
            self.source, self.cohort_rows(), self.sample_rate, self.cache_dir
        )
        if self.input_kind == "median_beat":
            self.beats, self.n_without_beats = load_or_compute_median_beats(self.store, self.cache_dir)
            if self.n_without_beats:
                log.warning("%d of %d records have fewer than 2 usable beats: their median beat is all zero",
                            self.n_without_beats, len(self.beats))  # fmt: skip
        if self.teacher:
            self.train_targets = self._teacher_targets()
        if self.clinical:
            self.clinical_scaling = fit_scaling(self.feature_matrix(self.split.train))
        train_rows = self.store.rows(self.split.train["record_id"].tolist())
        if self.normalize:
            self.mean, self.std = lead_statistics(self.inputs, train_rows)
        else:
            self.mean, self.std = np.zeros((12, 1)), np.ones((12, 1))

    def clinical_inputs(self, part: pd.DataFrame) -> np.ndarray | None:
        """``part``'s scaled features ``[n, 408]`` float32 for a hybrid network; None otherwise."""
        if not self.clinical:
            return None
        self.setup()
        return apply_scaling(self.feature_matrix(part), *self.clinical_scaling)

    def _teacher_targets(self) -> np.ndarray:
        train = self.split.train
        labels = train["label"].to_numpy()
        probabilities = cross_fitted_probabilities(
            self.teacher["model"], self.feature_matrix(train), labels, train["patient_id"].to_numpy(),
            self.teacher["folds"],
        )  # fmt: skip
        log.info("teacher %s: cross-fitted AUC %.3f on the %d training records (weight %.2f)", self.teacher["model"].model_name,
                 roc_auc_score(labels, probabilities), len(labels), self.teacher["weight"])  # fmt: skip
        return soft_targets(labels, probabilities, self.teacher["weight"])

    @property
    def inputs(self) -> np.ndarray:
        """The model inputs ``[N, 12, L]`` (mV) in the store's row order: the strips, or their
        median beats."""
        if self.store is None:
            self.setup()
        return self.store.signals if self.beats is None else self.beats

    def quality(self) -> dict[str, int]:
        """Counts of suspicious but kept records (flat, duplicated signals; with median-beat
        input, strips without usable beats), to log."""
        self.setup()
        counts = self.store.quality()
        if self.input_kind == "median_beat":
            counts["n_records_without_beats"] = self.n_without_beats
        return counts

    @property
    def input_length(self) -> int:
        """Samples per model input: a 10 s strip, or a median beat."""
        if self.input_kind == "median_beat":
            return beat_length(self.sample_rate)
        return int(round(10.0 * self.sample_rate))

    def _dataset(self, part: pd.DataFrame, targets: list[str], train: bool = False) -> SignalDataset:
        if self.store is None:
            self.setup()
        rows = self.store.rows(part["record_id"].tolist())
        labels = part[targets].to_numpy(np.float64, copy=True)
        if train and self.train_targets is not None:
            labels[:, 0] = self.train_targets  # the teacher's soft MI targets
        labels = labels if len(targets) > 1 else labels[:, 0]
        signals = self.store.path if self.beats is None else self.beats
        return SignalDataset(signals, rows, labels, self.mean, self.std, self.clinical_inputs(part))

    def _loader(self, part: pd.DataFrame, shuffle: bool) -> DataLoader:
        # Only the training batches carry the auxiliary targets (training signal, not selection).
        targets = ["label", *self.aux_columns] if shuffle else ["label"]
        generator = torch.Generator().manual_seed(loader_seed(self.seed, self.fold))
        return DataLoader(
            self._dataset(part, targets, train=shuffle), batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
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

    def setup(self, stage: str | None = None) -> None:
        self.feature_table  # noqa: B018  (computed or read from its cache here, not mid-fit)

    def quality(self) -> dict[str, int]:
        """Counts of suspicious but kept records (flat, duplicated signals), to log."""
        return dict(self.feature_table.quality)

    def arrays(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X [n, 408] float32 with NaN for unmeasurable features, y [n])`` of a part."""
        meta = self.metadata(part)
        return self.feature_matrix(meta), meta["label"].to_numpy()

    def groups(self, part: str) -> np.ndarray:
        """Patient ids of a part (for patient-grouped inner cross-validation)."""
        return self.metadata(part)["patient_id"].to_numpy()
