"""Few-shot episodes from any labelled map-style ``torch.utils.data.Dataset``.

``EpisodeBatchSampler`` is a batch sampler: each batch it yields is the dataset indices of one
episode (or a meta-batch of ``batch`` tasks), and ``collate_episode`` turns the items a
``DataLoader`` reads for it into an ``Episode``, the object every fsbench method takes::

    sampler = EpisodeBatchSampler(dataset, way=5, shot=1, query=15, episodes=100, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_episode(sampler))
    for episode in loader:  # Episode: support_x [1, 5, C, H, W], query_x [1, 75, C, H, W], ...
        ...

The draw is ``fsbench.data.store.draw_indices``, the same as ``ArrayStore.sample_episode``:
with the same seed, the sampler's episodes are those of ``ArrayStore.from_dataset(dataset)``
on the CPU, drawn one after the other from ``store.generator(seed)`` (a store that turns its
classes, ``rotate_classes``, draws more random numbers and differs).

Class ids: the distinct labels of the dataset in sorted order are classes 0..C-1 (ImageFolder's
and CIFAR's labels are already 0..C-1), here and in ``ArrayStore.from_tensors``/``from_dataset``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fsbench.data.store import Episode, class_table, draw_indices
from fsbench.errors import FsbenchError


def dense_labels(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class ids 0..C-1 of ``labels`` (the distinct values in sorted order) and those values."""
    values = torch.unique(labels, sorted=True)
    return torch.searchsorted(values, labels), values


def as_label(value: Any, index: int) -> int:
    """An item's label as a Python int; a one-line FsbenchError naming the item otherwise."""
    if isinstance(value, torch.Tensor | np.ndarray) and np.prod(value.shape) == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise FsbenchError(
            f"item {index} of the dataset has label {value!r} ({type(value).__name__}); episodes "
            "need integer class labels"
        )
    return int(value)


def label_tensor(values: Any, what: str) -> torch.Tensor:
    """Labels (a list, array or tensor of integers) as an int64 tensor [N]."""
    t = torch.as_tensor(np.asarray(values)) if not isinstance(values, torch.Tensor) else values
    if t.ndim != 1 or t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise FsbenchError(
            f"{what} must be one integer class label per item, got {t.dtype} of shape "
            f"{tuple(t.shape)}"
        )
    return t.to(torch.int64).cpu()


def dataset_labels(dataset: Any, labels: Any = None) -> torch.Tensor:
    """The label of every item of ``dataset`` as an int64 tensor [N], found without reading the
    examples where possible: ``labels`` if given, else ``dataset.targets`` (torchvision's
    ImageFolder, CIFAR, MNIST), else ``dataset.labels``, else (a ``Subset``) those of the
    dataset under it at its indices; else one pass over ``dataset[i][1]``, which reads every
    item through its transform (pass ``labels=`` to avoid it)."""
    n = len(dataset)
    if labels is not None:
        found, what = label_tensor(labels, "labels"), "labels"
    elif getattr(dataset, "targets", None) is not None:
        found, what = label_tensor(dataset.targets, "dataset.targets"), "dataset.targets"
    elif getattr(dataset, "labels", None) is not None:
        found, what = label_tensor(dataset.labels, "dataset.labels"), "dataset.labels"
    elif hasattr(dataset, "dataset") and hasattr(dataset, "indices"):  # torch Subset
        inner = dataset_labels(dataset.dataset)
        found, what = inner[torch.as_tensor(list(dataset.indices), dtype=torch.int64)], "a Subset"
    else:
        found = torch.tensor([as_label(item_pair(dataset[i], i)[1], i) for i in range(n)])
        what = "the items"
    if len(found) != n:
        raise FsbenchError(f"{what} has {len(found)} labels but the dataset {n} items")
    return found.to(torch.int64)


def item_pair(item: Any, index: int) -> tuple[Any, Any]:
    """An item as (example, label); a one-line FsbenchError naming the item otherwise."""
    if not isinstance(item, tuple | list) or len(item) < 2:
        raise FsbenchError(
            f"item {index} of the dataset is a {type(item).__name__}, not an (example, label) "
            "pair: episodes need labelled items"
        )
    return item[0], item[1]


def as_example(x: Any, index: int) -> torch.Tensor:
    """One example as a tensor: a PIL image as uint8 [C, H, W] (C = 1 for grayscale, 3
    otherwise), uint8 arrays kept uint8, everything else float32 (values as they are)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(x, Image.Image):
        mode = "L" if x.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
        arr = np.asarray(x.convert(mode) if x.mode != mode else x, dtype=np.uint8)
        t = torch.from_numpy(arr.copy())
        return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()
    if isinstance(x, np.ndarray | np.generic | int | float):
        x = torch.as_tensor(np.asarray(x))
    if not isinstance(x, torch.Tensor):
        raise FsbenchError(
            f"item {index} of the dataset has an example of type {type(x).__name__}; give the "
            "dataset a transform that returns a tensor or a PIL image"
        )
    return x if x.dtype == torch.uint8 else x.to(torch.float32)


def check_shape(example: torch.Tensor, index: int, shape: torch.Size) -> None:
    """A one-line FsbenchError when item ``index``'s example is not of item 0's ``shape``."""
    if example.shape != shape:
        raise FsbenchError(
            f"item {index} has shape {tuple(example.shape)} but item 0 has {tuple(shape)}: "
            "give the dataset a transform that makes every example one shape (e.g. "
            "transforms.Resize((H, W)))"
        )


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """As ``ArrayStore.to_float``: uint8 images to float32 in [0, 1], the rest float32."""
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32)


def _count(name: str, value: object) -> int:
    try:
        ok = not isinstance(value, bool) and operator.index(value) >= 1  # type: ignore[arg-type]
    except TypeError:
        ok = False
    if not ok:
        raise FsbenchError(f"{name} must be an integer >= 1, got {value!r}")
    return operator.index(value)  # type: ignore[arg-type]


class EpisodeBatchSampler(Sampler[list[int]]):
    """``episodes`` few-shot episodes per epoch over a labelled map-style dataset, seeded.

    Each batch is the dataset indices of ``batch`` tasks of ``way`` classes with ``shot + query``
    distinct examples each, task-major then class-major (a class's ``shot`` support examples,
    then its ``query`` queries). Epochs continue one seeded stream: epoch e holds the episodes
    e * episodes .. (e + 1) * episodes - 1 of ``torch.Generator().manual_seed(seed)``, so a
    fresh sampler gives the same epochs, and ``set_epoch`` jumps to one. Labels: see
    ``dataset_labels`` (``labels=`` avoids reading the items).
    """

    def __init__(
        self,
        dataset: Dataset | Sequence | None,
        *,
        way: int,
        shot: int,
        query: int,
        episodes: int,
        seed: int = 0,
        batch: int = 1,
        labels: Any = None,
    ) -> None:
        if dataset is None and labels is None:
            raise FsbenchError("give the dataset or its labels= (one integer label per item)")
        self.way, self.shot, self.query = (
            _count("way", way),
            _count("shot", shot),
            _count("query", query),
        )
        self.episodes, self.batch = _count("episodes", episodes), _count("batch", batch)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise FsbenchError(f"seed must be an integer >= 0, got {seed!r}")
        self.seed = int(seed)
        raw = (
            dataset_labels(dataset, labels)
            if dataset is not None
            else label_tensor(labels, "labels")
        )
        dense, self.label_values = dense_labels(raw)
        self.num_classes = len(self.label_values)
        self.class_counts, self.class_index = class_table(dense, self.num_classes)
        if self.way > self.num_classes:
            raise FsbenchError(
                f"way {self.way} is larger than the {self.num_classes} classes of the dataset"
            )
        smallest = int(self.class_counts.min()) if self.num_classes else 0
        if self.shot + self.query > smallest:
            small = int(self.label_values[int(self.class_counts.argmin())])
            raise FsbenchError(
                f"shot + query = {self.shot + self.query} is larger than the smallest class "
                f"(label {small}, {smallest} items); choose shot + query <= {smallest}"
            )
        self._epoch = 0
        self._states: dict[int, torch.Tensor] = {}  # generator state at the start of an epoch

    def __len__(self) -> int:
        return self.episodes

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (as after ``epoch`` full iterations)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise FsbenchError(f"epoch must be an integer >= 0, got {epoch!r}")
        self._epoch = epoch

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One meta-batch: dataset indices [batch, way, shot+query] and class ids [batch, way]."""
        return draw_indices(
            generator,
            self.class_index,
            self.class_counts,
            self.way,
            self.shot,
            self.query,
            self.batch,
        )

    def _generator_at(self, epoch: int) -> torch.Generator:
        """A CPU generator in the state that starts ``epoch`` (replayed from the nearest known)."""
        gen = torch.Generator().manual_seed(self.seed)
        start = max((e for e in self._states if e <= epoch), default=0)
        if start:
            gen.set_state(self._states[start])
        for e in range(start, epoch):
            for _ in range(self.episodes):
                self.draw(gen)
            self._states[e + 1] = gen.get_state()
        return gen

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self._epoch
        self._epoch += 1
        gen = self._generator_at(epoch)
        for _ in range(self.episodes):
            idx, _classes = self.draw(gen)
            yield idx.reshape(-1).tolist()
        self._states[epoch + 1] = gen.get_state()


def collate_episode(sampler: EpisodeBatchSampler) -> Callable[[list], Episode]:
    """The ``collate_fn`` that turns the items of one of ``sampler``'s batches into an Episode:
    examples as float32 (uint8 and PIL images scaled to [0, 1], as the stores do), labels
    0..way-1 class-major, and ``classes`` [batch, way] the class ids (see the module)."""
    way, shot, query, batch = sampler.way, sampler.shot, sampler.query, sampler.batch
    n = shot + query
    values = sampler.label_values

    def collate(items: list) -> Episode:
        if len(items) != batch * way * n:
            raise FsbenchError(
                f"collate_episode got {len(items)} items but an episode of the sampler has "
                f"{batch * way * n}: use it with batch_sampler=the same sampler"
            )
        pairs = [item_pair(item, i) for i, item in enumerate(items)]
        examples = [as_example(p[0], i) for i, p in enumerate(pairs)]
        for i, e in enumerate(examples):
            check_shape(e, i, examples[0].shape)
        x = torch.stack([_to_float(e) for e in examples])
        y = torch.tensor([as_label(p[1], i) for i, p in enumerate(pairs)], dtype=torch.int64)
        ids = torch.searchsorted(values, y).clamp_(max=len(values) - 1)
        ids = ids.view(batch, way, n)
        if not bool((values[ids] == y.view(batch, way, n)).all()) or not bool(
            (ids == ids[:, :, :1]).all()
        ):
            raise FsbenchError(
                "collate_episode got items that are not an episode of its sampler (each "
                "class's shot + query items in a row): use batch_sampler=the same sampler"
            )
        shape = x.shape[1:]
        x = x.view(batch, way, n, *shape)
        labels = torch.arange(way).view(1, way)
        return Episode(
            support_x=x[:, :, :shot].reshape(batch, way * shot, *shape),
            support_y=labels.repeat_interleave(shot, dim=1).expand(batch, -1).contiguous(),
            query_x=x[:, :, shot:].reshape(batch, way * query, *shape),
            query_y=labels.repeat_interleave(query, dim=1).expand(batch, -1).contiguous(),
            way=way,
            shot=shot,
            query=query,
            classes=ids[:, :, 0].contiguous(),
        )

    return collate


__all__ = ["EpisodeBatchSampler", "collate_episode", "dataset_labels"]
