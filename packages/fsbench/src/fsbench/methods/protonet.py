"""Prototypical Networks: class prototypes are mean support embeddings; logits = -distance.

With ``lite_h`` H > 0 the training support set is embedded with LITE (``methods/lite.py``).

Snell et al. use the squared Euclidean distance (``distance="sqeuclidean"``, the default);
``"euclidean"`` (its square root, as easyfsl's ``torch.cdist``) is offered because on large
flattened embeddings (64x64 images give 1,024 features) the squared distances make very sharp
softmaxes early in training (see the README's measured curves). Distances and the softmax are
computed in float32 outside autocast, so mixed precision never touches them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fsbench.data.store import ArrayStore, Episode
from fsbench.methods.backbone import UserNet, batch_dependent, running_statistics
from fsbench.methods.base import Method
from fsbench.methods.lite import CHUNK as LITE_CHUNK
from fsbench.methods.lite import draw_subset, lite_embed
from fsbench.models.conv4 import embedding_conv4

DISTANCES = ("sqeuclidean", "euclidean")


def prototypes(support_z: torch.Tensor, support_y: torch.Tensor, way: int) -> torch.Tensor:
    """Mean embedding of each class's support examples: [way, D]."""
    onehot = F.one_hot(support_y, way).to(support_z.dtype)  # [N, way]
    return (onehot.t() @ support_z) / onehot.sum(0).unsqueeze(1)


def squared_distances(query_z: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance of every query to every prototype: [Q, way]."""
    q2 = (query_z * query_z).sum(1, keepdim=True)
    p2 = (protos * protos).sum(1).unsqueeze(0)
    return (q2 - 2.0 * query_z @ protos.t() + p2).clamp_min(0.0)


def distances(query_z: torch.Tensor, protos: torch.Tensor, kind: str) -> torch.Tensor:
    """``sqeuclidean`` or ``euclidean`` distances [Q, way] (the latter with a safe gradient at 0)."""
    d2 = squared_distances(query_z, protos)
    if kind == "sqeuclidean":
        return d2
    if kind == "euclidean":
        return d2.clamp_min(1e-12).sqrt()
    raise ValueError(f"distance must be one of {DISTANCES}, got {kind!r}")


def prototypical_logits(
    support_z: torch.Tensor,
    support_y: torch.Tensor,
    query_z: torch.Tensor,
    way: int,
    distance: str = "sqeuclidean",
) -> torch.Tensor:
    """Logits of the queries: negative distance to each class prototype, in float32."""
    with torch.autocast(support_z.device.type, enabled=False):
        protos = prototypes(support_z.float(), support_y, way)
        return -distances(query_z.float(), protos, distance)


class ProtoNet(Method):
    """Prototypical Networks on an embedding network (no head); training way/shot set separately.

    ``backbone``: any embedding network, x [B, *example_shape] -> [B, D] (more output dims are
    flattened; one-channel [H, W] images arrive as [B, 1, H, W]); None: the preset's Conv-4
    (``hidden``, ``norm``...). Whether evaluation may embed in chunks and how LITE (``lite_h``)
    treats batch norm are read from the module: a batch norm without running statistics makes
    an embedding depend on its batch (one pass, no chunks; refused with LITE); batch norms with
    running statistics get LITE's gradient-free running-statistics pass.
    """

    name = "protonet"
    eval_settings = ("way", "shot", "query", "episodes")

    def __init__(self, backbone: nn.Module | None = None, **kw: Any) -> None:
        super().__init__(backbone, **kw)
        settings = self.settings
        if backbone is None:
            self.model: nn.Module = embedding_conv4(self.shape(), settings)
        else:
            self.model = UserNet(backbone, flatten=True)
        self.distance = settings.distance
        self.lite_h = int(settings.lite_h)
        # read from the network (the preset's: norm "batch" / "running")
        self.batch_dependent = batch_dependent(self.model)
        self.running_statistics = running_statistics(self.model)
        if self.lite_h and self.batch_dependent:
            raise ValueError(
                "lite_h needs an embedding that treats each image on its own: this backbone has "
                "a batch norm without running statistics (use group norm or running statistics)"
            )
        self._lite_subset: torch.Tensor | None = None  # drawn with the episode

    def _logits(self, ep: Episode, b: int, way: int) -> torch.Tensor:
        return self.task_scores(ep.support_x[b], ep.support_y[b], ep.query_x[b], way)

    def task_scores(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, way: int
    ) -> torch.Tensor:
        """Logits: minus the distance to each class's prototype (the mean of its support)."""
        # One forward pass, as Snell et al.: in training, batch norm sees the whole episode; in
        # eval() with running statistics every image is normalised on its own. Without
        # gradients, in eval() and with per-image norm the pass goes in chunks (LITE_CHUNK
        # images), so evaluation memory does not grow with the support set.
        x = torch.cat([support_x, query_x])
        per_image = not self.batch_dependent and not self.model.training
        if torch.is_grad_enabled() or not per_image:
            z = self.model(x)
        else:
            z = torch.cat([self.model(c) for c in x.split(LITE_CHUNK)])
        zs, zq = z[: support_x.shape[0]], z[support_x.shape[0] :]
        return prototypical_logits(zs, support_y, zq, way, self.distance)

    def sample_train(
        self, store: ArrayStore, generator: torch.Generator, iteration: int
    ) -> Episode:
        episode = self.training_episode(store, generator, 1)  # one episode per step and rank
        if self.lite_h:  # a fresh subset each step, from the same seeded stream
            n = episode.support_x.shape[1]
            self._lite_subset = draw_subset(n, min(self.lite_h, n), generator, store.device)
        return episode

    def _lite_logits(self, ep: Episode) -> torch.Tensor:
        """Training logits with LITE: the support gradient through a random subset, x N/H.

        With running-statistics norm, the episode first updates the running statistics in a
        gradient-free pass (in chunks), then every image is embedded with them (``eval()``), so
        no embedding depends on the rest of its batch and the LITE estimate stays unbiased.
        """
        xs, xq = ep.support_x[0], ep.query_x[0]
        subset = self._lite_subset
        if subset is None:
            raise RuntimeError("LITE's support subset is drawn by sample_train")
        if self.running_statistics:
            with torch.no_grad():
                for chunk in torch.cat([xs, xq]).split(LITE_CHUNK):
                    self.model(chunk)
            self.model.eval()
        try:
            zs = lite_embed(self.model, xs, subset, chunk=LITE_CHUNK)
            zq = self.model(xq)
        finally:
            self.model.train()
        return prototypical_logits(zs, ep.support_y[0], zq, ep.way, self.distance)

    def train_loss(self, batch: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self._lite_logits(batch) if self.lite_h else self._logits(batch, 0, batch.way)
        yq = batch.query_y[0]
        with torch.autocast(logits.device.type, enabled=False):
            loss = F.cross_entropy(logits, yq)
        acc = (logits.argmax(1) == yq).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": acc}

    def episode_accuracies(self, episode: Episode) -> torch.Tensor:
        with torch.no_grad():
            out = []
            for b in range(episode.support_x.shape[0]):
                logits = self._logits(episode, b, episode.way)
                out.append((logits.argmax(1) == episode.query_y[b]).float().mean())
            return torch.stack(out)
