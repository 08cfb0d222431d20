"""Magnet loss (Rippel et al., ICLR 2016): classes as several clusters in embedding space.

The paper's three pieces are functions over tensors; ``Magnet`` is the training method that
drives them on a Conv-4 embedding (the ProtoNets backbone, so that only the loss differs):

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

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fsbench.data.store import ArrayStore
from fsbench.methods.backbone import UserNet
from fsbench.methods.clusters import kmeans
from fsbench.methods.modes import ModesMethod
from fsbench.models.conv4 import embedding_conv4

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
    order = torch.argsort(d2, stable=True)[: m - 1]
    impostors = order[torch.isfinite(d2[order])]  # fewer when few clusters of other classes
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


REFRESH_CHUNK = 1024  # images embedded at once when the cluster index is refreshed


@dataclass
class MagnetBatch:
    """M clusters x D images: the images, each one's batch-local cluster, the clusters' classes,
    and the images' positions in the training split (to record their losses)."""

    x: torch.Tensor
    cluster: torch.Tensor
    cluster_class: torch.Tensor
    positions: torch.Tensor


class Magnet(ModesMethod):
    """Magnet loss on an embedding network: K k-means clusters per class, refreshed every
    ``refresh_every`` iterations; neighbourhood batches; soft-vote evaluation.

    ``backbone``: any embedding network, x [B, *example_shape] -> [B, D] (more output dims are
    flattened; one-channel [H, W] images arrive as [B, 1, H, W]); None: the preset's Conv-4.
    """

    name = "magnet"

    def __init__(self, backbone: nn.Module | None = None, **kw: Any) -> None:
        super().__init__(backbone, **kw)
        settings = self.settings
        if backbone is None:
            self.model: nn.Module = embedding_conv4(self.shape(), settings)
        else:
            self.model = UserNet(backbone, flatten=True)
        self.alpha = float(settings.margin)
        self.refresh_every = int(settings.refresh_every)  # 0: once per epoch
        self.nearest = int(settings.nearest)
        # the cluster index of the training split (built on the first iteration)
        self.means: torch.Tensor | None = None  # [C*K, E]
        self.mean_class: torch.Tensor | None = None  # [C*K]
        self.assign: torch.Tensor | None = None  # [N]: each training image's cluster
        self.example_loss: torch.Tensor | None = None  # [N]: each image's last seen loss
        # sigma^2 for the soft vote: the mean of the training batches' variances
        self.variance_sum = torch.zeros((), dtype=torch.float64)
        self.variance_count = 0

    # -- the cluster index ------------------------------------------------------------------
    def refresh(self, store: ArrayStore, generator: torch.Generator) -> None:
        """Embed the whole training split and k-means each class into K clusters."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                z = torch.cat(
                    [
                        self.embed(store.to_float(store.data[lo : lo + REFRESH_CHUNK]))
                        for lo in range(0, len(store), REFRESH_CHUNK)
                    ]
                )
        finally:
            self.model.train(was_training)
        k = self.modes
        means, assign = [], torch.empty(len(store), dtype=torch.int64, device=z.device)
        for c in range(store.num_classes):
            rows = store.class_index[c, : int(store.class_counts[c])]
            centres, local = kmeans(z[rows].unsqueeze(0), k, generator)
            means.append(centres[0])
            assign[rows] = local[0] + c * k
        self.means = torch.cat(means)
        self.mean_class = torch.arange(store.num_classes, device=z.device).repeat_interleave(k)
        self.assign = assign
        if self.example_loss is None:  # uniform seeds until losses have been seen
            self.example_loss = torch.ones(len(store), device=z.device)

    def refresh_interval(self, store: ArrayStore) -> int:
        """Iterations between refreshes: the setting, or one epoch (N / (M D), tf-magnet-loss)."""
        if self.refresh_every > 0:
            return self.refresh_every
        per_batch = int(self.settings.clusters_per_batch) * int(self.settings.images_per_cluster)
        return max(1, len(store) // per_batch)

    def index(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The cluster index: means, their classes, each image's cluster, each image's loss."""
        means, mean_class, assign, loss = (
            self.means,
            self.mean_class,
            self.assign,
            self.example_loss,
        )
        if means is None or mean_class is None or assign is None or loss is None:
            raise RuntimeError("the cluster index is built by refresh() (the first training batch)")
        return means, mean_class, assign, loss

    def cluster_losses(self) -> torch.Tensor:
        """Each cluster's mean member loss (the seed cluster's sampling weight)."""
        means, _, assign, example_loss = self.index()
        count = means.shape[0]
        sums = torch.zeros(count, device=assign.device).index_add_(0, assign, example_loss)
        sizes = torch.bincount(assign, minlength=count).clamp_min(1)
        return sums / sizes

    # -- training -----------------------------------------------------------------------------
    def sample_train(
        self, store: ArrayStore, generator: torch.Generator, iteration: int
    ) -> MagnetBatch:
        s = self.settings
        if self.means is None or iteration % self.refresh_interval(store) == 0:
            self.refresh(store, generator)
        means, mean_class, assign, _ = self.index()
        chosen = neighbourhood(
            means, mean_class, self.cluster_losses(), s.clusters_per_batch, generator
        )
        d = int(s.images_per_cluster)
        members = assign[None, :] == chosen[:, None]  # [M, N]
        keys = torch.rand(members.shape, generator=generator, device=members.device)
        keys = keys.masked_fill_(~members, 2.0)
        picks = keys.topk(d, dim=1, largest=False, sorted=True).indices  # [M, D]
        # a cluster of fewer than D images repeats its members
        size = members.sum(1, keepdim=True)
        slot = torch.arange(d, device=picks.device)[None, :] % size
        positions = torch.gather(picks, 1, slot).reshape(-1)
        m = chosen.shape[0]
        return MagnetBatch(
            x=store.to_float(store.data[positions]),
            cluster=torch.arange(m, device=positions.device).repeat_interleave(d),
            cluster_class=mean_class[chosen],
            positions=positions,
        )

    def train_loss(self, batch: MagnetBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.embed(batch.x)
        with torch.autocast(z.device.type, enabled=False):
            loss, each = magnet_loss(z, batch.cluster, batch.cluster_class, self.alpha)
            means, variance = batch_variance(z.detach(), batch.cluster)
        example_loss = self.index()[3]
        example_loss[batch.positions] = each.to(example_loss.dtype)
        self.variance_sum = self.variance_sum.to(variance.device) + variance.double()
        self.variance_count += 1
        # the batch's own accuracy: the class of each image's nearest batch cluster mean
        nearest = batch.cluster_class[torch.cdist(z.detach(), means).argmin(1)]
        accuracy = (nearest == batch.cluster_class[batch.cluster]).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": accuracy, "variance": variance}

    def variance(self) -> float:
        """sigma^2 of the soft vote: the mean batch variance over training (1.0 before any)."""
        if self.variance_count == 0:
            return 1.0
        return float(self.variance_sum) / self.variance_count

    # -- evaluation ---------------------------------------------------------------------------
    def scores(
        self, z: torch.Tensor, centres: torch.Tensor, centre_class: torch.Tensor, way: int
    ) -> torch.Tensor:
        return soft_vote(z, centres, centre_class, self.variance(), self.nearest, way)

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """The soft vote is already a distribution over the classes."""
        return scores.float()

    def extra_state(self) -> dict:
        return {
            "means": self.means,
            "mean_class": self.mean_class,
            "assign": self.assign,
            "example_loss": self.example_loss,
            "variance_sum": self.variance_sum,
            "variance_count": self.variance_count,
        }

    def load_extra_state(self, state: dict) -> None:
        if not state:
            return
        dev = next(self.model.parameters()).device
        for key in ("means", "mean_class", "assign", "example_loss"):
            value = state.get(key)
            setattr(self, key, value.to(dev) if value is not None else None)
        self.variance_sum = state["variance_sum"].to(torch.float64)
        self.variance_count = int(state["variance_count"])

    def summary(self) -> dict:
        return {
            "modes": self.modes,
            "soft_vote_variance": self.variance(),
            "clusters": None if self.means is None else int(self.means.shape[0]),
        }
