"""Tiny synthetic datasets (class prototypes plus noise) for tests and speed benchmarks."""

from __future__ import annotations

import torch

from fsbench.data.store import ArrayStore


def synthetic_images(
    classes: int = 20,
    per_class: int = 20,
    size: int = 16,
    noise: float = 0.35,
    seed: int = 0,
    device: str = "cpu",
    noise_seed: int | None = None,
) -> ArrayStore:
    """uint8 images [N, 1, size, size]: each class a random pattern (``seed``), examples noisy copies.

    Two stores with the same ``seed`` and different ``noise_seed`` share classes, not examples.
    """
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(classes, 1, size, size, generator=g)
    if noise_seed is not None:
        g = torch.Generator().manual_seed(noise_seed)
    y = torch.arange(classes).repeat_interleave(per_class)
    x = protos[y] + noise * torch.randn(len(y), 1, size, size, generator=g)
    return ArrayStore((x.clamp(0, 1) * 255).round().to(torch.uint8), y, device=device)


def synthetic_signals(
    classes: int = 10,
    per_class: int = 100,
    length: int = 40,
    noise: float = 1.0,
    seed: int = 0,
    noise_seed: int = 1,
) -> ArrayStore:
    """float signals [N, length]: each class a random template (``seed``) plus Gaussian noise."""
    templates = torch.randn(classes, length, generator=torch.Generator().manual_seed(seed))
    y = torch.arange(classes).repeat_interleave(per_class)
    g = torch.Generator().manual_seed(noise_seed)
    x = templates[y] + noise * torch.randn(len(y), length, generator=g)
    return ArrayStore(x, y)


def synthetic_loader(size: int = 16, classes: int = 20, per_class: int = 20):
    """A ``load_split``-shaped function over synthetic data (each split its own classes)."""

    def load(name: str, split: str, *, data_root=None, device="cpu", seed: int = 0, **options):
        offset = {"train": 0, "val": 1, "test": 2}[split]
        if name.startswith("mnist1d"):
            return synthetic_signals(per_class=per_class * 5, noise_seed=10 + offset)
        return synthetic_images(classes, per_class, size, seed=100 + offset, device=device)

    return load
