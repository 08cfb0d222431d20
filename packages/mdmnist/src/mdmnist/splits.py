"""Class splits (train/val/test) and per-digit source index lists, as the reference computes them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import MdmnistError
from .idx import MnistPool

SPLITS = ("train", "val", "test")


def class_name(value: int, num_digit: int) -> str:
    """Class label as the reference writes it: the number zero-padded to NUM_DIGIT digits."""
    return str(int(value)).zfill(num_digit)


def class_digits(name: str) -> list[int]:
    """Digits of a class name, left to right."""
    return [int(ch) for ch in name]


def split_counts(num_digit: int, ratios: Sequence[int]) -> tuple[int, int, int]:
    """Classes per split: int(ratio / sum * 10**n) for train and val, the rest for test."""
    num_class = 10**num_digit
    total = sum(int(r) for r in ratios)
    # Same float expression as the reference: int(float(ratio) / np.sum(ratios) * num_class).
    train, val, _ = (int(float(r) / total * num_class) for r in ratios)
    return train, val, num_class - train - val


def split_classes(num_digit: int, ratios: Sequence[int], seed: int) -> dict[str, list[str]]:
    """Class names per split in generation order (the reference's RandomState(seed).shuffle)."""
    num_class = 10**num_digit
    # RandomState.shuffle of a list and permutation(n) make the same swaps, so the orders agree.
    order = np.random.RandomState(seed).permutation(num_class)
    train, val, _ = split_counts(num_digit, ratios)
    bounds = {"train": (0, train), "val": (train, train + val), "test": (train + val, num_class)}
    return {s: [class_name(c, num_digit) for c in order[a:b]] for s, (a, b) in bounds.items()}


def digit_index_lists(pool: MnistPool, split: str, disjoint_sources: bool) -> list[np.ndarray]:
    """Pool positions of each digit 0..9, ascending; with DISJOINT_SOURCES restricted by split."""
    labels = pool.labels
    if not disjoint_sources:
        lo, hi, where = 0, len(labels), "the MNIST pool"
    elif split == "train":
        lo, hi, where = 0, pool.num_train, "the MNIST training images"
    else:
        lo, hi, where = pool.num_train, len(labels), "the MNIST test images"
    part = labels[lo:hi]
    lists = [lo + np.flatnonzero(part == d) for d in range(10)]
    for d, lst in enumerate(lists):
        if len(lst) == 0:
            raise MdmnistError(f"digit {d} has no source image in {where}")
    return lists
