"""Stopping a run cleanly: a signal (SIGTERM, SIGINT, SIGUSR1) or a time limit asks the training
loop to stop at its next iteration boundary, where it writes a checkpoint and raises ``RunStopped``.

Both are one mechanism: ``StopRequest.due`` is asked before every iteration (engine/trainer.py).
A signal only sets a flag (the handler does nothing else), so the current iteration always
finishes; the CLI prints ``RunStopped`` as one line and exits with 128 + the signal (0 for a time
limit). Handlers are installed only by whoever asks (the CLI, a worker process), never on import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
# a second Ctrl-C this long after the first aborts at once (a stop may wait for an evaluation)
ABORT_AFTER = 2.0

_received: list[tuple[int, float]] = []  # (signal, time) of every stop signal of this process
_forward: list[Callable[[], Iterable[int]]] = []  # PIDs that get each stop signal too


class RunStopped(Exception):
    """Training stopped at an iteration boundary with a checkpoint written; it can be resumed.

    ``iteration`` None: stopped before the run started (nothing written). ``{resume}`` in the
    hint names the way to continue: ``resume=True`` in ``str()`` (the Python API's parameter),
    ``--resume`` in ``for_cli()``.
    """

    def __init__(
        self,
        iteration: int | None,
        total: int | None,
        reason: str,
        signum: int | None = None,
        hint: str = "resume with {resume}",
        where: str = "",
    ) -> None:
        self.iteration, self.total, self.reason, self.signum = iteration, total, reason, signum
        self.hint, self.where = hint, where
        super().__init__(reason)

    def _render(self, resume: str) -> str:
        where = f"{self.where} " if self.where else ""
        if self.iteration is None:
            progress = "before it started"
        else:
            progress = f"at iteration {self.iteration} of {self.total}"
        hint = self.hint.replace("{resume}", resume)
        return f"{where}stopped {progress} {self.reason}; {hint}"

    def __str__(self) -> str:
        """'stopped at iteration 120 of 400 by SIGTERM; resume with resume=True'."""
        return self._render("resume=True")

    def for_cli(self) -> str:
        """'stopped at iteration 120 of 400 by SIGTERM; resume with --resume'."""
        return self._render("--resume")

    @property
    def exit_code(self) -> int:
        """128 + the signal (the shell's convention for a death by signal), or 0 for a time limit."""
        return 128 + self.signum if self.signum is not None else 0

    def __reduce__(self):  # picklable, so that a worker process can report it
        return (
            RunStopped,
            (self.iteration, self.total, self.reason, self.signum, self.hint, self.where),
        )


def signal_name(signum: int) -> str:
    """'SIGTERM' for 15."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def received() -> int | None:
    """The first stop signal this process received (while handlers were installed), if any."""
    return _received[0][0] if _received else None


def _handler(signum: int, frame) -> None:
    now = time.monotonic()
    for pids in list(_forward):  # the workers stop too (they might not share our process group)
        for pid in pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
    first_int = next((t for s, t in _received if s == signal.SIGINT), None)
    _received.append((signum, now))
    if signum == signal.SIGINT and first_int is not None and now - first_int > ABORT_AFTER:
        raise KeyboardInterrupt  # Ctrl-C twice: do not wait for the boundary


def install_handlers() -> None:
    """Stop signals set the flag from now on, for the life of this process (worker processes)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _handler)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM/SIGINT/SIGUSR1 ask for a clean stop instead of killing the process.

    Only in the main thread (Python's rule for handlers); elsewhere the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    reset()
    install_handlers()
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def forward_signals(pids: Callable[[], Iterable[int]]) -> Iterator[None]:
    """Within the block, every stop signal this process receives is sent to ``pids()`` as well."""
    _forward.append(pids)
    try:
        yield
    finally:
        _forward.remove(pids)


def process_start() -> float:
    """When this process started (``time.time()`` seconds; Linux /proc, else now), so that a
    command's --time-limit counts its start-up and imports too."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


def reset() -> None:
    """Forget received signals (tests; a long-lived process that handled a stop)."""
    _received.clear()


@dataclass
class StopRequest:
    """When training must stop: a stop signal received, or a deadline (``time.time()`` seconds)
    that the next iteration and the checkpoint after it would pass."""

    deadline: float | None = None
    time_limit_minutes: float | None = None  # for the message

    @classmethod
    def from_time_limit(cls, minutes: float | None, start: float | None = None) -> StopRequest:
        """A request whose deadline is ``minutes`` after ``start`` (default: now)."""
        if minutes is None:
            return cls()
        begin = time.time() if start is None else start
        return cls(deadline=begin + 60.0 * float(minutes), time_limit_minutes=float(minutes))

    def signal(self) -> int | None:
        """The stop signal received, if any."""
        return received()

    def before_start(self) -> tuple[str, int | None] | None:
        """(reason, signal) if a run must not even start: a stop signal came, or no time is left."""
        sig = received()
        if sig is not None:
            return f"by {signal_name(sig)}", sig
        if self.past_deadline():
            return self.time_limit_reason(), None
        return None

    def due(self, step_seconds: float, save_seconds: float) -> tuple[str, int | None] | None:
        """(reason, signal) if training must stop now, given how long one more iteration and one
        checkpoint take (the slowest seen so far); None to go on."""
        sig = received()
        if sig is not None:
            return f"by {signal_name(sig)}", sig
        if self.deadline is not None and time.time() + step_seconds + save_seconds >= self.deadline:
            return self.time_limit_reason(), None
        return None

    def past_deadline(self) -> bool:
        """Whether the deadline has passed already."""
        return self.deadline is not None and time.time() >= self.deadline

    def time_limit_reason(self) -> str:
        return f"to keep the time limit of {self.time_limit_minutes:g} min"
