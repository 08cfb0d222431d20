"""Atomic on-disk caches of decoded arrays, so a dataset is decoded once and loads in milliseconds.

A cache file is an uncompressed ``.npz`` written to a temporary name and renamed into place, so a
reader never sees half a file. Each cache records a fingerprint of its sources (names, sizes,
modification times); a stale, unreadable or foreign cache is ignored and rebuilt, never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fsbench.results import DISK_FULL_ERRNOS, disk_full_error

log = logging.getLogger("fsbench.data")

FINGERPRINT_KEY = "_fingerprint"


def fingerprint(paths: Iterable[Path]) -> str:
    """A short digest of the files' resolved names, sizes and mtimes: changes when any source does."""
    h = hashlib.sha1()
    for p in paths:
        st = Path(p).stat()
        h.update(f"{Path(p).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; on success rename it onto ``final``, else delete it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def save_arrays(path: Path, fingerprint_: str, **arrays: np.ndarray) -> None:
    """Write ``arrays`` and the sources' fingerprint to ``path`` atomically (uncompressed npz)."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            payload: dict[str, Any] = {**arrays, FINGERPRINT_KEY: np.array(fingerprint_)}
            np.savez(f, **payload)
    except OSError as e:  # a read-only or full data root only costs speed, never correctness
        why = str(disk_full_error(path, e)) if e.errno in DISK_FULL_ERRNOS else f"{path} ({e})"
        log.warning("could not write the cache: %s; will decode again next time", why)


def load_arrays(path: Path, fingerprint_: str) -> dict[str, np.ndarray] | None:
    """The arrays cached at ``path`` if present, readable and built from the same sources, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if FINGERPRINT_KEY not in z.files or str(z[FINGERPRINT_KEY]) != fingerprint_:
                return None
            return {k: z[k] for k in z.files if k != FINGERPRINT_KEY}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        log.warning("ignoring unreadable cache %s (%s); rebuilding it", path, e)
        return None
