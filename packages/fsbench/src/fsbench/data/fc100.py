"""FC100 (Oreshkin et al. 2018, TADAM): CIFAR-100 split by superclass, 12 / 4 / 4 superclasses.

Built from the CIFAR-100 python archive (``cifar-100-python/{train,test,meta}``, as
www.cs.toronto.edu/~kriz/cifar.html distributes it) in ``path`` or ``data_root/fc100``, downloaded
there (MD5-checked) with ``download=True`` where a network exists. Each class keeps all its 600
images (CIFAR's 500 training followed by its 100 test images), 32x32 RGB. The superclass split is
TADAM's ``datasets/create_dataset_cifar100.py`` (coarse label ids):
train {1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19}, val {8, 11, 13, 16}, test {0, 7, 12, 14}.
Classes are ordered by fine label id.
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch

from fsbench.data.diskcache import atomic_path
from fsbench.data.pickles import read_pickle
from fsbench.data.store import ArrayStore
from fsbench.data.transform import array_transform
from fsbench.errors import FsbenchError

log = logging.getLogger("fsbench.data")

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
ARCHIVE = "cifar-100-python"
SUPERCLASSES = {
    "train": (1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19),
    "val": (8, 11, 13, 16),
    "test": (0, 7, 12, 14),
}


def _archive_dir(folder: Path) -> Path | None:
    for candidate in (folder / ARCHIVE, folder):
        if all((candidate / n).is_file() for n in ("train", "test", "meta")):
            return candidate
    return None


def download_archive(folder: Path) -> Path:
    """Fetch and unpack the CIFAR-100 python archive into ``folder`` (atomic, MD5-checked)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{ARCHIVE}.tar.gz"
    log.warning("downloading %s to %s", URL, target)
    md5 = hashlib.md5()
    try:
        with urllib.request.urlopen(URL, timeout=60) as resp, atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                while chunk := resp.read(1 << 20):
                    md5.update(chunk)
                    f.write(chunk)
            if md5.hexdigest() != MD5:
                raise FsbenchError(
                    f"download of {URL} is corrupt (md5 {md5.hexdigest()}, expected {MD5})"
                )
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise FsbenchError(
            f"could not download {URL} ({e}); put {ARCHIVE}/ in {folder} by hand"
        ) from None
    with tarfile.open(target) as tar, atomic_path(folder / ARCHIVE) as tmp:
        members = [m for m in tar.getmembers() if m.name.startswith(f"{ARCHIVE}/") and m.isfile()]
        tmp.mkdir()
        for m in members:
            name = Path(m.name).name
            src = tar.extractfile(m)
            if src is None:  # not a regular file's data (filtered above): nothing to copy
                continue
            with src:
                (tmp / name).write_bytes(src.read())
    return folder / ARCHIVE


def _cifar_pickle(path: Path) -> dict:
    return read_pickle(path, encoding="bytes", what="CIFAR-100 pickle")


def load_fc100(
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    path: str | Path | None = None,
    download: bool = False,
    progress: bool = True,
) -> ArrayStore:
    """One FC100 split: uint8 [N, 3, 32, 32], a class per CIFAR-100 fine label of its superclasses."""
    folder = Path(path).expanduser() if path is not None else data_root / "fc100"
    archive = _archive_dir(folder)
    if archive is None and download:
        archive = download_archive(folder)
    if archive is None:
        raise FsbenchError(
            f"FC100 needs the CIFAR-100 python archive: put {ARCHIVE}/ (train, test, meta) in "
            f"{folder}, pass --download, or --dataset-dir DIR"
        )
    parts = [_cifar_pickle(archive / n) for n in ("train", "test")]
    meta = _cifar_pickle(archive / "meta")
    try:
        data = np.concatenate([np.asarray(p["data"], dtype=np.uint8) for p in parts])
        fine = np.concatenate([np.asarray(p["fine_labels"], dtype=np.int64) for p in parts])
        coarse = np.concatenate([np.asarray(p["coarse_labels"], dtype=np.int64) for p in parts])
        fine_names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in meta["fine_label_names"]
        ]
        coarse_names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in meta["coarse_label_names"]
        ]
    except KeyError as e:
        raise FsbenchError(f"{archive}: not the CIFAR-100 python archive (no key {e})") from None
    if data.ndim != 2 or data.shape[1] != 3072:
        raise FsbenchError(f"{archive}: 'data' must be [N, 3072] uint8, is {list(data.shape)}")
    keep_coarse = SUPERCLASSES[split]
    classes = sorted({int(f) for f, c in zip(fine, coarse, strict=True) if c in keep_coarse})
    local = np.full(100, -1, dtype=np.int64)
    local[classes] = np.arange(len(classes))
    # a stable sort by class keeps CIFAR's own order within a class: train images, then test
    order = np.argsort(local[fine], kind="stable")
    order = order[local[fine][order] >= 0]
    images = data[order].reshape(-1, 3, 32, 32)
    meta_out = {
        "source": str(archive),
        "split_rule": "TADAM's superclass split: "
        + ", ".join(coarse_names[c] for c in keep_coarse),
        "superclasses": [coarse_names[c] for c in keep_coarse],
        "preprocessing": "32x32 RGB as distributed; CIFAR train and test images of each class",
        "transform": array_transform(32, 3).to_dict(),
    }
    return ArrayStore(
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(local[fine][order]),
        [fine_names[c] for c in classes],
        device,
        meta=meta_out,
    )
