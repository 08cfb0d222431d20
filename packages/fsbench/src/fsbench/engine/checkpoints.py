"""Checkpoint files: written whole or not at all, the previous one kept, damaged ones named.

``checkpoint.pt`` is replaced by a rename only once the new file is complete on disk; just before,
the current one is kept as ``checkpoint.prev.pt`` (a hard link, so never a moment without a
``checkpoint.pt``). A file that cannot be read (truncated, corrupt, or not an fsbench checkpoint)
is one ``CheckpointError`` saying which file, what is wrong, and the two ways on.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from fsbench.errors import FsbenchError
from fsbench.results import BEST, CHECKPOINT, atomic_write_bytes

PREVIOUS = "checkpoint.prev.pt"  # the checkpoint before the last one, kept until the next is in

# what torch's weights_only unpickler says of an object it will not rebuild ("unsupported GLOBAL
# posix.mkdir whose module posix is blocked", "Unsupported global: ...", "... not an allowed
# global by default", "Unsupported class"), as distinct from a damaged pickle
_UNSAFE = re.compile(r"global|blocked|allowlist|unsupported class", re.IGNORECASE)

# keys every file of ours holds: the training checkpoint, and best.pt (weights of the best val)
REQUIRED = {CHECKPOINT: ("model", "iteration", "settings"), BEST: ("model", "iteration")}


class CheckpointError(FsbenchError):
    """A checkpoint or best.pt that cannot be used: which file, what is wrong, what to do."""


def save_checkpoint(path: Path, state: dict, *, keep_previous: bool = False) -> None:
    """torch.save ``state`` to ``path`` atomically; with ``keep_previous`` the file it replaces
    stays as checkpoint.prev.pt, moved there only once the new one is safely on disk."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(
        path, buf.getvalue(), before_rename=(lambda: _keep(path)) if keep_previous else None
    )


def _keep(path: Path) -> None:
    """Make the current ``path`` checkpoint.prev.pt by a hard link and a rename (no space used,
    never a moment without a checkpoint.pt); a filesystem without hard links keeps none."""
    if not path.exists():
        return
    staged = path.with_name(f".{PREVIOUS}.tmp{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()
    try:
        os.link(path, staged)
        os.replace(staged, path.with_name(PREVIOUS))
    except OSError:
        with contextlib.suppress(OSError):
            staged.unlink()


def previous_of(path: Path) -> Path:
    """checkpoint.prev.pt beside ``path``."""
    return Path(path).with_name(PREVIOUS)


def _ways_on(path: Path) -> str:
    """The two ways on from a damaged ``path``: start again, or fall back to an older file."""
    path = Path(path)
    start_again = "start the run again (fsbench run ... --overwrite)"
    if path.name == BEST:
        return f"{start_again}, or delete {path} to test the last checkpoint instead"
    prev = previous_of(path)
    if path.name == CHECKPOINT and prev.exists():
        return f"{start_again}, or delete {path} to resume from {prev.name} (the one before it)"
    if path.name == CHECKPOINT:
        return f"{start_again} (there is no {PREVIOUS} to fall back to)"
    return f"{start_again}, or delete {path} to resume from {CHECKPOINT}"


def _problem(path: Path, exc: BaseException) -> str:
    """What is wrong with a file torch.load refused, in words."""
    if path.stat().st_size == 0:
        return "empty"
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head == b"PK\x03\x04":  # a torch zip whose end (the central directory) is missing
            return "truncated (the end of the file is missing)"
        return "not a PyTorch checkpoint"
    return f"corrupt ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"


def load_checkpoint(path: Path) -> dict:
    """A checkpoint (or best.pt) written by ``save_checkpoint``; ``CheckpointError`` otherwise.

    Read with torch's ``weights_only`` unpickler: our files hold only tensors, numbers, strings and
    containers (optimiser and RNG states are tensors), so a run folder from elsewhere cannot run
    code when fsbench reads it, and a file that holds other Python objects is refused.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as exc:
        if _UNSAFE.search(str(exc)):
            raise CheckpointError(
                f"{path} holds Python objects other than tensors and plain values, which fsbench"
                f" does not unpickle (that could run code): not a file fsbench wrote; {_ways_on(path)}"
            ) from None
        raise CheckpointError(f"{path} is {_problem(path, exc)}; {_ways_on(path)}") from None
    except (
        OSError,
        RuntimeError,
        EOFError,
        ValueError,
        zipfile.BadZipFile,
        AttributeError,
        ImportError,
        KeyError,
        TypeError,
    ) as exc:
        raise CheckpointError(f"{path} is {_problem(path, exc)}; {_ways_on(path)}") from None
    required = REQUIRED.get(path.name, ("model",))
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(
            f"{path} is not an fsbench checkpoint (it lacks {', '.join(missing)}); {_ways_on(path)}"
        )
    return state
