"""MNIST-1D and its shuffled variant as array stores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fsbench.data import describe_split, load_split

pytest.importorskip("mnist1d.data")


def test_splits_shapes_and_classes():
    train, val, test = (load_split("mnist1d", s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (4000, 500, 1000)
    for store in (train, val, test):
        assert store.example_shape == (40,) and store.data.dtype == torch.float32
        assert store.class_names == [str(d) for d in range(10)] and store.num_classes == 10
    # val is the last 500 test signals (documented in describe_split)
    assert torch.equal(val.data, test.data[-500:])
    assert "subset of test" in describe_split("mnist1d", "val", val)["split_rule"]


def test_matches_the_generator():
    from mnist1d.data import get_dataset_args, make_dataset

    ref = make_dataset(get_dataset_args())
    train = load_split("mnist1d", "train")
    np.testing.assert_allclose(train.data.numpy(), np.asarray(ref["x"], np.float32))
    assert train.labels.tolist() == np.asarray(ref["y"]).tolist()


def test_shuffled_is_one_permutation_for_all_splits():
    for split in ("train", "test"):
        plain = load_split("mnist1d", split)
        shuffled = load_split("mnist1d-shuffled", split)
        perm = describe_split("mnist1d-shuffled", split, shuffled)["permutation"]
        assert sorted(perm) == list(range(40)) and perm != list(range(40))
        assert torch.equal(shuffled.data, plain.data[:, perm])
        assert torch.equal(shuffled.labels, plain.labels)
    other = load_split("mnist1d-shuffled", "train", seed=1)
    assert not torch.equal(other.data, load_split("mnist1d-shuffled", "train").data)


def test_second_load_hits_the_cache(fsbench_data_root):
    load_split("mnist1d", "train")
    assert (fsbench_data_root / "mnist1d" / "mnist1d-default.npz").is_file()


def test_batches_and_episodes_work():
    store = load_split("mnist1d", "train")
    x, y = store.sample_batch(store.generator(0), 100)
    assert x.shape == (100, 40) and y.shape == (100,)
    ep = store.sample_episode(store.generator(0), 5, 5, 15, 2)
    assert ep.support_x.shape == (2, 25, 40)
