"""k-means on the device, batched over groups: the modes of each class (Magnet loss, RepMet).

Magnet loss refreshes its per-class clusters of the whole training set every few hundred
iterations, and both Magnet and RepMet cluster each class's support embeddings in every test
episode; both run where the embeddings are (CPU or CUDA), so k-means here is torch code over a
[groups, points, features] tensor rather than a call into scikit-learn per class and episode.
It is Lloyd's algorithm with k-means++ seeding (Arthur & Vassilvitskii 2007), drawn from a
seeded torch.Generator: the same points and seed give the same clusters.
"""

from __future__ import annotations

import torch

ITERATIONS = 20  # Lloyd steps (as HaydenFaulkner/pytorch.repmet's scikit-learn max_iter=20)


def _squared(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared distances [G, N, k] of every point [G, N, E] to every centre [G, k, E]."""
    p2 = (points * points).sum(-1, keepdim=True)
    c2 = (centres * centres).sum(-1).unsqueeze(1)
    return (p2 - 2.0 * points @ centres.transpose(1, 2) + c2).clamp_min(0.0)


def kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k seeds per group [G, k, E]: the first uniform, each next drawn in proportion to the
    squared distance to the nearest seed so far (points that coincide with a seed are never
    drawn twice unless nothing else is left)."""
    g, n, _ = points.shape
    rows = torch.arange(g, device=points.device)
    first = torch.randint(n, (g,), generator=generator, device=points.device)
    chosen = [first]
    nearest = _squared(points, points[rows, first].unsqueeze(1))[..., 0]  # [G, N]
    for _ in range(1, k):
        weights = nearest.clamp_min(0.0)
        # a group whose points all coincide with seeds: draw uniformly among the unchosen
        taken = torch.zeros(g, n, dtype=torch.bool, device=points.device)
        for c in chosen:
            taken[rows, c] = True
        fallback = (~taken).to(points.dtype)
        empty = weights.sum(1, keepdim=True) <= 0
        weights = torch.where(empty, fallback, weights)
        nxt = torch.multinomial(weights, 1, generator=generator)[:, 0]
        chosen.append(nxt)
        d = _squared(points, points[rows, nxt].unsqueeze(1))[..., 0]
        nearest = torch.minimum(nearest, d)
    return points[rows.unsqueeze(1), torch.stack(chosen, 1)]


def kmeans(
    points: torch.Tensor,
    k: int,
    generator: torch.Generator,
    iterations: int = ITERATIONS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster each group of ``points`` [G, N, E] into ``k`` clusters (k <= N).

    Returns the centres [G, k, E] and each point's cluster [G, N]. A cluster that loses all its
    points keeps its previous centre. With k == N every point is its own cluster.
    """
    g, n, _ = points.shape
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= points per group, got k={k} for {n} points")
    points = points.float()
    if k == n:
        order = torch.arange(n, device=points.device).expand(g, n)
        return points.clone(), order.clone()
    centres = kmeans_plus_plus(points, k, generator)
    for _ in range(iterations):
        assign = _squared(points, centres).argmin(-1)  # [G, N]
        onehot = torch.nn.functional.one_hot(assign, k).to(points.dtype)  # [G, N, k]
        counts = onehot.sum(1)  # [G, k]
        sums = onehot.transpose(1, 2) @ points  # [G, k, E]
        updated = sums / counts.clamp_min(1.0).unsqueeze(-1)
        centres = torch.where((counts > 0).unsqueeze(-1), updated, centres)
    return centres, _squared(points, centres).argmin(-1)


def support_modes(
    z: torch.Tensor, way: int, shot: int, k: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` modes of each class of an episode's support embeddings z [way*shot, E]
    (class-major): centres [way*k, E] and their classes [way*k]. k = 1 is the class mean
    (ProtoNets' prototype); k = shot keeps every support embedding as its own mode."""
    grouped = z.float().view(way, shot, -1)
    if k == 1:
        centres = grouped.mean(1, keepdim=True)
    else:
        centres, _ = kmeans(grouped, k, generator)
    classes = torch.arange(way, device=z.device).repeat_interleave(k)
    return centres.reshape(way * k, -1), classes
