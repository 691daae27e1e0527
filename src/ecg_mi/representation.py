"""The model's input contract: how windows of ECG in mV become what a model reads.

A :class:`Representation` (``conf/representation/<name>.yaml``) names what a model reads:

* ``signal``: ``window`` (the 10 s strip itself), ``median_beat`` (each strip's median beat,
  :mod:`ecg_mi.features.beats`) or none;
* ``features``: the 408 clinical features (:mod:`ecg_mi.features`) ``raw`` (the classical
  models impute and scale inside their own pipeline), ``scaled`` (a network that also reads them:
  training median and interquartile range, clipped to ±:data:`FEATURE_CLIP`) or none.

It is fitted on the training part (:meth:`Representation.fit`: per-lead mean and std of the
signal input, in mV; the features' median and IQR) and then turns windows ``[N, 12, L]`` mV at
the model's rate into model inputs in two steps: :meth:`~Representation.derive` — what needs no
fitted state (the median beat, the features), cached by the DataModule per record set — and
:meth:`~Representation.inputs`, the fitted normalisation, in float32. Training (the DataModule),
scoring (the packaged model) and explaining (Grad-CAM) call this one object; its state travels
in the package (:meth:`~Representation.state`), versioned by :data:`STATE_FORMAT`.

The input gate is part of the contract: :meth:`Representation.fit` also fits the gate's limits
on the training strips (:func:`ecg_mi.data.gate.fit_limits`: the amplitude band of each lead,
the rate and window), kept in the state as ``gate``; :attr:`Representation.gate_limits` gives
them to whoever scores (``predict.py``, the packaged model). A state of format 1 (before the
gate) reads back with the default limits of its rate and window
(:meth:`~ecg_mi.data.gate.GateLimits.for_model`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from ecg_mi.data.gate import GateLimits, fit_limits
from ecg_mi.data.windows import DEFAULT_WINDOW_S
from ecg_mi.errors import ConfigError, EcgMiError

log = logging.getLogger(__name__)
SIGNALS = ("window", "median_beat")
#: What :class:`Derived` computes from windows for a representation to read.
DERIVED = ("median_beat", "features")
FEATURE_MODES = ("raw", "scaled")
#: Version of :meth:`Representation.state`; bumped when its keys or meaning change
#: (2: the input gate's limits, ``gate``).
STATE_FORMAT = 2
#: The state formats :meth:`Representation.from_state` reads (1: no gate, default limits).
READABLE_STATE_FORMATS = (1, 2)
#: A scaled feature is clipped to this many interquartile ranges: one wild measurement must not
#: dominate a batch.
FEATURE_CLIP = 5.0
#: Records per chunk when the lead statistics stream over a memory-mapped array.
_CHUNK = 256


class Derived:
    """What the representations of one batch of windows ``x`` ``[N, 12, L]`` mV at ``fs`` Hz
    need (:data:`DERIVED`), computed once on first use and shared: every member of an ensemble
    reads the same median beats and the same 408 features. ``computed`` holds what is already
    known (e.g. computed by a scoring worker, :meth:`joined`)."""

    def __init__(self, x: np.ndarray, fs: float, computed: dict[str, np.ndarray] | None = None) -> None:
        self.x, self.fs = x, float(fs)
        self._cache: dict[str, Any] = dict(computed or {})
        #: Windows with fewer than 2 usable beats (scored on an all-zero median beat).
        self.beatless = 0

    def _get(self, key: str, compute) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def compute(self, keys: Iterable[str]) -> None:
        """Compute the :data:`DERIVED` ``keys`` not yet known (a scoring worker, ahead of the model)."""
        for key in keys:
            _ = self.median_beats if key == "median_beat" else self.features  # cached on first use

    @classmethod
    def joined(cls, parts: Sequence[Derived]) -> Derived:
        """One batch of several (the records of a scoring batch): windows and what every part
        computed, concatenated in order, and their beatless windows."""
        first = parts[0]
        keys = set.intersection(*(set(p._cache) for p in parts))
        computed = {k: np.concatenate([p._cache[k] for p in parts]) for k in keys}
        joined = cls(np.concatenate([p.x for p in parts]), first.fs, computed)
        joined.beatless = sum(p.beatless for p in parts)
        return joined

    def warn_beatless(self) -> None:
        """Log how many windows were scored on an all-zero median beat, if any."""
        if self.beatless:
            log.warning("%d of %d windows have fewer than 2 usable beats: scored on an all-zero median beat",
                        self.beatless, len(self.x))  # fmt: skip

    @property
    def median_beats(self) -> np.ndarray:
        """Median beats ``[N, 12, T]`` mV (all zero where a window has fewer than 2 beats,
        counted in :attr:`beatless`: such a window is scored, never silently)."""
        return self._get("median_beat", self._median_beats)

    def _median_beats(self) -> np.ndarray:
        from ecg_mi.features.beats import median_beats

        beats, self.beatless = median_beats(self.x, self.fs)
        return beats

    @property
    def features(self) -> np.ndarray:
        """The 408 features ``[N, 408]`` (NaN where unmeasurable)."""
        from ecg_mi.features import signal_features

        return self._get("features", lambda: signal_features(self.x, self.fs))

    def signal(self, kind: str) -> np.ndarray:
        """The signal input of ``kind`` (:data:`SIGNALS`), in mV."""
        return self.x if kind == "window" else self.median_beats


@dataclass
class Representation:
    """What a model reads and how it is normalised (module docstring); the fitted state is
    ``sample_rate`` (Hz), ``lead_mean``/``lead_std`` (mV, one per lead),
    ``feature_center``/``feature_scale`` (the features' units, one per feature) and ``gate``
    (the input gate's limits, :meth:`~ecg_mi.data.gate.GateLimits.state`)."""

    name: str
    signal: str | None = "window"
    features: str | None = None
    normalize: bool = True
    window_s: float = DEFAULT_WINDOW_S
    sample_rate: float | None = None
    lead_mean: list[float] | None = field(default=None, repr=False)
    lead_std: list[float] | None = field(default=None, repr=False)
    feature_center: list[float] | None = field(default=None, repr=False)
    feature_scale: list[float] | None = field(default=None, repr=False)
    gate: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.signal not in (*SIGNALS, None):
            raise ConfigError(f"representation.signal={self.signal!r}; choose one of {[*SIGNALS, None]}")
        if self.features not in (*FEATURE_MODES, None):
            raise ConfigError(f"representation.features={self.features!r}; choose one of {[*FEATURE_MODES, None]}")
        if self.signal is None and self.features is None:
            raise ConfigError(f"representation {self.name!r} reads neither a signal nor features")
        if self.signal is None and self.features == "scaled":
            raise ConfigError(f"representation {self.name!r}: scaled features are a network's second input; "
                              "a feature model reads them raw")  # fmt: skip

    # ------------------------------------------------------------------ what it is

    @property
    def for_networks(self) -> bool:
        """Whether a network reads it (a signal input); else a classical model (features only)."""
        return self.signal is not None

    @property
    def n_features(self) -> int:
        """Features a network reads beside the signal (0 when none)."""
        from ecg_mi.features import FEATURES
        from ecg_mi.features.extract import N_LEADS

        return N_LEADS * len(FEATURES) if self.features == "scaled" else 0

    @property
    def derived_keys(self) -> tuple[str, ...]:
        """What it reads of :class:`Derived` beyond the windows (:data:`DERIVED`)."""
        return tuple(k for k, used in zip(DERIVED, (self.signal == "median_beat", self.features is not None), strict=True) if used)

    def input_length(self, fs: float) -> int:
        """Samples of the signal input at ``fs`` Hz: a window, or a median beat."""
        if self.signal == "median_beat":
            from ecg_mi.features.beats import beat_length

            return beat_length(fs)
        return int(round(self.window_s * fs))

    # ------------------------------------------------------------------ fitting

    @property
    def fitted(self) -> bool:
        return self.sample_rate is not None

    def fit(self, sample_rate: float, signals: np.ndarray | None = None, rows: np.ndarray | None = None,
            features: np.ndarray | None = None, strips: np.ndarray | None = None) -> Representation:  # fmt: skip
        """A copy fitted on the training part: ``signals`` ``[N, 12, T]`` mV (the signal
        inputs, memory-mapped or not; ``rows`` the training rows), ``features`` ``[n, 408]``
        of the training records (NaN = unmeasured) and ``strips`` ``[N, 12, L]`` mV (the
        records' windows, rows as ``signals``), on which the input gate's limits are fitted
        (None: the default limits)."""
        state: dict[str, Any] = {"sample_rate": float(sample_rate)}
        if strips is not None:
            state["gate"] = fit_limits(strips, rows, sample_rate, self.window_s).state()
        if self.signal is not None:
            mean, std = lead_statistics(signals, rows) if self.normalize else (np.zeros(12), np.ones(12))
            state.update(lead_mean=[float(v) for v in mean], lead_std=[float(v) for v in std])
        if self.features == "scaled":
            center, scale = fit_scaling(features)
            state.update(feature_center=center.tolist(), feature_scale=scale.tolist())
        return replace(self, **state)

    @property
    def gate_limits(self) -> GateLimits:
        """The input gate's limits: fitted on the training strips, else the defaults of the
        model's rate and window."""
        self._require_fitted()
        if self.gate is not None:
            return GateLimits.from_state(self.gate)
        return GateLimits.for_model(self.sample_rate, self.window_s)

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise EcgMiError(f"representation {self.name!r} is not fitted: fit it on the training part first")

    # ------------------------------------------------------------------ transforming

    def derive(self, x: np.ndarray) -> Derived:
        """What :meth:`inputs` reads of windows ``x`` ``[N, 12, L]`` mV at the fitted rate."""
        self._require_fitted()
        return Derived(x, self.sample_rate)

    def normalise_signal(self, signal: np.ndarray) -> np.ndarray:
        """``(signal - mean) / std`` per lead, float32, for ``[..., 12, T]`` mV (one record or a
        batch): the arithmetic of every copy of the input, so training and scoring agree."""
        self._require_fitted()
        mean = np.asarray(self.lead_mean, dtype=np.float64).astype(np.float32)[:, None]
        std = np.asarray(self.lead_std, dtype=np.float64).astype(np.float32)[:, None]
        return np.ascontiguousarray((signal - mean) / std, dtype=np.float32)

    def scale_features(self, features: np.ndarray) -> np.ndarray:
        """Features ``[n, 408]`` minus the training median over the IQR, clipped, float32;
        unmeasured (NaN) at 0."""
        self._require_fitted()
        center = np.asarray(self.feature_center, dtype=np.float64)
        scale = np.asarray(self.feature_scale, dtype=np.float64)
        x = np.asarray(features, dtype=np.float64)
        z = (np.where(np.isfinite(x), x, center) - center) / scale
        return np.clip(z, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)

    def inputs(self, derived: Derived) -> tuple[np.ndarray, ...]:
        """The model inputs of a batch: ``(signal,)``, ``(signal, features)`` or ``(features,)``."""
        out: list[np.ndarray] = []
        if self.signal is not None:
            out.append(self.normalise_signal(derived.signal(self.signal)))
        if self.features == "scaled":
            out.append(self.scale_features(derived.features))
        elif self.features == "raw":
            out.append(derived.features)
        return tuple(out)

    def transform(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """:meth:`inputs` of :meth:`derive`: windows ``[N, 12, L]`` mV to model inputs."""
        return self.inputs(self.derive(x))

    def map_on_windows(self, maps: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Maps over the signal input ``[N, ..., T]`` (Grad-CAM) laid on the windows ``x``
        ``[N, 12, L]``: unchanged for windows; a median beat's map on every beat it was taken over."""
        if self.signal != "median_beat":
            return maps
        from ecg_mi.features.beats import maps_on_strips

        return maps_on_strips(maps, x, self.sample_rate)

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """The settings and fitted state as JSON-able data (:meth:`from_state` reads it back)."""
        self._require_fitted()
        return {"format": STATE_FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Representation:
        """The fitted representation of :meth:`state`; EcgMiError for a format this ecg-mi
        does not know (a package from a newer release, or a damaged one)."""
        state = dict(state)
        found = state.pop("format", None)
        if found not in READABLE_STATE_FORMATS:
            raise EcgMiError(f"representation state format {found!r}; this ecg-mi reads formats "
                             f"{', '.join(map(str, READABLE_STATE_FORMATS))}: install the ecg-mi that "
                             "packaged the model")  # fmt: skip
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(state) - known)
        if unknown:
            raise EcgMiError(f"representation state has unknown key(s) {unknown}")
        return cls(**state)


def lead_statistics(signals: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and std ``[12]`` (mV, float64) over ``signals[rows]`` ``[n, 12, T]``,
    streamed in chunks so a memory-mapped array is never loaded whole."""
    total = np.zeros(signals.shape[1], dtype=np.float64)
    squares = np.zeros(signals.shape[1], dtype=np.float64)
    for start in range(0, len(rows), _CHUNK):
        chunk = np.asarray(signals[np.sort(rows[start : start + _CHUNK])], dtype=np.float64)
        total += chunk.sum(axis=(0, 2))
        squares += (chunk**2).sum(axis=(0, 2))
    n = len(rows) * signals.shape[2]
    mean = total / n
    return mean, np.sqrt(np.maximum(squares / n - mean**2, 1e-12))


def fit_scaling(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(center, scale)`` ``[F]`` of ``features`` ``[N, F]`` (NaN = unmeasured): the median
    and the interquartile range per feature; 0 and 1 where never measured or constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        q1, center, q3 = np.nanpercentile(np.asarray(features, dtype=np.float64), [25, 50, 75], axis=0)
    spread = q3 - q1
    scale = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    return np.where(np.isfinite(center), center, 0.0), scale


__all__ = ["DERIVED", "FEATURE_CLIP", "READABLE_STATE_FORMATS", "SIGNALS", "STATE_FORMAT", "Derived", "Representation", "fit_scaling", "lead_statistics"]
