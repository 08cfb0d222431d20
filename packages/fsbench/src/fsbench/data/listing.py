"""The file lists of the user's data folders, recorded in result.json and checked by ``rerun``.

A run that read its data from a folder the user gave (``--dataset-dir``: the ``path`` or
``omniglot_dir`` data option) records where the folder was and which files it held (relative
path and size of every file, as a count, a byte total and a SHA-256 of the sorted list), so that
a rerun can say whether it reads the same files. Contents are not hashed: that would read every
image again; a changed size or name is what a copy or an edit usually leaves.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# data options that name a folder of the user's
FOLDER_OPTIONS = ("path", "omniglot_dir")


def list_files(folder: Path) -> list[tuple[str, int]]:
    """(relative POSIX path, size) of every file under ``folder``, sorted; hidden names skipped."""
    folder = Path(folder)
    if folder.is_file():
        return [(folder.name, folder.stat().st_size)]
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = Path(root) / name
            try:
                size = path.stat().st_size
            except OSError:  # a broken link
                continue
            out.append((path.relative_to(folder).as_posix(), size))
    return sorted(out)


def folder_listing(folder: Path) -> dict:
    """Where a folder is and what it holds: {path, files, bytes, sha256 of the listing}."""
    folder = Path(folder).expanduser().resolve()
    files = list_files(folder)
    text = "".join(f"{name}\t{size}\n" for name, size in files)
    return {
        "path": str(folder),
        "files": len(files),
        "bytes": sum(size for _, size in files),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def folder_listings(data_options: dict) -> dict[str, dict]:
    """``folder_listing`` of every folder a run's data options name, keyed by option."""
    return {
        key: folder_listing(Path(data_options[key]))
        for key in FOLDER_OPTIONS
        if data_options.get(key) and Path(data_options[key]).expanduser().exists()
    }
