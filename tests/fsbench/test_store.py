"""Episode and batch sampling from ArrayStore: shapes, labels, distinctness, seeds, uniformity, errors."""

from __future__ import annotations

import pytest
import torch
from fsbench.data import ArrayStore
from fsbench.errors import FsbenchError
from hypothesis import given, settings
from hypothesis import strategies as st


def id_store(class_sizes: list[int], device: str = "cpu") -> ArrayStore:
    """A store whose example i is the float i, so an episode reveals which examples it drew."""
    labels = torch.repeat_interleave(torch.arange(len(class_sizes)), torch.tensor(class_sizes))
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(7))
    labels = labels[perm]  # classes interleaved, as in a real file
    data = torch.arange(len(labels), dtype=torch.float32).unsqueeze(1)
    return ArrayStore(data, labels, device=device)


def drawn(store: ArrayStore, x: torch.Tensor) -> torch.Tensor:
    """Example ids of an episode's tensor [B, M, 1] from an id_store."""
    return x[..., 0].round().long().cpu()


def test_shapes_and_dtypes_of_image_episode():
    data = torch.randint(0, 256, (60, 1, 6, 6), dtype=torch.uint8)
    store = ArrayStore(data, torch.arange(60) % 6)
    ep = store.sample_episode(store.generator(0), way=5, shot=2, query=3, batch=4)
    assert ep.support_x.shape == (4, 10, 1, 6, 6) and ep.query_x.shape == (4, 15, 1, 6, 6)
    assert ep.support_y.shape == (4, 10) and ep.query_y.shape == (4, 15)
    assert ep.support_x.dtype == torch.float32 and ep.support_y.dtype == torch.int64
    assert float(ep.support_x.min()) >= 0.0 and float(ep.query_x.max()) <= 1.0
    assert ep.way == 5


def test_labels_are_class_major_zero_to_way():
    store = id_store([20] * 8)
    ep = store.sample_episode(store.generator(1), way=4, shot=3, query=5, batch=6)
    expected_s = torch.arange(4).repeat_interleave(3).expand(6, -1)
    expected_q = torch.arange(4).repeat_interleave(5).expand(6, -1)
    assert torch.equal(ep.support_y, expected_s) and torch.equal(ep.query_y, expected_q)


def test_episode_examples_distinct_and_classes_consistent():
    store = id_store([12] * 10)
    ep = store.sample_episode(store.generator(2), way=5, shot=4, query=8, batch=16)
    s_ids, q_ids = drawn(store, ep.support_x), drawn(store, ep.query_x)
    for b in range(16):
        ids = torch.cat([s_ids[b], q_ids[b]])
        assert len(ids.unique()) == len(ids), "an example was drawn twice in one task"
        true_s, true_q = store.labels[s_ids[b]], store.labels[q_ids[b]]
        # every episode label maps to exactly one true class, and the classes differ
        classes = [true_s[ep.support_y[b] == j].unique() for j in range(5)]
        assert all(len(c) == 1 for c in classes)
        assert len(torch.cat(classes).unique()) == 5
        for j in range(5):
            assert torch.all(true_q[ep.query_y[b] == j] == classes[j])


def test_same_seed_same_episode_other_seed_differs():
    store = id_store([15] * 9)
    a = store.sample_episode(store.generator(5), 5, 1, 4, 3)
    b = store.sample_episode(store.generator(5), 5, 1, 4, 3)
    c = store.sample_episode(store.generator(6), 5, 1, 4, 3)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.query_x, c.query_x)


def test_consecutive_draws_from_one_generator_differ():
    store = id_store([15] * 9)
    g = store.generator(0)
    a, b = store.sample_episode(g, 5, 1, 4), store.sample_episode(g, 5, 1, 4)
    assert not torch.equal(a.query_x, b.query_x)


def test_sampling_is_roughly_uniform_over_classes_and_examples():
    sizes = [10] * 20
    store = id_store(sizes)
    g = store.generator(3)
    class_hits = torch.zeros(20)
    example_hits = torch.zeros(len(store))
    for _ in range(50):
        ep = store.sample_episode(g, way=5, shot=1, query=1, batch=40)
        ids = torch.cat([drawn(store, ep.support_x), drawn(store, ep.query_x)], 1).flatten()
        example_hits += torch.bincount(ids, minlength=len(store))
        class_hits += torch.bincount(
            store.labels[drawn(store, ep.support_x)].flatten(), minlength=20
        )
    # 2,000 tasks x 5 classes: 500 expected per class (sd ~20); 2 of its 10 examples each time: 100 per example (sd ~9)
    assert class_hits.min() > 400 and class_hits.max() < 600
    assert example_hits.min() > 60 and example_hits.max() < 140


def test_uneven_class_sizes():
    sizes = [3, 10, 50, 7, 4]
    store = id_store(sizes)
    assert store.min_class_size == 3 and store.class_counts.tolist() == sizes
    seen = set()
    g = store.generator(4)
    for _ in range(30):
        ep = store.sample_episode(g, way=5, shot=1, query=2, batch=20)
        ids = torch.cat([drawn(store, ep.support_x), drawn(store, ep.query_x)], 1)
        for row in ids:
            assert len(row.unique()) == len(row)
        seen.update(ids.flatten().tolist())
    assert seen == set(range(len(store))), "some examples of the big class were never drawn"


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=12),
    way=st.integers(1, 6),
    shot=st.integers(1, 4),
    query=st.integers(1, 4),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**31),
)
def test_sampling_invariants_or_clear_error(sizes, way, shot, query, batch, seed):
    store = id_store(sizes)
    if way > len(sizes) or shot + query > min(sizes):
        with pytest.raises(FsbenchError):
            store.sample_episode(store.generator(seed), way, shot, query, batch)
        return
    ep = store.sample_episode(store.generator(seed), way, shot, query, batch)
    ids = torch.cat([drawn(store, ep.support_x), drawn(store, ep.query_x)], 1)
    ys = torch.cat([ep.support_y, ep.query_y], 1)
    for b in range(batch):
        assert len(ids[b].unique()) == ids.shape[1]
        true = store.labels[ids[b]]
        assert len(true.unique()) == way
        for j in range(way):
            assert len(true[ys[b] == j].unique()) == 1


def test_way_larger_than_classes_is_a_clear_error():
    store = id_store([10] * 4)
    with pytest.raises(FsbenchError, match=r"--way 5 is larger than the 4 classes"):
        store.sample_episode(store.generator(0), way=5, shot=1, query=1)


def test_shot_plus_query_larger_than_class_is_a_clear_error():
    store = id_store([10, 10, 6])
    with pytest.raises(
        FsbenchError, match=r"--shot \+ --query = 7 .*smallest class \(6 examples\)"
    ):
        store.sample_episode(store.generator(0), way=2, shot=2, query=5)


@pytest.mark.parametrize(
    "way, shot, query, batch, flag",
    [(0, 1, 1, 1, "--way"), (2, 0, 1, 1, "--shot"), (2, 1, -1, 1, "--query"), (2, 1, 1, 0, "meta")],
)
def test_non_positive_arguments_are_errors(way, shot, query, batch, flag):
    store = id_store([10] * 4)
    with pytest.raises(FsbenchError, match=flag):
        store.sample_episode(store.generator(0), way, shot, query, batch)


def test_check_episode_accepts_numpy_and_tensor_integers():
    import numpy as np

    store = id_store([10] * 4)
    ep = store.sample_episode(store.generator(0), np.int64(3), torch.tensor(1), 2, np.int32(2))
    assert ep.support_x.shape[:2] == (2, 3)


def test_sample_batch():
    store = id_store([5, 7, 9])
    x, y = store.sample_batch(store.generator(0), 32)
    assert x.shape == (32, 1) and y.shape == (32,)
    assert torch.equal(store.labels[drawn(store, x)], y)
    with pytest.raises(FsbenchError, match="--batch-size"):
        store.sample_batch(store.generator(0), 0)


def test_constructor_errors_and_metadata():
    with pytest.raises(FsbenchError, match="labels"):
        ArrayStore(torch.zeros(3, 2), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(FsbenchError, match="class_names"):
        ArrayStore(torch.zeros(3, 2), torch.tensor([0, 1, 1]), ["a"])
    store = ArrayStore(torch.zeros(3, 2), torch.tensor([0, 1, 1]), ["a", "b"], meta={"k": 1})
    assert store.class_names == ["a", "b"] and store.meta == {"k": 1}
    assert "3 examples" in repr(store)


def test_empty_store_reports_no_classes():
    store = ArrayStore(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64))
    assert store.num_classes == 0 and store.min_class_size == 0
    with pytest.raises(FsbenchError, match="--way"):
        store.sample_episode(store.generator(0), 1, 1, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_store_samples_on_device_and_is_deterministic():
    store = id_store([20] * 10, device="cuda")
    ep = store.sample_episode(store.generator(0), 5, 1, 15, 12)
    again = store.sample_episode(store.generator(0), 5, 1, 15, 12)
    assert ep.support_x.is_cuda and ep.query_y.is_cuda
    assert torch.equal(ep.query_x, again.query_x)
    with pytest.raises(FsbenchError, match="generator"):
        store.sample_episode(torch.Generator().manual_seed(0), 5, 1, 1)
    assert store.to("cpu").device.type == "cpu"
