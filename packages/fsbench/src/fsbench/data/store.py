"""One array store per dataset split, held on the training device, and seeded episode sampling.

Every sample drawn here is a tensor-indexing operation on the store's device: no Python loop
over files or examples, so sampling costs microseconds even for large meta-batches.

Determinism: the same store, generator seed and arguments give the same episode on the same
device type. CPU and CUDA generators produce different streams, so a CUDA run and a CPU run
with the same seed draw different (equally valid) episodes.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from fsbench.errors import FsbenchError


def _check_count(flag: str, value: object) -> None:
    """Raise FsbenchError unless ``value`` is an integer >= 1 (Python, numpy or 0-d tensor)."""
    try:
        ok = not isinstance(value, bool) and operator.index(value) >= 1  # type: ignore[arg-type]
    except TypeError:
        ok = False
    if not ok:
        raise FsbenchError(f"{flag} must be an integer >= 1, got {value!r}")


def class_table(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Examples per class, [C], and the index table [C, Kmax] whose row c lists the positions of
    class c in order, padded with -1: what ``draw_indices`` draws from (on ``labels``' device)."""
    dev = labels.device
    counts = torch.bincount(labels, minlength=num_classes)
    order = torch.argsort(labels, stable=True)
    kmax = int(counts.max().item()) if num_classes else 0
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(order), device=dev) - starts[labels[order]]
    table = torch.full((num_classes, kmax), -1, dtype=torch.int64, device=dev)
    table[labels[order], rank] = order
    return counts, table


def draw_indices(
    generator: torch.Generator,
    class_index: torch.Tensor,
    class_counts: torch.Tensor,
    way: int,
    shot: int,
    query: int,
    batch: int = 1,
    classes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The one episode draw: positions [B, way, shot+query] and classes [B, way].

    Every task takes a uniform random subset of ``way`` classes (sorted by their random keys)
    and of each class a uniform random subset of ``shot + query`` examples (the first ``shot``
    are its support). ``ArrayStore.sample_indices`` and ``EpisodeBatchSampler`` both draw here,
    so the same generator state gives the same episode. Arguments are not checked.
    """
    way, shot, query, batch = (operator.index(v) for v in (way, shot, query, batch))
    dev = class_index.device
    if classes is None:
        # A uniform random subset of classes per task: the first `way` of a random permutation.
        keys = torch.rand(batch, class_index.shape[0], generator=generator, device=dev)
        classes = keys.topk(way, dim=1, largest=False, sorted=True).indices  # [B, way]
    n = shot + query
    kmax = class_index.shape[1]
    # A uniform random subset of each class's examples; padding gets key 2.0 and is never
    # picked because n <= the smallest class size.
    keys = torch.rand(batch, way, kmax, generator=generator, device=dev)
    valid = torch.arange(kmax, device=dev) < class_counts[classes].unsqueeze(-1)
    keys = keys.masked_fill_(~valid, 2.0)
    picks = keys.topk(n, dim=-1, largest=False, sorted=True).indices  # [B, way, n]
    idx = torch.gather(class_index[classes], 2, picks)
    return idx, classes


class LazyRows(Protocol):
    """Examples read when indexed rather than held (Meta-Dataset's records: ``RecordImages``):
    the part of a tensor's interface a store reads its ``data`` through."""

    shape: torch.Size
    dtype: torch.dtype
    ndim: int

    def __len__(self) -> int: ...
    def __getitem__(self, idx: Any) -> torch.Tensor: ...
    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor: ...
    def to(self, device: torch.device | str) -> LazyRows: ...


@dataclass
class Episode:
    """A meta-batch of few-shot tasks; labels are 0..way-1 within each task, class-major order.

    support_x: [B, way*shot, *example_shape] float32; support_y: [B, way*shot] int64
    query_x:   [B, way*query, *example_shape] float32; query_y:   [B, way*query] int64
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    way: int
    shot: int
    query: int
    classes: torch.Tensor | None = None  # [B, way]: the store's class ids of each task's labels


class ArrayStore:
    """Examples of one split grouped by class, as tensors on one device.

    ``data`` holds the raw examples ([N, *example_shape], uint8 images or float signals) and
    ``labels`` their class ids 0..C-1. uint8 data is converted to float in [0, 1] only for the
    examples an episode draws, so a whole dataset stays compact on the device. ``meta`` carries
    JSON-able provenance facts (source file, protocol notes) that ``describe_split`` reports.
    With ``rotate_classes`` every class of every sampled task is turned by its own random multiple
    of 90 degrees (cbfinn/maml's Omniglot augmentation; square images only).
    """

    def __init__(
        self,
        data: torch.Tensor | LazyRows,
        labels: torch.Tensor,
        class_names: list[str] | None = None,
        device: torch.device | str = "cpu",
        *,
        meta: dict[str, Any] | None = None,
        rotate_classes: bool = False,
    ) -> None:
        if data.ndim < 1 or labels.ndim != 1 or data.shape[0] != labels.shape[0]:
            raise FsbenchError(
                f"data has {data.shape[0] if data.ndim else 0} examples but labels has "
                f"shape {tuple(labels.shape)}; they must match one label per example"
            )
        self.device = torch.device(device)
        self.data: torch.Tensor | LazyRows = data.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        if len(self.labels) and int(self.labels.min().item()) < 0:
            raise FsbenchError("labels must be class ids >= 0")
        self.num_classes = int(self.labels.max().item()) + 1 if len(self.labels) else 0
        if class_names is not None and len(class_names) != self.num_classes:
            raise FsbenchError(
                f"class_names has {len(class_names)} entries but labels name "
                f"{self.num_classes} classes"
            )
        self.class_names = (
            list(class_names)
            if class_names is not None
            else [str(c) for c in range(self.num_classes)]
        )
        self.meta: dict[str, Any] = dict(meta or {})
        if rotate_classes and (self.data.ndim < 3 or self.data.shape[-1] != self.data.shape[-2]):
            raise FsbenchError("rotate_classes needs square images")
        self.rotate_classes = rotate_classes
        self.class_counts, self.class_index = class_table(self.labels, self.num_classes)
        # Python ints, read once here, so that checks never wait for the device.
        counts = self.class_counts
        self._min_class_size = int(counts.min().item()) if self.num_classes else 0

    @classmethod
    def from_tensors(
        cls,
        x: torch.Tensor,
        y: torch.Tensor,
        class_names: Sequence[str] | None = None,
        device: torch.device | str = "cpu",
        *,
        meta: dict[str, Any] | None = None,
    ) -> ArrayStore:
        """A store of your own examples ``x`` [N, ...] and integer labels ``y`` [N].

        uint8 ``x`` stays uint8 (images, scaled to [0, 1] when drawn), anything else becomes
        float32. The distinct labels in sorted order become classes 0..C-1; ``class_names``
        is indexed by label value (as a dataset's ``.classes``), default the labels as text.
        """
        from fsbench.data.sampler import dense_labels, label_tensor

        x = torch.as_tensor(x)
        labels = label_tensor(y, "y")
        if x.ndim < 1 or x.shape[0] != len(labels):
            raise FsbenchError(
                f"x has {x.shape[0] if x.ndim else 0} examples but y has {len(labels)} labels; "
                "give one label per example"
            )
        dense, values = dense_labels(labels)
        if class_names is not None:
            top = int(values[-1]) if len(values) else -1
            if int(values[0] if len(values) else 0) < 0 or len(class_names) <= top:
                raise FsbenchError(
                    f"class_names has {len(class_names)} names but the labels go up to {top}: "
                    "give one name per label value 0..max"
                )
            names = [str(class_names[int(v)]) for v in values]
        else:
            names = [str(int(v)) for v in values]
        data = x if x.dtype == torch.uint8 else x.to(torch.float32)
        return cls(data, dense, names, device, meta={"source": "from_tensors", **(meta or {})})

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        class_names: Sequence[str] | None = None,
        device: torch.device | str = "cpu",
    ) -> ArrayStore:
        """A store of every item of a map-style labelled ``dataset`` (``(example, label)``
        items), each read once through the dataset's own transform.

        PIL images are kept as uint8 [C, H, W] (grayscale: C = 1), as the built-in image
        stores; uint8 tensors stay uint8, other tensors become float32. Class names come from
        ``dataset.classes`` when it has them (else ``class_names``, else the labels as text).
        """
        from fsbench.data.sampler import as_example, as_label, check_shape, item_pair

        try:
            n = len(dataset)
        except TypeError:
            raise FsbenchError(
                f"{type(dataset).__name__} has no len(): give a map-style Dataset"
            ) from None
        if n == 0:
            raise FsbenchError("the dataset is empty")
        first_x, first_y = item_pair(dataset[0], 0)
        first = as_example(first_x, 0)
        data = torch.empty((n, *first.shape), dtype=first.dtype)
        labels = torch.empty(n, dtype=torch.int64)
        data[0], labels[0] = first, as_label(first_y, 0)
        for i in range(1, n):
            x, y = item_pair(dataset[i], i)
            example = as_example(x, i)
            check_shape(example, i, first.shape)
            if example.dtype != first.dtype:
                raise FsbenchError(
                    f"item {i} is {example.dtype} but item 0 {first.dtype}: give the dataset a "
                    "transform that returns one kind of example"
                )
            data[i], labels[i] = example, as_label(y, i)
        if class_names is None:
            class_names = getattr(dataset, "classes", None)
        meta = {"source": "from_dataset", "dataset": type(dataset).__name__}
        return cls.from_tensors(data, labels, class_names, device, meta=meta)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __repr__(self) -> str:
        return (
            f"ArrayStore({len(self)} examples of shape {self.example_shape}, "
            f"{self.num_classes} classes, {self.data.dtype}, device={self.device})"
        )

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    @property
    def min_class_size(self) -> int:
        return self._min_class_size

    def to(self, device: torch.device | str) -> ArrayStore:
        """The same split on another device (a copy; this store is unchanged)."""
        return ArrayStore(
            self.data,
            self.labels,
            self.class_names,
            device,
            meta=self.meta,
            rotate_classes=self.rotate_classes,
        )

    def generator(self, seed: int) -> torch.Generator:
        """A torch.Generator on this store's device, seeded, for ``sample_episode``."""
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """Examples as float32; uint8 images are scaled to [0, 1]."""
        if x.dtype == torch.uint8:
            return x.to(torch.float32).div_(255.0)
        return x.to(torch.float32)

    def check_episode(self, way: int, shot: int, query: int, batch: int = 1) -> None:
        """Raise FsbenchError with a clear message when an episode cannot be drawn from this split."""
        for flag, value in (
            ("--way", way),
            ("--shot", shot),
            ("--query", query),
            ("meta-batch size", batch),
        ):
            _check_count(flag, value)
        if way > self.num_classes:
            raise FsbenchError(
                f"--way {way} is larger than the {self.num_classes} classes of this split; "
                f"choose --way <= {self.num_classes}"
            )
        if shot + query > self.min_class_size:
            small = self.class_names[int(self.class_counts.argmin())]
            raise FsbenchError(
                f"--shot + --query = {shot + query} is larger than the smallest class "
                f"({self.min_class_size} examples), {small!r}; choose shot + query <= "
                f"{self.min_class_size}"
            )

    def _check_generator(self, generator: torch.Generator) -> None:
        """Raise FsbenchError when the generator lives on another device type than the store."""
        if generator.device.type != self.device.type:
            raise FsbenchError(
                f"the generator is on {generator.device} but the store is on {self.device}; "
                f"use store.generator(seed) or torch.Generator(device='{self.device.type}')"
            )

    def sample_indices(
        self,
        generator: torch.Generator,
        way: int,
        shot: int,
        query: int,
        batch: int = 1,
        check: bool = True,
        classes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of an episode's examples, [B, way, shot+query], and its classes, [B, way].

        ``check=False`` skips the argument checks (a training loop checks once, up front).
        ``classes`` ([B, way] class ids) fixes the tasks' classes instead of drawing them.
        """
        if check:
            self.check_episode(way, shot, query, batch)
            self._check_generator(generator)
        return draw_indices(
            generator, self.class_index, self.class_counts, way, shot, query, batch, classes
        )

    def sample_episode(
        self,
        generator: torch.Generator,
        way: int,
        shot: int,
        query: int,
        batch: int = 1,
        check: bool = True,
        classes: torch.Tensor | None = None,
    ) -> Episode:
        """Draw ``batch`` independent tasks: ``way`` classes, ``shot + query`` distinct examples each.

        ``classes`` ([B, way]) gives the tasks' classes (fresh examples of them are drawn).
        """
        idx, classes = self.sample_indices(generator, way, shot, query, batch, check, classes)
        way, shot, query, batch = (operator.index(v) for v in (way, shot, query, batch))
        shape = self.example_shape
        # Gather support and query separately, so each comes out contiguous (no slice copies).
        support = self.to_float(self.data[idx[:, :, :shot].reshape(-1)])
        query_ = self.to_float(self.data[idx[:, :, shot:].reshape(-1)])
        if self.rotate_classes:
            turns = torch.randint(4, (batch, way), generator=generator, device=self.device)
            support = _rotate(support.view(batch, way, shot, *shape), turns)
            query_ = _rotate(query_.view(batch, way, query, *shape), turns)
        labels = torch.arange(way, device=self.device).view(1, way)
        return Episode(
            support_x=support.view(batch, way * shot, *shape),
            support_y=labels.repeat_interleave(shot, dim=1).expand(batch, -1).contiguous(),
            query_x=query_.view(batch, way * query, *shape),
            query_y=labels.repeat_interleave(query, dim=1).expand(batch, -1).contiguous(),
            way=way,
            shot=shot,
            query=query,
            classes=classes,
        )

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples (as float) and labels at the positions ``idx``."""
        return self.to_float(self.data[idx]), self.labels[idx]

    def batch_slice(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference MNIST-1D loop's minibatch: examples [(step * b) % N : ... + b], no shuffle."""
        start = (int(step) * int(batch_size)) % len(self)
        end = start + int(batch_size)
        return self.to_float(self.data[start:end]), self.labels[start:end]

    def sample_batch(
        self, generator: torch.Generator, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A plain supervised minibatch (with replacement across calls) for the classifiers."""
        _check_count("--batch-size", batch_size)
        if len(self) == 0:
            raise FsbenchError("cannot draw a batch from an empty split")
        self._check_generator(generator)
        idx = torch.randint(len(self), (batch_size,), generator=generator, device=self.device)
        return self.to_float(self.data[idx]), self.labels[idx]


def _rotate(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Turn x [B, way, n, ..., H, W] by ``turns`` [B, way] quarter turns (counter-clockwise).

    All four turns are computed and selected with ``where``: no boolean indexing, so no wait for
    the device (the images are small).
    """
    shape = (*turns.shape, *([1] * (x.dim() - turns.dim())))
    out = x
    for k in (1, 2, 3):
        out = torch.where((turns == k).view(shape), torch.rot90(x, k, dims=(-2, -1)), out)
    return out
