"""Command-line helpers shared by the entry scripts: one-line errors and clean stops on signals.

A stop request (SIGTERM from ``kill``, SLURM or a launcher; SIGINT from Ctrl-C) raises
:class:`Terminated` in the main thread. It is a ``BaseException`` — not an error of the run — so
:func:`ecg_mi.tracking.mlflow_run` marks the run in progress KILLED, Lightning tears down without
its own "graceful shutdown" (which would exit 1, or 0 for SIGTERM), Hydra's multirun stops instead
of going on with the next job, and the process exits with the shell's convention ``128 + signal``
(143 for SIGTERM, 130 for SIGINT).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from ecg_mi.errors import EcgMiError

EXIT_USER_ERROR = 2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Terminated(SystemExit):
    """The process was asked to stop by signal ``signum``.

    A :class:`SystemExit` whose code is ``128 + signum``: wherever it ends up uncaught (inside a
    job, between two jobs of a sweep, in Hydra's set-up) the interpreter exits with that code
    and no traceback.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


_received: list[int] = []  # signals already turned into Terminated, in this process
_held: list[int] = []  # signals that arrived inside stop_signals_held(), raised at its end
_holding = [0]  # depth of nested stop_signals_held() blocks (main thread)


def _stop(signum: int, frame: FrameType | None) -> None:
    """Signal handler: raise :class:`Terminated` once; a repeated signal only says it is
    already stopping, so the clean-up (ending the MLflow run as KILLED) is not cut short.
    Inside :func:`stop_signals_held` the signal is only noted, and raised when the block ends."""
    name = signal.Signals(signum).name
    if _received:
        os.write(2, f"{name} again: already stopping (SIGKILL forces it)\n".encode())
        return
    if _holding[0]:
        _held.append(signum)
        return
    _received.append(signum)
    # os.write, not print: a handler may interrupt a print to stderr (re-entrant call).
    os.write(2, f"error: stopped by {name}; the run in progress is marked KILLED\n".encode())
    raise Terminated(signum)


def stop_requested() -> bool:
    """Whether this process was asked to stop by SIGTERM/SIGINT (see :func:`_stop`)."""
    return bool(_received)


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold a stop signal that arrives inside the block until the block ends, then stop as
    usual. For writes to the tracking store: raised half-way through a SQLite transaction,
    :class:`Terminated` can leave the database locked, and the clean-up that marks the run
    KILLED then waits on that lock (MLflow's busy timeout is 20 s a write). Main thread only:
    Python runs signal handlers there, so other threads' blocks hold nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _holding[0] += 1
    try:
        yield
    finally:  # a held stop request wins over an error of the write itself
        _holding[0] -= 1
        if not _holding[0] and _held:
            signum = _held[0]
            _held.clear()
            _stop(signum, None)


def install_signal_handlers() -> None:
    """Make SIGTERM and SIGINT raise :class:`Terminated` in this process (main thread only:
    Python delivers signals there; a launcher's worker thread keeps the handlers it has)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not _stop:
            signal.signal(signum, _stop)


def refuse_renamed_arguments(renamed: dict[str, str], argv: list[str] | None = None) -> None:
    """Exit 2 with one line when a command-line argument starts with a key of ``renamed``
    (an argument the command no longer takes), naming what to pass instead. Hydra's own message
    for such an argument ("Could not override 'model'") would not say it."""
    for arg in sys.argv[1:] if argv is None else argv:
        for old, new in renamed.items():
            if arg == old or (old.endswith("=") and arg.startswith(old)):
                print(f"error: {arg}: pass {new} instead", file=sys.stderr)
                raise SystemExit(EXIT_USER_ERROR)


@contextlib.contextmanager
def report_errors() -> Iterator[None]:
    """Turn an :class:`EcgMiError` into one ``error: …`` line on stderr and exit code 2.

    Also installs the stop-signal handlers, so jobs run by a launcher in worker processes
    (joblib, submitit) end their run KILLED on SIGTERM like a job in the entry process.
    """
    install_signal_handlers()
    try:
        yield
    except EcgMiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
