"""Class splits: the published DoubleMNIST / TripleMNIST splits and the reference's counting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mdmnist.splits import split_classes, split_counts
from mdmnist_oracle import reference_split

PUBLISHED = json.loads((Path(__file__).parent / "published_splits.json").read_text())


def test_double_mnist_published_split():
    """Seed 123, 64/16/20: the 20 DoubleMNIST test classes (and train/val) of the published set."""
    splits = split_classes(2, (64, 16, 20), 123)
    assert sorted(splits["test"]) == [
        "02", "17", "25", "32", "36", "46", "47", "49", "55", "57",
        "66", "67", "68", "73", "78", "80", "83", "86", "92", "96",
    ]  # fmt: skip
    assert sorted(splits["val"]) == PUBLISHED["double"]["val"]
    assert sorted(splits["train"]) == PUBLISHED["double"]["train"]


def test_triple_mnist_published_split():
    """Seed 123: 640/160/200 classes, val and test equal to the published TripleMNIST."""
    splits = split_classes(3, (64, 16, 20), 123)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [640, 160, 200]
    assert sorted(splits["val"]) == PUBLISHED["triple"]["val"]
    assert sorted(splits["test"]) == PUBLISHED["triple"]["test"]
    everything = splits["train"] + splits["val"] + splits["test"]
    assert sorted(everything) == [f"{i:03d}" for i in range(1000)]


@pytest.mark.parametrize(
    ("num_digit", "ratios", "seed"),
    [
        (1, (64, 16, 20), 123),
        (2, (70, 10, 20), 0),
        (3, (1, 1, 1), 9),
        (4, (64, 16, 20), 123),
        (2, (3, 3, 3), 77),
    ],
)
def test_split_equals_reference_list_shuffle(num_digit, ratios, seed):
    """permutation(n) gives the reference's shuffle of a list, and its float counting."""
    want = reference_split(num_digit, ratios, seed)
    got = split_classes(num_digit, ratios, seed)
    for split, classes in zip(("train", "val", "test"), want, strict=True):
        assert got[split] == [str(int(c)).zfill(num_digit) for c in classes]


def test_split_counts_follow_int_of_float_fraction():
    """Counts truncate like int(ratio / sum * 10**n); test takes the rest."""
    assert split_counts(2, (64, 16, 20)) == (64, 16, 20)
    assert split_counts(1, (1, 1, 1)) == (3, 3, 4)
    assert split_counts(3, (70, 10, 20)) == (700, 100, 200)
