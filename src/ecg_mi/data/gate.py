"""The input gate: what a record must look like before a model scores it.

A model can only judge ECGs like the ones it was trained on. The gate refuses what it cannot
judge, before anything is scored, with :class:`~ecg_mi.errors.Refused` naming the check and
the value (``amplitude: lead V2 robust range 4200 mV > 24.1 mV (units or gain?)``):

=============  ========================================================================
check          refuses
=============  ========================================================================
file_size      a file (or a WFDB record's signal files) larger than ``max_file_mb``
samples        a header declaring more than ``max_samples`` samples (all signals
               together), or a signal file shorter than its header says
checksum       a WFDB signal whose samples do not add up to its header's checksum
sample_rate    a rate that is not a positive number, below ``min_fs`` or above ``max_fs``,
               or that disagrees with the size of the signal file its header describes
duration       shorter than the model's window (``min_duration_s``) or longer than
               ``max_duration_s``
finite         NaN or infinite samples
amplitude      a lead's robust range above its ``max_range_mv``, or the largest lead's
               below ``min_range_mv``: units or gain wrong (V or µV read as mV, ×1000,
               a DICOM scaled ×10,000)
flat           a lead whose robust range is below ``flat_mv`` (lead off)
clipped        a lead sitting at its maximum, or at its minimum, in at least
               ``max_clipped_fraction`` of its samples (a saturated amplifier)
=============  ========================================================================

The *robust range* of a lead is its 99th minus its 1st percentile (mV): a spike or a pacing
artefact does not move it. :data:`CHECKS` lists the checks in the order they run.

**When.** The resource guards run on the file before its samples are read
(:func:`check_files`, and :func:`check_declared` on what its header declares — samples, rate,
duration), called by :func:`ecg_mi.data.readers.read_ecg`: a hostile header cannot make a
reader or the resampler allocate gigabytes. The other checks run on the Record as read, at its
own rate and before it is resampled (:func:`check_record`), and on the model's windows
(:func:`check_windows`) — the check the packaged model applies itself, so a served request
meets the same gate.

**Limits** (:class:`GateLimits`) are fitted on the training part (:func:`fit_limits`, called
by :meth:`ecg_mi.representation.Representation.fit`) and travel in the package with the
representation's state: each lead's largest robust range in the training records times
:data:`AMPLITUDE_MARGIN` (never below :data:`PLAUSIBLE_RANGE_MV`'s upper end), the smallest
largest-lead range over the margin (never above its lower end); the rate and duration follow
the model's rate and window (:meth:`GateLimits.for_model`). The resource caps, flat and
clipped limits are documented defaults. A package from before the gate (representation state
format 1) gets :meth:`GateLimits.for_model`. ``predict.py`` and ``evaluate.py external=true``
override any limit with ``gate.<key>=`` (``conf/gate/default.yaml``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ecg_mi.data.record import STANDARD_LEADS, Record, nonfinite
from ecg_mi.data.windows import DEFAULT_PAD_TOLERANCE_S, DEFAULT_WINDOW_S
from ecg_mi.errors import ConfigError, EcgMiError, Refused

#: The checks, in the order they run (the reason of a refused record starts with one).
CHECKS = (
    "file_size",
    "samples",
    "checksum",
    "sample_rate",
    "duration",
    "finite",
    "amplitude",
    "flat",
    "clipped",
)
#: Percentiles (%) whose difference is a lead's robust range.
ROBUST_PERCENTILES = (1.0, 99.0)
#: The fitted amplitude band is the training records' extremes widened by this factor.
AMPLITUDE_MARGIN = 2.0
#: Robust ranges (mV) no fitted band excludes: a model trained on a narrow set (synthetic, a few
#: hundred records) must still take a real ECG — PTB-XL's widest lead reaches 12 mV (V2, high
#: voltage), which 2x the largest of 164 training records (10 mV) refused; a units or gain error
#: is 100-10,000x off.
PLAUSIBLE_RANGE_MV = (0.3, 20.0)
#: A lead's largest robust range (mV) a package without fitted limits accepts (PTB-XL's widest
#: lead, V2, reaches 12 mV at 100 Hz).
DEFAULT_MAX_RANGE_MV = 25.0
#: The lowest input rate (Hz) for any model, and the lowest as a fraction of the model's rate:
#: below it the input lacks most of the band the model was trained on (a 500 Hz model takes
#: PTB-XL's 100 Hz files, whose band holds the Q waves, ST segments and T waves of an MI).
MIN_FS, MIN_RATE_FRACTION = 50.0, 0.2
#: Training records per chunk when the limits are fitted over a memory-mapped array.
_CHUNK = 256
_LOWER_BOUNDS = frozenset({"min_fs", "min_duration_s", "min_range_mv", "flat_mv"})


@dataclass(frozen=True)
class GateLimits:
    """The limits of the gate (module docstring); units in the names.

    Attributes:
        max_file_mb: largest file, or sum of a WFDB record's signal files (10^6 bytes).
        max_samples: most samples a header may declare, all signals together.
        min_fs, max_fs: plausible sampling rates (Hz).
        min_duration_s, max_duration_s: plausible durations (s); the minimum is the model's
            window less the window policy's padding tolerance.
        min_range_mv: the largest lead's robust range must reach it (mV).
        max_range_mv: each lead's robust range must stay under it (mV, standard lead order).
        flat_mv: a lead's robust range must reach it (mV).
        max_clipped_fraction: share of a lead's samples at its maximum (or its minimum) that
            marks it saturated.
        fitted_on: training records the amplitude band was fitted on (0: defaults).
    """

    max_file_mb: float = 32.0
    max_samples: int = 8_000_000
    min_fs: float = MIN_FS
    max_fs: float = 20_000.0
    min_duration_s: float = DEFAULT_WINDOW_S - DEFAULT_PAD_TOLERANCE_S
    max_duration_s: float = 600.0
    min_range_mv: float = PLAUSIBLE_RANGE_MV[0]
    max_range_mv: tuple[float, ...] = (DEFAULT_MAX_RANGE_MV,) * len(STANDARD_LEADS)
    flat_mv: float = 0.02
    max_clipped_fraction: float = 0.1
    fitted_on: int = 0

    @classmethod
    def for_model(cls, sample_rate: float, window_s: float = DEFAULT_WINDOW_S) -> GateLimits:
        """The default limits of a model reading ``window_s`` windows at ``sample_rate`` Hz."""
        return cls(min_fs=max(MIN_FS, MIN_RATE_FRACTION * float(sample_rate)),
                   min_duration_s=float(window_s) - DEFAULT_PAD_TOLERANCE_S)  # fmt: skip

    def state(self) -> dict[str, Any]:
        """The limits as JSON-able data (:meth:`from_state` reads them back)."""
        return {**asdict(self), "max_range_mv": list(self.max_range_mv)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> GateLimits:
        """The limits of :meth:`state`; EcgMiError for keys this ecg-mi does not know."""
        unknown = sorted(set(state) - {f.name for f in fields(cls)})
        if unknown:
            raise EcgMiError(f"input gate state has unknown key(s) {unknown}")
        return cls(
            **{
                **state,
                "max_range_mv": tuple(
                    float(v) for v in state.get("max_range_mv", cls.max_range_mv)
                ),
            }
        )

    def override(self, overrides: Mapping[str, Any]) -> GateLimits:
        """These limits with ``overrides`` (``gate.<key>=`` of a command; None keeps the
        package's): ConfigError for an unknown key or a value that is not a positive number
        (``max_range_mv``: one number for every lead, or 12)."""
        known = {f.name for f in fields(self)} - {"fitted_on"}
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in known:
                raise ConfigError(
                    f"gate.{key}: unknown; the input gate's limits are {sorted(known)}"
                )
            values = (
                list(value)
                if isinstance(value, Sequence) and not isinstance(value, str)
                else [value]
            )
            if key == "max_range_mv" and len(values) == 1:
                values *= len(STANDARD_LEADS)
            if (len(values) != (len(STANDARD_LEADS) if key == "max_range_mv" else 1)
                    or not all(_positive_number(v) for v in values)):  # fmt: skip
                raise ConfigError(f"gate.{key}={value!r}: must be a positive number"
                                  + (" (or 12, one per lead)" if key == "max_range_mv" else ""))  # fmt: skip
            if key == "max_range_mv":
                changes[key] = tuple(float(v) for v in values)
            else:
                changes[key] = int(values[0]) if key == "max_samples" else float(values[0])
        return replace(self, **changes)


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def strictest(limits: Sequence[GateLimits]) -> GateLimits:
    """What every one of ``limits`` accepts (an ensemble: each member must be able to judge
    the record): the largest lower bound and the smallest upper bound of each limit."""
    if not limits:
        raise ValueError("strictest() needs at least one GateLimits")
    merged: dict[str, Any] = {}
    for f in fields(GateLimits):
        values = [getattr(lim, f.name) for lim in limits]
        if f.name == "max_range_mv":
            merged[f.name] = tuple(float(v) for v in np.min(np.array(values), axis=0))
        else:
            merged[f.name] = max(values) if f.name in _LOWER_BOUNDS else min(values)
    return GateLimits(**merged)


# ---------------------------------------------------------------------------- before reading


@dataclass(frozen=True)
class Declared:
    """What a file's header declares before its samples are read; None where it does not say.

    Attributes:
        n_signals: signals (leads) stored.
        n_samples: samples per signal.
        fs: sampling rate (Hz).
    """

    n_signals: int | None = None
    n_samples: int | None = None
    fs: float | None = None


def check_files(files: Sequence[Path], limits: GateLimits, source: str) -> None:
    """Refused (``file_size``) when ``files`` (a file, or a WFDB record's header and signal
    files) together are larger than ``limits.max_file_mb``."""
    size = sum(Path(f).stat().st_size for f in files if Path(f).is_file())
    if size > limits.max_file_mb * 1e6:
        what = f"{len(files)} files" if len(files) > 1 else Path(files[0]).name
        raise Refused("file_size", f"{what}: {size / 1e6:.1f} MB > {limits.max_file_mb:g} MB (gate.max_file_mb)",
                      source)  # fmt: skip


def check_declared(declared: Declared, limits: GateLimits, source: str) -> None:
    """Refuse, before reading, a header whose rate is implausible (``sample_rate``), whose
    sample count exceeds ``max_samples`` (``samples``) or whose duration exceeds
    ``max_duration_s`` (``duration``)."""
    if declared.fs is not None:
        check_rate(declared.fs, limits, source)
    if declared.n_samples is not None and declared.n_signals is not None:
        total = int(declared.n_samples) * int(declared.n_signals)
        if total > limits.max_samples:
            raise Refused("samples", f"the header declares {declared.n_signals} × {declared.n_samples:,} samples "
                          f"> {limits.max_samples:,} (gate.max_samples)", source)  # fmt: skip
    if declared.fs is not None and declared.n_samples is not None:
        duration = declared.n_samples / declared.fs
        if duration > limits.max_duration_s:
            raise Refused("duration", f"the header declares {duration:,.0f} s > {limits.max_duration_s:g} s "
                          "(gate.max_duration_s)", source)  # fmt: skip


# ---------------------------------------------------------------------------- the record


def positive_rate(fs: Any, source: str | None = None) -> float:
    """``fs`` (Hz) as a float; Refused (``sample_rate``) unless a positive finite number (what
    any reader requires; :func:`check_rate` adds the plausible range)."""
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise Refused("sample_rate", f"fs={fs!r} is not a number", source) from None
    if not math.isfinite(value) or value <= 0:
        raise Refused("sample_rate", f"fs={fs!r} Hz is not a positive number", source)
    return value


def check_rate(fs: Any, limits: GateLimits, source: str | None = None) -> float:
    """``fs`` (Hz) as a float; Refused (``sample_rate``) unless a plausible positive number."""
    value = positive_rate(fs, source)
    if value < limits.min_fs:
        raise Refused("sample_rate", f"fs={value:g} Hz < {limits.min_fs:g} Hz (too coarse for the model, "
                      "or a mislabelled rate)", source)  # fmt: skip
    if value > limits.max_fs:
        raise Refused(
            "sample_rate", f"fs={value:g} Hz > {limits.max_fs:g} Hz (a mislabelled rate?)", source
        )
    return value


def check_duration(
    n_samples: int, fs: float, limits: GateLimits, source: str | None = None
) -> None:
    """Refused (``duration``) unless ``n_samples`` at ``fs`` Hz last between the limits."""
    duration = n_samples / fs
    if duration < limits.min_duration_s:
        raise Refused("duration", f"{duration:.2f} s < {limits.min_duration_s:g} s (the model reads "
                      f"{limits.min_duration_s + DEFAULT_PAD_TOLERANCE_S:g} s windows)", source)  # fmt: skip
    if duration > limits.max_duration_s:
        raise Refused(
            "duration",
            f"{duration:,.0f} s > {limits.max_duration_s:g} s (gate.max_duration_s)",
            source,
        )


def robust_ranges(x: np.ndarray) -> np.ndarray:
    """The robust range (mV) of every lead of ``x`` ``[..., 12, L]`` mV: ``[..., 12]``
    (percentiles interpolated linearly, as ``np.percentile``; one partition, twice as fast)."""
    n = x.shape[-1]
    position = (n - 1) * np.asarray(ROBUST_PERCENTILES) / 100.0
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, n - 1)
    ordered = np.partition(x, np.unique(np.r_[below, above]), axis=-1)
    share = position - below
    quantiles = ordered[..., below].astype(np.float64) * (1 - share) + ordered[..., above] * share
    return quantiles[..., 1] - quantiles[..., 0]


def clipped_fractions(x: np.ndarray) -> np.ndarray:
    """Share of each lead's samples at its maximum, or at its minimum if more: ``[..., 12]``."""
    at_max = (x == x.max(axis=-1, keepdims=True)).mean(axis=-1)
    at_min = (x == x.min(axis=-1, keepdims=True)).mean(axis=-1)
    return np.maximum(at_max, at_min)


def _leads(mask: np.ndarray) -> str:
    return ", ".join(STANDARD_LEADS[i] for i in np.flatnonzero(mask))


def signal_problem(x: np.ndarray, limits: GateLimits) -> tuple[int, str, str] | None:
    """The first signal of ``x`` ``[N, 12, L]`` mV that fails a check, as ``(index, check,
    detail)`` (checks ``finite``, ``amplitude``, ``flat``, ``clipped``, in that order); None
    when all pass."""
    bad = ~np.isfinite(x).all(axis=(-2, -1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        return i, "finite", nonfinite(x[i])
    ranges = robust_ranges(x)
    ceiling = np.asarray(limits.max_range_mv, dtype=np.float64)
    fractions = clipped_fractions(x)
    failing = {
        "low": ranges.max(axis=-1) < limits.min_range_mv,
        "high": (ranges > ceiling).any(axis=-1),
        "flat": (ranges < limits.flat_mv).any(axis=-1),
        "clipped": (fractions >= limits.max_clipped_fraction).any(axis=-1),
    }
    failed = np.flatnonzero(np.any(list(failing.values()), axis=0))
    if not failed.size:
        return None
    i = int(failed[0])
    r = ranges[i]
    if failing["low"][i]:
        return i, "amplitude", (f"largest lead robust range {r.max():.3g} mV < {limits.min_range_mv:g} mV "
                                "(units or gain? every lead flat?)")  # fmt: skip
    if failing["high"][i]:
        k = int(np.argmax(r / ceiling))
        return (
            i,
            "amplitude",
            f"lead {STANDARD_LEADS[k]} robust range {r[k]:.4g} mV > {ceiling[k]:.3g} mV (units or gain?)",
        )
    if failing["flat"][i]:
        flat = r < limits.flat_mv
        return (
            i,
            "flat",
            f"lead(s) {_leads(flat)} robust range {r[flat].min():.3g} mV < {limits.flat_mv:g} mV (lead off?)",
        )
    k = int(np.argmax(fractions[i]))
    return i, "clipped", (f"lead {STANDARD_LEADS[k]} sits at its extreme value in {fractions[i, k]:.0%} of its samples "
                          f"≥ {limits.max_clipped_fraction:.0%} (saturated?)")  # fmt: skip


def check_record(record: Record, limits: GateLimits) -> None:
    """Refuse ``record`` as read (its own rate, before resampling): ``sample_rate``,
    ``duration``, then the signal checks. Raises Refused naming the record's source file."""
    source = str(record.metadata.get("source_path", record.record_id))
    fs = check_rate(record.fs, limits, source)
    check_duration(record.signal.shape[1], fs, limits, source)
    problem = signal_problem(record.signal[None], limits)
    if problem is not None:
        raise Refused(problem[1], problem[2], source)


def check_windows(x: np.ndarray, limits: GateLimits, source: str | None = None) -> None:
    """Refuse model windows ``x`` ``[N, 12, L]`` mV (the packaged model's own check): the
    reason names the window (counted from 0) and the check."""
    problem = signal_problem(x, limits)
    if problem is not None:
        i, check, detail = problem
        raise Refused(check, f"window {i}: {detail}", source)


# ---------------------------------------------------------------------------- fitting


def fit_limits(strips: np.ndarray, rows: np.ndarray, sample_rate: float,
               window_s: float = DEFAULT_WINDOW_S) -> GateLimits:  # fmt: skip
    """The limits of a model reading ``window_s`` windows at ``sample_rate`` Hz, its
    amplitude band fitted on the training strips ``strips[rows]`` ``[n, 12, L]`` mV
    (memory-mapped or not; streamed in chunks): see the module docstring."""
    rows = np.sort(np.asarray(rows))
    ranges = np.concatenate([robust_ranges(np.asarray(strips[rows[i : i + _CHUNK]], dtype=np.float32))
                             for i in range(0, len(rows), _CHUNK)])  # fmt: skip
    ceiling = np.maximum(AMPLITUDE_MARGIN * ranges.max(axis=0), PLAUSIBLE_RANGE_MV[1])
    # The 1st percentile, not the minimum: one flat training record must not switch the check off.
    floor = min(
        float(np.percentile(ranges.max(axis=1), 1)) / AMPLITUDE_MARGIN, PLAUSIBLE_RANGE_MV[0]
    )
    return replace(GateLimits.for_model(sample_rate, window_s), min_range_mv=round(floor, 4),
                   max_range_mv=tuple(round(float(c), 3) for c in ceiling), fitted_on=len(rows))  # fmt: skip


__all__ = ["AMPLITUDE_MARGIN", "CHECKS", "PLAUSIBLE_RANGE_MV", "Declared", "GateLimits", "check_declared",
           "check_duration", "check_files", "check_rate", "positive_rate", "check_record", "check_windows", "clipped_fractions",
           "fit_limits", "robust_ranges", "signal_problem", "strictest"]  # fmt: skip
