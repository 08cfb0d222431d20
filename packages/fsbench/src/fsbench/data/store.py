"""One array store per dataset split, held on the training device, and seeded episode sampling.

Every sample drawn here is a tensor-indexing operation on the store's device: no Python loop
over files or examples, so sampling costs microseconds even for large meta-batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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

    @property
    def way(self) -> int:
        return int(self.support_y.max().item()) + 1


class ArrayStore:
    """Examples of one split grouped by class, as tensors on one device.

    ``data`` holds the raw examples ([N, *example_shape], uint8 images or float signals) and
    ``labels`` their class ids 0..C-1. uint8 data is converted to float in [0, 1] only for the
    examples an episode draws, so a whole dataset stays compact on the device.
    """

    def __init__(
        self,
        data: torch.Tensor,
        labels: torch.Tensor,
        class_names: list[str] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if data.shape[0] != labels.shape[0]:
            raise ValueError(f"data has {data.shape[0]} examples but labels has {labels.shape[0]}")
        self.device = torch.device(device)
        self.data = data.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.num_classes = int(self.labels.max().item()) + 1 if len(self.labels) else 0
        self.class_names = class_names or [str(c) for c in range(self.num_classes)]
        counts = torch.bincount(self.labels, minlength=self.num_classes)
        self.class_counts = counts
        # index table [C, Kmax]: row c lists the positions of class c, padded with -1.
        order = torch.argsort(self.labels, stable=True)
        kmax = int(counts.max().item()) if self.num_classes else 0
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(order), device=self.device) - starts[self.labels[order]]
        table = torch.full((self.num_classes, kmax), -1, dtype=torch.int64, device=self.device)
        table[self.labels[order], rank] = order
        self.class_index = table

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    @property
    def min_class_size(self) -> int:
        return int(self.class_counts.min().item())

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """Examples as float32; uint8 images are scaled to [0, 1]."""
        if x.dtype == torch.uint8:
            return x.to(torch.float32).div_(255.0)
        return x.to(torch.float32)

    def check_episode(self, way: int, shot: int, query: int) -> None:
        """Raise ValueError with a clear message when an episode cannot be drawn from this split."""
        if way < 1 or shot < 1 or query < 1:
            raise ValueError(f"way, shot and query must be >= 1, got {way}, {shot}, {query}")
        if way > self.num_classes:
            raise ValueError(f"--way {way} is larger than the {self.num_classes} classes of this split")
        if shot + query > self.min_class_size:
            raise ValueError(
                f"--shot + --query = {shot + query} is larger than the smallest class "
                f"({self.min_class_size} examples)"
            )

    def sample_episode(
        self, generator: torch.Generator, way: int, shot: int, query: int, batch: int = 1
    ) -> Episode:
        """Draw ``batch`` independent tasks: ``way`` classes, ``shot + query`` distinct examples each."""
        self.check_episode(way, shot, query)
        dev = self.device
        classes = torch.rand(batch, self.num_classes, generator=generator, device=dev)
        classes = classes.argsort(dim=1)[:, :way]  # [B, way]
        n = shot + query
        kmax = self.class_index.shape[1]
        keys = torch.rand(batch, way, kmax, generator=generator, device=dev)
        valid = torch.arange(kmax, device=dev) < self.class_counts[classes].unsqueeze(-1)
        keys = keys.masked_fill(~valid, 2.0)  # padding sorts last
        picks = keys.argsort(dim=-1)[..., :n]  # [B, way, n]
        idx = torch.gather(self.class_index[classes], 2, picks)  # [B, way, n]
        x = self.to_float(self.data[idx])  # [B, way, n, *shape]
        y = torch.arange(way, device=dev).view(1, way, 1).expand(batch, way, n)
        shape = self.example_shape
        return Episode(
            support_x=x[:, :, :shot].reshape(batch, way * shot, *shape),
            support_y=y[:, :, :shot].reshape(batch, way * shot),
            query_x=x[:, :, shot:].reshape(batch, way * query, *shape),
            query_y=y[:, :, shot:].reshape(batch, way * query),
        )

    def sample_batch(
        self, generator: torch.Generator, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A plain supervised minibatch (with replacement across calls) for the classifiers."""
        idx = torch.randint(len(self), (batch_size,), generator=generator, device=self.device)
        return self.to_float(self.data[idx]), self.labels[idx]
