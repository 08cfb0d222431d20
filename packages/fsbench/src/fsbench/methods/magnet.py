"""Magnet loss (Rippel et al., ICLR 2016): classes as several clusters in embedding space.

This module holds the paper's three pieces as functions over tensors; the training method that
drives them (k-means refresh, the loop) builds on them.

- ``magnet_loss``: a batch of M clusters with D examples each. With the batch's cluster means
  mu_m and the batch variance sigma^2 = sum ||r - mu(r)||^2 / (MD - 1) (the paper's eq. 4),

      L = 1/(MD) sum_r [ -log( exp(-||r - mu(r)||^2 / (2 sigma^2) - alpha)
                               / sum_{mu : class(mu) != class(r)} exp(-||r - mu||^2 / (2 sigma^2)) ) ]_+

  Public implementations (tf-magnet-loss and its PyTorch ports) divide by 2 * variance^2; the paper
  has sigma^2 = the variance, which fsbench follows.
- ``neighbourhood``: the batch sampler's cluster choice — a seed cluster drawn in proportion to
  its members' mean loss, then its M - 1 nearest clusters of other classes (impostors).
- ``soft_vote``: classification by the L nearest cluster means, each voting for its class with
  weight exp(-||r - mu||^2 / (2 sigma^2)), sigma^2 the average batch variance seen in training.
"""

from __future__ import annotations

import torch

ALPHA = 1.0  # the paper's cluster-separation margin


def batch_variance(z: torch.Tensor, cluster: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's cluster means [C, E] (clusters numbered 0..C-1) and the variance sigma^2."""
    count = int(cluster.max()) + 1
    sums = torch.zeros(count, z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, cluster, z)
    sizes = torch.bincount(cluster, minlength=count).to(z.dtype)
    means = sums / sizes[:, None]
    variance = ((z - means[cluster]) ** 2).sum() / (z.shape[0] - 1)
    return means, variance


def magnet_loss(
    z: torch.Tensor,
    cluster: torch.Tensor,
    cluster_class: torch.Tensor,
    alpha: float = ALPHA,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The magnet loss of a batch and each example's own (for the sampler's cluster losses).

    z: [N, E] embeddings; cluster: [N] the batch-local cluster of each (0..C-1);
    cluster_class: [C] the class of each cluster.
    """
    means, variance = batch_variance(z, cluster)
    d2 = torch.cdist(z, means) ** 2  # [N, C]
    scaled = -d2 / (2 * variance)
    own = scaled.gather(1, cluster[:, None])[:, 0]
    impostor = cluster_class[None, :] != cluster_class[cluster][:, None]
    denominator = torch.logsumexp(scaled.masked_fill(~impostor, float("-inf")), dim=1)
    each = torch.relu(-(own - alpha - denominator))
    return each.mean(), each.detach()


def neighbourhood(
    means: torch.Tensor,
    mean_class: torch.Tensor,
    cluster_loss: torch.Tensor,
    m: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """M cluster ids: a seed drawn with probability proportional to its loss, then its M - 1
    nearest clusters of other classes, nearest first."""
    seed = torch.multinomial(cluster_loss.clamp_min(1e-12), 1, generator=generator)[0]
    d2 = ((means - means[seed]) ** 2).sum(1)
    d2 = d2.masked_fill(mean_class == mean_class[seed], float("inf"))
    impostors = torch.argsort(d2, stable=True)[: m - 1]
    return torch.cat([seed[None], impostors])


def soft_vote(
    z: torch.Tensor,
    means: torch.Tensor,
    mean_class: torch.Tensor,
    variance: float,
    nearest: int,
    num_classes: int,
) -> torch.Tensor:
    """Class probabilities [N, num_classes] from the ``nearest`` cluster means of each example."""
    d2 = torch.cdist(z, means) ** 2
    nearest = min(nearest, means.shape[0])
    close, index = torch.topk(d2, nearest, dim=1, largest=False)
    weight = torch.softmax(-close / (2 * variance), dim=1)  # exp(.) normalised over the L
    votes = torch.zeros(z.shape[0], num_classes, dtype=z.dtype, device=z.device)
    return votes.scatter_add_(1, mean_class[index], weight)
