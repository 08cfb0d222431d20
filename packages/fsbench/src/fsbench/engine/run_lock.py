"""One writer per run folder: an exclusive ``fcntl.flock`` on ``OUT/.fsbench.lock``.

The kernel releases the lock when its process ends, however it ends (SIGKILL included), so a lock
file left by a dead process never blocks; the file only holds the holder's PID for the message.
On systems without ``fcntl`` (Windows) the lock is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fsbench.errors import FsbenchError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".fsbench.lock"


class FolderInUse(FsbenchError):
    """Another live process holds the folder's lock."""


def _holder_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def _in_use(folder: Path, pid: str) -> FolderInUse:
    return FolderInUse(
        f"{folder} is in use by another fsbench process (PID {pid}); wait for it to finish or "
        "stop it, or write to another --out"
    )


class RunLock:
    """The held lock of one folder; ``release`` (or the end of the process) frees it."""

    def __init__(self, folder: Path, fd: int | None) -> None:
        self.folder, self._fd = Path(folder), fd

    def release(self) -> None:
        """Unlock and close (the lock file stays: deleting it would race a second taker)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(folder: Path) -> RunLock:
    """Lock the existing ``folder`` for this process, or ``FolderInUse`` naming the holder's PID.

    Taking it again in the process that holds it fails too (one writer, even within a process).
    """
    folder = Path(folder)
    if fcntl is None:  # pragma: no cover
        return RunLock(folder, None)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder_pid(fd)
        os.close(fd)
        raise _in_use(folder, pid) from None
    except BaseException:
        os.close(fd)
        raise
    with contextlib.suppress(OSError):  # a full disk: the lock holds all the same
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RunLock(folder, fd)


def check_free(folder: Path) -> None:
    """``FolderInUse`` if a live process holds ``folder``'s lock; creates and changes nothing."""
    path = Path(folder) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(Path(folder), _holder_pid(fd)) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
