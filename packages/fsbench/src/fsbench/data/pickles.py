"""Reading the pickled dicts some public datasets ship (miniImageNet's, CIFAR-100's)."""

from __future__ import annotations

import pickle
from pathlib import Path

from fsbench.errors import FsbenchError


def read_pickle(path: Path, *, encoding: str | None = None, what: str = "pickle") -> dict:
    """The dict pickled in ``path`` by Python 2 or 3, its bytes keys as str.

    ``encoding``: how Python 2 strings are read ("bytes" keeps them bytes, as CIFAR's loaders
    expect); None tries Python 3's default first, then latin1. FsbenchError naming the file.
    """
    try:
        with open(path, "rb") as f:
            if encoding is not None:
                data = pickle.load(f, encoding=encoding)
            else:
                try:
                    data = pickle.load(f)
                except UnicodeDecodeError:
                    f.seek(0)
                    data = pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise FsbenchError(f"{path}: not a readable {what} ({e})") from None
    if not isinstance(data, dict):
        raise FsbenchError(f"{path}: expected a dict, found {type(data).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}
