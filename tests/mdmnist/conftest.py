"""Shared fixtures for the mdmnist tests: the embedded pool and a small MNIST-shaped IDX set."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from mdmnist.idx import load_mnist
from PIL import Image


@pytest.fixture(scope="session")
def pool():
    """The embedded MNIST pool (train then test)."""
    return load_mnist()


def write_idx(path: Path, array: np.ndarray, magic: int, gz: bool) -> Path:
    """Write ARRAY as an IDX file (gzipped when GZ)."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def make_small_mnist(directory: Path, pool, num_train: int = 300, num_test: int = 100) -> Path:
    """A small MNIST-shaped set: first NUM_TRAIN training and NUM_TEST test images."""
    directory.mkdir(parents=True, exist_ok=True)
    n = pool.num_train
    write_idx(directory / "train-images-idx3-ubyte", pool.images[:num_train], 2051, gz=True)
    write_idx(directory / "train-labels-idx1-ubyte", pool.labels[:num_train], 2049, gz=False)
    write_idx(directory / "t10k-images-idx3-ubyte", pool.images[n : n + num_test], 2051, gz=False)
    write_idx(directory / "t10k-labels-idx1-ubyte", pool.labels[n : n + num_test], 2049, gz=True)
    return directory


@pytest.fixture(scope="session")
def small_mnist(tmp_path_factory, pool):
    """Directory of a small MNIST-shaped IDX set (mixed gzipped and raw files)."""
    return make_small_mnist(tmp_path_factory.mktemp("small_mnist"), pool)


@pytest.fixture(scope="session")
def small_pool(small_mnist):
    """The small set loaded as a pool."""
    return load_mnist(small_mnist)


def decode_png(data: bytes) -> np.ndarray:
    """Pixels of PNG bytes via PIL."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)
