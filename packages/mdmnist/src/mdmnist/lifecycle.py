"""Survive any kill: SIGTERM/SIGHUP act like Ctrl-C, workers die with their parent, stale temp
folders of dead runs are removed, and parent folders a failed run created are removed again."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
PR_SET_PDEATHSIG = 1  # linux/prctl.h: signal sent to this process when its parent dies


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM or SIGHUP, so cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    """Signal handler: ignore further stop signals (cleanup must finish), then raise."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block SIGTERM/SIGHUP raise Terminated (main thread only); restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _watch_parent(parent_pid: int) -> None:
    """Poll the parent's pid and exit at once when it is gone (where prctl is not available)."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """Make this worker end by itself when its parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before prctl took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def temp_token() -> str:
    """The part of a temp folder's name that identifies this process: its pid and a random tag."""
    return f"{os.getpid()}-{os.urandom(4).hex()}"


def _alive(pid: int) -> bool:
    """True if a process PID exists (or may exist: another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    """Delete a folder tree or a file, ignoring what is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_temps(out: Path) -> list[Path]:
    """Remove ``.NAME.tmp-PID-*`` / ``.NAME.old-PID-*`` beside OUT left by dead processes.

    A stale ``.old`` folder is an earlier output that a killed run had moved aside: it is moved back
    when OUT is missing, so a kill in the middle of a swap loses nothing.
    """
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(tmp|old)-(\d+)-[0-9a-f]+")
    removed = []
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return removed
    for entry in sorted(entries, key=lambda p: p.name):
        match = pattern.fullmatch(entry.name)
        if not match or _alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not (out.exists() or out.is_symlink()):
            entry.rename(out)
            continue
        _remove(entry)
        removed.append(entry)
    return removed


def missing_parents(folder: Path) -> list[Path]:
    """FOLDER and its ancestors that do not exist yet, deepest first."""
    missing = []
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_created(folders: list[Path]) -> None:
    """Remove folders this run created (deepest first), each only if it is still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
