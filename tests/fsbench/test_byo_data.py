"""Your own data: EpisodeBatchSampler over any labelled Dataset, ArrayStore from tensors/datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fsbench.data.sampler import EpisodeBatchSampler, collate_episode, dataset_labels
from fsbench.data.store import ArrayStore, Episode
from fsbench.errors import FsbenchError
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

FIELDS = ("support_x", "support_y", "query_x", "query_y", "classes")


def tensors(classes: int = 7, per_class: int = 9, seed: int = 0):
    """uint8 'images' [N, 1, 4, 4] of uneven classes (the last has per_class + 3 examples)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((per_class + 3 * (c == classes - 1),), c) for c in range(classes)])
    y = y[torch.randperm(len(y), generator=g)]
    x = torch.randint(0, 256, (len(y), 1, 4, 4), generator=g, dtype=torch.uint8)
    return x, y


def assert_same_episode(a: Episode, b: Episode) -> None:
    assert (a.way, a.shot, a.query) == (b.way, b.shot, b.query)
    for name in FIELDS:
        ta, tb = getattr(a, name), getattr(b, name)
        assert ta.dtype == tb.dtype and torch.equal(ta, tb), name


@pytest.mark.parametrize("batch", [1, 3])
def test_sampler_draws_the_stores_episodes_for_the_same_seed(batch):
    x, y = tensors()
    store = ArrayStore.from_tensors(x, y)
    sampler = EpisodeBatchSampler(
        TensorDataset(x, y), way=4, shot=2, query=3, episodes=5, seed=11, batch=batch
    )
    loader = DataLoader(
        TensorDataset(x, y), batch_sampler=sampler, collate_fn=collate_episode(sampler)
    )
    gen = store.generator(11)
    two_epochs = list(loader) + list(loader)  # epochs continue the one seeded stream
    assert len(two_epochs) == 10
    for ep in two_epochs:
        assert_same_episode(ep, store.sample_episode(gen, 4, 2, 3, batch))
    assert ep.support_x.shape == (batch, 8, 1, 4, 4) and ep.query_x.dtype == torch.float32
    again = EpisodeBatchSampler(None, labels=y, way=4, shot=2, query=3, episodes=5, seed=11)
    again.set_epoch(1)  # a fresh sampler jumps to epoch 1: the store's episodes 5..9
    gen = store.generator(11)
    [store.sample_episode(gen, 4, 2, 3) for _ in range(5)]
    for idx in again:
        expect, _ = store.sample_indices(gen, 4, 2, 3)
        assert idx == expect.reshape(-1).tolist()
    other = EpisodeBatchSampler(None, labels=y, way=4, shot=2, query=3, episodes=5, seed=12)
    assert list(other) != list(
        EpisodeBatchSampler(None, labels=y, way=4, shot=2, query=3, episodes=5, seed=11)
    )


def test_episode_indices_are_distinct_class_major_and_labelled(tmp_path):
    x, y = tensors()
    sampler = EpisodeBatchSampler(None, labels=y.numpy(), way=5, shot=3, query=2, episodes=20)
    for idx in sampler:
        idx_t = torch.tensor(idx).view(5, 5)
        assert len(set(idx)) == 25
        labels = y[idx_t]
        assert (labels == labels[:, :1]).all() and len(set(labels[:, 0].tolist())) == 5


def write_image_folder(root: Path, classes: int = 6, per_class: int = 5) -> Path:
    """Real RGB PNGs in root/<class>/ (each image's colour encodes its class and number)."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            pixels[0, 0] = (c * 40, i * 40, 7)
            Image.fromarray(pixels).save(root / f"class_{c}" / f"{i}.png")
    return root


def test_a_dataloader_over_an_image_folder_yields_valid_episodes(tmp_path):
    tv = pytest.importorskip("torchvision")
    folder = tv.datasets.ImageFolder(
        str(write_image_folder(tmp_path / "imgs")), transform=tv.transforms.ToTensor()
    )
    sampler = EpisodeBatchSampler(folder, way=3, shot=2, query=2, episodes=4, seed=0)
    loader = DataLoader(folder, batch_sampler=sampler, collate_fn=collate_episode(sampler))
    episodes = list(loader)
    assert len(episodes) == 4
    for ep in episodes:
        assert ep.support_x.shape == (1, 6, 3, 6, 6) and ep.query_x.shape == (1, 6, 3, 6, 6)
        assert ep.support_y.tolist() == [[0, 0, 1, 1, 2, 2]] and ep.query_y.tolist() == [
            [0, 0, 1, 1, 2, 2]
        ]
        # the marker pixel's red channel is the image's class: the labels follow the classes
        red = torch.cat([ep.support_x[0, :, 0, 0, 0], ep.query_x[0, :, 0, 0, 0]]) * 255
        classes = ep.classes[0].repeat_interleave(2)
        assert torch.allclose(red, torch.cat([classes, classes]).float() * 40)
    # PIL items (no transform) collate as the store holds them: uint8 scaled to [0, 1]
    raw = tv.datasets.ImageFolder(str(tmp_path / "imgs"))
    store = ArrayStore.from_dataset(raw)
    sampler = EpisodeBatchSampler(raw, way=3, shot=2, query=2, episodes=3, seed=5)
    loader = DataLoader(raw, batch_sampler=sampler, collate_fn=collate_episode(sampler))
    gen = store.generator(5)
    for ep in loader:
        assert_same_episode(ep, store.sample_episode(gen, 3, 2, 2))


def test_from_dataset_on_an_image_folder_keeps_uint8_and_class_names(tmp_path):
    tv = pytest.importorskip("torchvision")
    root = write_image_folder(tmp_path / "imgs", classes=4, per_class=3)
    store = ArrayStore.from_dataset(tv.datasets.ImageFolder(str(root)))
    assert store.data.dtype == torch.uint8 and store.example_shape == (3, 6, 6)
    assert store.class_names == ["class_0", "class_1", "class_2", "class_3"]
    assert store.class_counts.tolist() == [3, 3, 3, 3]
    png = np.array(Image.open(root / "class_2" / "1.png"))
    assert torch.equal(store.data[7], torch.from_numpy(png).permute(2, 0, 1))
    gray = tv.datasets.ImageFolder(str(root), transform=tv.transforms.Grayscale())
    assert ArrayStore.from_dataset(gray).example_shape == (1, 6, 6)
    floats = tv.datasets.ImageFolder(str(root), transform=tv.transforms.ToTensor())
    as_float = ArrayStore.from_dataset(floats)
    assert as_float.data.dtype == torch.float32
    assert torch.allclose(as_float.data, store.data.float() / 255)


def test_from_dataset_and_from_tensors_on_a_tensor_dataset():
    x = torch.randn(12, 5)
    y = torch.tensor([10, 30, 20] * 4)  # sparse labels: classes in sorted order
    store = ArrayStore.from_dataset(TensorDataset(x, y), class_names=None)
    assert store.data.dtype == torch.float32 and torch.equal(store.data, x)
    assert store.labels.tolist() == [0, 2, 1] * 4 and store.class_names == ["10", "20", "30"]
    named = ArrayStore.from_tensors(x, y, class_names=[f"c{i}" for i in range(31)])
    assert named.class_names == ["c10", "c20", "c30"]
    assert torch.equal(dataset_labels(Subset(TensorDataset(x, y), [3, 4])), torch.tensor([10, 30]))


class Unlabelled(Dataset):
    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int):
        return torch.zeros(2)


class Ragged(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        return torch.zeros(2 + (i == 2)), i % 2


class TextLabels(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int):
        return torch.zeros(2), "cat"


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: ArrayStore.from_dataset(Unlabelled()), "item 0 of the dataset is a Tensor"),
        (lambda: ArrayStore.from_dataset(Ragged()), "item 2 has shape (3,) but item 0 has (2,)"),
        (lambda: ArrayStore.from_dataset(TextLabels()), "item 0 of the dataset has label 'cat'"),
        (lambda: ArrayStore.from_dataset([]), "the dataset is empty"),
        (lambda: ArrayStore.from_tensors(torch.zeros(3, 2), torch.zeros(2)), "y must be one"),
        (
            lambda: ArrayStore.from_tensors(torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64)),
            "x has 3 examples but y has 2",
        ),
        (
            lambda: ArrayStore.from_tensors(torch.zeros(2, 2), torch.tensor([0, 5]), ["a"]),
            "class_names has 1 names but the labels go up to 5",
        ),
        (
            lambda: EpisodeBatchSampler(Unlabelled(), way=2, shot=1, query=1, episodes=1),
            "item 0 of the dataset is a Tensor",
        ),
        (
            lambda: EpisodeBatchSampler(
                None, labels=[0, 0, 1, 1], way=3, shot=1, query=1, episodes=1
            ),
            "way 3 is larger than the 2 classes",
        ),
        (
            lambda: EpisodeBatchSampler(None, labels=[0, 0, 1], way=2, shot=1, query=1, episodes=1),
            "smallest class (label 1, 1 items)",
        ),
        (
            lambda: EpisodeBatchSampler(None, labels=[0, 1], way=0, shot=1, query=1, episodes=1),
            "way must be an integer >= 1",
        ),
        (
            lambda: EpisodeBatchSampler(
                None, labels=[0.5, 1.0], way=1, shot=1, query=1, episodes=1
            ),
            "labels must be one integer class label",
        ),
    ],
)
def test_bad_data_is_one_clear_line(make, needle):
    with pytest.raises(FsbenchError) as info:
        make()
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_collate_refuses_items_of_another_sampler():
    x, y = tensors()
    sampler = EpisodeBatchSampler(None, labels=y, way=2, shot=1, query=1, episodes=1)
    collate = collate_episode(sampler)
    with pytest.raises(FsbenchError, match="not an episode of its sampler"):
        zeros, ones = (torch.nonzero(y == c).flatten().tolist() for c in (0, 1))
        collate([(x[i], y[i]) for i in (zeros[0], ones[0], zeros[1], ones[1])])  # not class-major
    with pytest.raises(FsbenchError, match="got 3 items"):
        collate([(x[i], y[i]) for i in range(3)])
