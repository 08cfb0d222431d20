"""Reading and writing datasets as .npz, .h5/.hdf5 or the reference's .pkl, always atomically."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import pickletools
import re
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mnist1d.utils import PICKLE_PROTOCOL

FORMATS = {".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5", ".pkl": "pickle", ".pickle": "pickle"}
ARRAY_KEYS = ("x", "y", "x_test", "y_test", "t")
TEMPLATE_KEYS = ("x", "t", "y")


class StorageError(ValueError):
    """A dataset file that cannot be read or written; the message is one line for the user."""


def file_format(path: str | os.PathLike[str]) -> str:
    """The format implied by the file extension, or StorageError listing the allowed ones."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        allowed = ", ".join(FORMATS)
        raise StorageError(
            f"unknown extension {ext or '(none)'!r} for {os.fspath(path)!r}; use one of {allowed}"
        )
    return FORMATS[ext]


def _pickle_strings(path: str | os.PathLike[str]) -> set[str]:
    """Every string constant in a pickle, read with pickletools (nothing is unpickled or run)."""
    with open(path, "rb") as fh:
        return {arg for _, arg, _ in pickletools.genops(fh) if isinstance(arg, str)}


def is_dataset_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds an MNIST-1D dataset in the format its extension names."""
    keys = set(ARRAY_KEYS)
    try:
        fmt = file_format(path)
        if fmt == "npz":
            with zipfile.ZipFile(path) as z:
                return {f"{k}.npy" for k in keys} <= set(z.namelist())
        if fmt == "pickle":
            return keys | {"templates"} <= _pickle_strings(path)
        import h5py

        with h5py.File(path, "r") as h5:
            return all(k in h5 for k in keys)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def check_writable(
    path: str | os.PathLike[str], overwrite: bool, datasets_only: bool = False
) -> None:
    """Fail early (before any work) if ``path`` exists without overwrite or its folder is not writable.

    With ``datasets_only``, overwrite replaces only an MNIST-1D dataset file, never a user's other file.
    """
    path = Path(path)
    if path.is_dir():
        raise StorageError(f"{os.fspath(path)!r} is a directory, not a file")
    if path.exists() and not overwrite:
        raise StorageError(f"{os.fspath(path)!r} already exists (pass --overwrite to replace it)")
    if path.exists() and datasets_only and not is_dataset_file(path):
        raise StorageError(
            f"{os.fspath(path)!r} is not an MNIST-1D dataset file, so --overwrite left it "
            "untouched; it replaces only files mnist1d wrote"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise StorageError(
            f"cannot write {os.fspath(path)!r}: folder {os.fspath(folder)!r} does not exist"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(
            f"cannot write {os.fspath(path)!r}: folder {os.fspath(folder)!r} is not writable"
        )


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    """True if process ``pid`` exists (or may: it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Delete ``.NAME.tmp-PID-*`` files beside ``path`` whose process is gone (left by a SIGKILL)."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.tmp-(\d+)-\w+{re.escape(path.suffix)}")
    removed = []
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match and entry.is_file() and not _alive(int(match.group(1))):
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], overwrite: bool = False, datasets_only: bool = False
) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success move it into place, on failure remove it."""
    check_writable(path, overwrite, datasets_only)
    path = Path(path)
    remove_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=path.suffix, dir=path.parent
        )
    except OSError as e:
        raise StorageError(f"cannot write {os.fspath(path)!r}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; give what open() would
    finally:
        os.close(fd)
    try:
        yield tmp
        check_writable(path, overwrite, datasets_only)  # again: it may have appeared meanwhile
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_dataset(
    dataset: Mapping[str, Any],
    path: str | os.PathLike[str],
    args: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> str:
    """Write the dataset to ``path`` in the format its extension names; returns the format."""
    fmt = file_format(path)
    args_json = json.dumps(dict(args) if args is not None else None)
    with atomic_path(path, overwrite, datasets_only=True) as tmp:
        if fmt == "pickle":
            with open(tmp, "wb") as fh:
                pickle.dump(dict(dataset), fh, protocol=PICKLE_PROTOCOL)
        elif fmt == "npz":
            arrays = {k: np.asarray(dataset[k]) for k in ARRAY_KEYS}
            for k in TEMPLATE_KEYS:
                arrays[f"templates_{k}"] = np.asarray(dataset["templates"][k])
            arrays["args"] = np.array(args_json)
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        else:
            import h5py

            with h5py.File(tmp, "w") as h5:
                for k in ARRAY_KEYS:
                    h5.create_dataset(k, data=np.asarray(dataset[k]))
                group = h5.create_group("templates")
                for k in TEMPLATE_KEYS:
                    group.create_dataset(k, data=np.asarray(dataset["templates"][k]))
                h5.attrs["args"] = args_json
                h5.attrs["generator"] = "mnist1d"
    return fmt


def load_dataset(
    path: str | os.PathLike[str], allow_pickle: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Read a dataset file; returns (dataset dict in the reference layout, stored args or None).

    Pickles are refused unless ``allow_pickle`` (unpickling a file can run code from it).
    """
    fmt = file_format(path)
    if not os.path.isfile(path):
        raise StorageError(f"no such file: {os.fspath(path)!r}")
    try:
        if fmt == "pickle":
            if not allow_pickle:
                raise StorageError(
                    f"refusing to unpickle {os.fspath(path)!r} without allow_pickle=True"
                )
            with open(path, "rb") as fh:
                data = pickle.load(fh)
            if not isinstance(data, dict) or not set(ARRAY_KEYS) <= set(data):
                raise StorageError(f"{os.fspath(path)!r} is not an MNIST-1D dataset pickle")
            return data, None
        if fmt == "npz":
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in ARRAY_KEYS}
                data["templates"] = {k: z[f"templates_{k}"] for k in TEMPLATE_KEYS}
                args = json.loads(str(z["args"])) if "args" in z.files else None
            return data, args
        import h5py

        with h5py.File(path, "r") as h5:
            data = {k: h5[k][()] for k in ARRAY_KEYS}
            data["templates"] = {k: h5["templates"][k][()] for k in TEMPLATE_KEYS}
            raw = h5.attrs.get("args")
            args = json.loads(raw) if raw is not None else None
        return data, args
    except StorageError:
        raise
    except (OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError) as e:
        raise StorageError(f"cannot read {os.fspath(path)!r} as {fmt}: {e}") from None


def download_file(url: str, path: str | os.PathLike[str], timeout: float = 60.0) -> None:
    """Fetch ``url`` into ``path`` atomically (only ever called for get_dataset(download=True))."""
    with (
        atomic_path(path, overwrite=False) as tmp,
        urllib.request.urlopen(url, timeout=timeout) as response,
        open(tmp, "wb") as fh,
    ):
        while chunk := response.read(1 << 20):
            fh.write(chunk)
