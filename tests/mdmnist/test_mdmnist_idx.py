"""MNIST input checks: embedded checksums, user IDX headers, sizes and gzip checksums."""

from __future__ import annotations

import gzip
import shutil

import mdmnist
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_small_mnist
from mdmnist.cli import cli
from mdmnist.errors import MdmnistError
from mdmnist.idx import MNIST_SHA256, _load, embedded_dir, load_mnist


def test_embedded_mnist_is_complete_and_verified(pool):
    assert pool.images.shape == (70000, 28, 28) and pool.labels.shape == (70000,)
    assert pool.num_train == 60000 and pool.origin == "embedded"
    assert pool.sha256 == MNIST_SHA256
    assert np.bincount(pool.labels[:60000]).tolist()[:2] == [5923, 6742]


def test_embedded_checksum_failure(tmp_path):
    """A corrupted copy of the embedded files fails the sha256 check at load."""
    copy = tmp_path / "mnist"
    shutil.copytree(embedded_dir(), copy)
    path = copy / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[100] = (data[100] + 1) % 10  # a different, still valid label
    path.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(MdmnistError, match="sha256"):
        _load(copy, embedded=True)


def test_embedded_files_recompressed_are_checked_by_content(tmp_path):
    """The shipped .gz digests are a shortcut: the same content in other gzip bytes (another
    level, several members) still loads and is verified against the canonical sha256."""
    copy = tmp_path / "mnist"
    shutil.copytree(embedded_dir(), copy)
    path = copy / "t10k-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    half = len(data) // 2
    path.write_bytes(gzip.compress(data[:half], 9) + gzip.compress(data[half:], 1))
    pool = _load(copy, embedded=True)
    assert pool.sha256 == MNIST_SHA256 and pool.images.shape == (70000, 28, 28)


def _run(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def user_dir(tmp_path, pool):
    return make_small_mnist(tmp_path / "user", pool)


def test_user_path_generates(user_dir, tmp_path, small_pool):
    out = mdmnist.generate(
        num_digit=1,
        num_image_per_class=2,
        output=tmp_path / "o",
        formats=("hdf5",),
        mnist_path=user_dir,
        progress=False,
    )
    assert mdmnist.verify(out) == []
    assert load_mnist(user_dir).images.shape == (400, 28, 28)


def _corrupt_and_check(user_dir, tmp_path, mutate, mentions):
    mutate(user_dir)
    out = tmp_path / "o"
    result = _run(
        [
            "--num-digit",
            "1",
            "--num-image-per-class",
            "1",
            "--mnist-path",
            user_dir,
            "--output",
            out,
            "--quiet",
        ]
    )
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1 and mentions in result.output
    assert not out.exists()


def test_flipped_byte_in_gzipped_idx_fails_checksum(user_dir, tmp_path):
    def mutate(d):
        path = d / "train-images-idx3-ubyte.gz"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))

    _corrupt_and_check(user_dir, tmp_path, mutate, "corrupt")


def test_truncated_raw_idx(user_dir, tmp_path):
    def mutate(d):
        path = d / "t10k-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:-100])

    _corrupt_and_check(user_dir, tmp_path, mutate, "truncated")


def test_truncated_gzip(user_dir, tmp_path):
    def mutate(d):
        path = d / "train-images-idx3-ubyte.gz"
        path.write_bytes(path.read_bytes()[:-500])

    _corrupt_and_check(user_dir, tmp_path, mutate, "truncated")


def test_wrong_magic(user_dir, tmp_path):
    def mutate(d):
        path = d / "t10k-images-idx3-ubyte"
        data = bytearray(path.read_bytes())
        data[3] = 1  # 2049 instead of 2051
        path.write_bytes(bytes(data))

    _corrupt_and_check(user_dir, tmp_path, mutate, "magic")


def test_wrong_image_dims(user_dir, tmp_path):
    def mutate(d):
        (d / "t10k-images-idx3-ubyte").write_bytes(
            (2051).to_bytes(4, "big")
            + (10).to_bytes(4, "big")
            + (32).to_bytes(4, "big") * 2
            + bytes(10 * 32 * 32)
        )

    _corrupt_and_check(user_dir, tmp_path, mutate, "28x28")


def test_missing_file(user_dir, tmp_path):
    _corrupt_and_check(
        user_dir, tmp_path, lambda d: (d / "t10k-labels-idx1-ubyte.gz").unlink(), "t10k-labels"
    )


def test_count_mismatch(user_dir, tmp_path, pool):
    from conftest import write_idx

    _corrupt_and_check(
        user_dir,
        tmp_path,
        lambda d: (
            write_idx(d / "t10k-labels-idx1-ubyte", pool.labels[:50], 2049, gz=False)
            .parent.joinpath("t10k-labels-idx1-ubyte.gz")
            .unlink()
        ),
        "labels",
    )
