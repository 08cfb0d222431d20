"""LITE (Bronskill et al. 2021): back-propagate through a random subset of a task's support set.

All N support images are embedded without keeping activations (``torch.no_grad``, in chunks),
then H of them, drawn at random each step, are embedded again with gradients. Their embeddings
enter the task with the exact forward values, and the gradient through them is multiplied by N/H:

    z_n  for n not in H                                  (constant)
    z_n + (N/H) * (z'_n - stop_gradient(z'_n))  for n in H   (same value; gradient x N/H)

Each image is in a random H-subset with probability H/N, so the expected gradient equals full
back-propagation — the paper's unbiased estimator. The official code differs: the LITE repository
applies no N/H factor (its support-path gradient is H/N of the full one on average), and the ORBIT
code multiplies the whole loss by N/H (which also inflates the query path). fsbench follows the
paper. The estimate is exact only if an image's embedding does not depend on the other images of
its batch: per-image normalisation (group norm, or batch norm with fixed running statistics).

Memory then grows with H and the query set, not with the support set.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

CHUNK = 64  # support images embedded at once without gradients


def lite_embed(
    embed: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    subset: torch.Tensor,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """Embeddings of all ``images``; the gradient flows through ``subset`` only, scaled by N/H."""
    n, h = images.shape[0], subset.numel()
    with torch.no_grad():
        z = torch.cat([embed(images[i : i + chunk]) for i in range(0, n, chunk)])
    fresh = embed(images[subset])
    return z.index_put((subset,), z[subset] + (n / h) * (fresh - fresh.detach()))


def draw_subset(n: int, h: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A uniform random subset of H of the N support positions."""
    return torch.randperm(n, generator=generator, device=device)[:h]
