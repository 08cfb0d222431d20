"""MNIST-1D and its shuffled variant as array stores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fsbench.data import describe_split, load_split

pytest.importorskip("mnist1d.data")


def _rows(store) -> set[bytes]:
    return {row.numpy().tobytes() for row in store.data}


@pytest.mark.parametrize("name", ["mnist1d", "mnist1d-shuffled"])
def test_splits_shapes_and_a_validation_split_apart_from_train_and_test(name):
    train, val, test = (load_split(name, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (4000, 1000, 1000)
    for store in (train, val, test):
        assert store.example_shape == (40,) and store.data.dtype == torch.float32
        assert store.class_names == [str(d) for d in range(10)] and store.num_classes == 10
    # val is neither a subset of test nor of train: fresh signals of the same generator
    assert not (_rows(val) & _rows(test)) and not (_rows(val) & _rows(train))
    assert "disjoint from train and test" in describe_split(name, "val", val)["split_rule"]


def test_matches_the_generator():
    from mnist1d.data import get_dataset_args, make_dataset

    ref = make_dataset(get_dataset_args())
    train = load_split("mnist1d", "train")
    np.testing.assert_allclose(train.data.numpy(), np.asarray(ref["x"], np.float32))
    assert train.labels.tolist() == np.asarray(ref["y"]).tolist()


def test_shuffled_is_the_generators_shuffle_seq_dataset():
    """As the reference notebook: make_dataset(shuffle_seq=True), one permutation for all."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.shuffle_seq = True
    ref = make_dataset(args)
    train = load_split("mnist1d-shuffled", "train")
    test = load_split("mnist1d-shuffled", "test")
    np.testing.assert_array_equal(train.data.numpy(), np.asarray(ref["x"], np.float32))
    np.testing.assert_array_equal(test.data.numpy(), np.asarray(ref["x_test"], np.float32))
    # the same signals as the plain dataset, columns permuted (one permutation, train and test)
    val = load_split("mnist1d-shuffled", "val")
    perm = describe_split("mnist1d-shuffled", "val", val)["permutation"]
    assert sorted(perm) == list(range(40)) and perm != list(range(40))
    for split, store in (("train", train), ("test", test)):
        plain = load_split("mnist1d", split)
        torch.testing.assert_close(store.data, plain.data[:, perm], atol=1e-6, rtol=0)
        assert torch.equal(store.labels, plain.labels)
    torch.testing.assert_close(val.data, load_split("mnist1d", "val").data[:, perm], atol=0, rtol=0)


def test_second_load_hits_the_cache(fsbench_data_root):
    load_split("mnist1d", "train")
    assert (fsbench_data_root / "mnist1d" / "mnist1d-default.npz").is_file()


def test_batches_and_episodes_work():
    store = load_split("mnist1d", "train")
    x, y = store.sample_batch(store.generator(0), 100)
    assert x.shape == (100, 40) and y.shape == (100,)
    ep = store.sample_episode(store.generator(0), 5, 5, 15, 2)
    assert ep.support_x.shape == (2, 25, 40)
