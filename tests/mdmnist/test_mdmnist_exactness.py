"""Image-for-image equality with the literal reference loop, for several digits, sizes, seeds, ratios."""

from __future__ import annotations

import h5py
import mdmnist
import numpy as np
import pytest
from conftest import decode_png
from mdmnist.splits import digit_index_lists
from mdmnist_oracle import reference_generate


def _read_png_tree(out, split, name, count):
    """Decoded pixels of one class of our PNG tree."""
    return np.stack(
        [decode_png((out / split / name / f"{k}_{name}.png").read_bytes()) for k in range(count)]
    )


def test_double_mnist_png_tree_equals_reference_imageio_files(tmp_path, pool):
    """Published DoubleMNIST settings, 3 images per class: our PNGs decode to the reference's PNGs."""
    ref_dir = tmp_path / "reference"
    want = reference_generate(
        pool.images, pool.labels, 2, (64, 64), 3, (64, 16, 20), 123, out_dir=ref_dir
    )
    out = mdmnist.generate(
        num_image_per_class=3, output=tmp_path / "ours", workers=2, progress=False
    )
    for split, classes in want.items():
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(classes)
        for name, images in classes.items():
            ours = _read_png_tree(out, split, name, 3)
            np.testing.assert_array_equal(ours, images, err_msg=f"{split}/{name}")
            theirs = _read_png_tree(ref_dir, split, name, 3)  # the oracle's imageio files
            np.testing.assert_array_equal(ours, theirs)


CASES = [
    # num_digit, image_size, per_class, ratios, seed, embedded MNIST?
    (3, (84, 84), 1, (64, 16, 20), 123, True),
    (1, (29, 30), 5, (5, 3, 2), 7, True),  # H - 28 == 1: randint(1) draws nothing
    (2, (28, 57), 4, (1, 1, 1), 0, False),  # no y draw, W // 2 - 28 == 0: no x draw, col 57 // 2
    (3, (90, 100), 2, (70, 10, 20), 2024, False),  # columns (l * W) // n, x offsets 0..4
    (4, (30, 113), 1, (64, 16, 20), 99, False),  # 10,000 classes
]


@pytest.mark.parametrize(
    ("num_digit", "image_size", "per_class", "ratios", "seed", "embedded"), CASES
)
def test_hdf5_equals_reference(
    tmp_path,
    pool,
    small_pool,
    small_mnist,
    num_digit,
    image_size,
    per_class,
    ratios,
    seed,
    embedded,
):
    """Native HDF5 holds the reference's images, classes in the reference's order."""
    source = pool if embedded else small_pool
    want = reference_generate(
        source.images, source.labels, num_digit, image_size, per_class, ratios, seed
    )
    out = mdmnist.generate(
        num_digit=num_digit,
        image_size=image_size,
        num_image_per_class=per_class,
        ratios=ratios,
        seed=seed,
        output=tmp_path / "out",
        formats=("hdf5",),
        workers=2,
        mnist_path=None if embedded else small_mnist,
        progress=False,
    )
    for split, classes in want.items():
        with h5py.File(out / f"{split}.h5", "r") as f:
            names = [b.decode() for b in f["class_names"][...]]
            assert names == list(classes)
            np.testing.assert_array_equal(f["images"][...], np.stack(list(classes.values())))


def test_disjoint_sources_equal_reference_with_split_restricted_pools(tmp_path, pool):
    """--disjoint-sources is the reference loop with per-split index lists (train / test MNIST)."""
    n_train = pool.num_train
    lists = {
        "train": [list(np.where(pool.labels[:n_train] == d)[0]) for d in range(10)],
        "val": [list(n_train + np.where(pool.labels[n_train:] == d)[0]) for d in range(10)],
    }
    lists["test"] = lists["val"]
    want = reference_generate(
        pool.images, pool.labels, 2, (64, 64), 3, (64, 16, 20), 5, split_index_lists=lists
    )
    out = mdmnist.generate(
        num_image_per_class=3,
        seed=5,
        output=tmp_path / "d",
        formats=("hdf5",),
        disjoint_sources=True,
        progress=False,
    )
    for split, classes in want.items():
        with h5py.File(out / f"{split}.h5", "r") as f:
            np.testing.assert_array_equal(f["images"][...], np.stack(list(classes.values())))
    # and the pools really are disjoint
    assert digit_index_lists(pool, "train", True)[3].max() < n_train
    assert digit_index_lists(pool, "test", True)[3].min() >= n_train
