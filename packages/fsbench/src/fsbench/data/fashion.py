"""Fashion-MNIST (Xiao et al. 2017) from its four IDX files: 10 classes of 28x28 clothing images.

The files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-...``, gzipped or
not) are read from ``path``, else ``data_root/fashion-mnist``, else Debian's
``dataset-fashion-mnist`` package folder. Every split holds all ten classes (their many modes —
shirts of several cuts, shoes of several kinds — are what Magnet loss and RepMet model), so the
splits divide images, not classes: train = the first five sixths of the training images
(50,000), val = the last sixth (10,000), test = the 10,000 test images. Episodes on the test split therefore test new images of
known classes, not new classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from mdmnist.errors import MdmnistError
from mdmnist.idx import load_mnist

from fsbench.data.store import ArrayStore
from fsbench.data.transform import array_transform
from fsbench.errors import FsbenchError

SYSTEM_DIR = Path(
    "/usr/share/datasets/fashion-mnist"
)  # Debian: apt-get install dataset-fashion-mnist
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
VAL_FRACTION = 6  # val = the last 1/6 of the training images (10,000 of 60,000)


def _folder(path: str | Path | None, data_root: Path) -> Path:
    """The folder holding the four IDX files: the user's, the data root's, or Debian's."""
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise FsbenchError(f"Fashion-MNIST path {folder} is not a directory")
        return folder
    for candidate in (data_root / "fashion-mnist", SYSTEM_DIR):
        if candidate.is_dir():
            return candidate
    raise FsbenchError(
        "Fashion-MNIST not found: put its four IDX files (train-images-idx3-ubyte.gz, "
        f"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in "
        f"{data_root / 'fashion-mnist'} or pass --dataset-dir DIR (Debian: apt-get install "
        "dataset-fashion-mnist)"
    )


def load_fashion_mnist(
    split: str,
    *,
    data_root: Path,
    device: torch.device,
    path: str | Path | None = None,
    progress: bool = True,
) -> ArrayStore:
    """One split of Fashion-MNIST as uint8 [N, 1, 28, 28], images grouped by class in file order."""
    del progress  # reading 30 MB takes a second
    folder = _folder(path, data_root)
    for name in FILES:  # said here in Fashion-MNIST's words, not mdmnist's (--mnist-path)
        if not ((folder / name).is_file() or (folder / f"{name}.gz").is_file()):
            raise FsbenchError(f"Fashion-MNIST: {folder} has no {name} or {name}.gz")
    try:
        pool = load_mnist(folder)  # the same IDX layout as MNIST, checked the same way
    except MdmnistError as exc:
        raise FsbenchError(f"Fashion-MNIST: {exc}") from None
    val_size = pool.num_train // VAL_FRACTION
    if val_size < 1:
        raise FsbenchError(
            f"Fashion-MNIST: {folder} has {pool.num_train} training images; the val split takes "
            f"the last sixth of them, so at least {VAL_FRACTION} are needed"
        )
    bounds = {
        "train": (0, pool.num_train - val_size),
        "val": (pool.num_train - val_size, pool.num_train),
        "test": (pool.num_train, len(pool.images)),
    }
    lo, hi = bounds[split]
    images, labels = pool.images[lo:hi], pool.labels[lo:hi].astype(np.int64)
    order = np.argsort(labels, kind="stable")  # grouped by class, file order within a class
    meta = {
        "source": str(folder),
        "split_rule": "all 10 classes in every split; train = training images 1-"
        f"{bounds['train'][1]:,}, val = the last {val_size:,} training images, test = the "
        f"{len(pool.images) - pool.num_train:,} test images",
        "same_classes": True,
        "transform": array_transform(int(images.shape[-1]), 1).to_dict(),
    }
    return ArrayStore(
        torch.from_numpy(np.ascontiguousarray(images[order][:, None])),
        torch.from_numpy(labels[order]),
        list(CLASSES),
        device,
        meta=meta,
    )
