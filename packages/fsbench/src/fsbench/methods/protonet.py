"""Prototypical Networks: class prototypes are mean support embeddings; logits = -squared distance."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fsbench.data.store import ArrayStore, Episode
from fsbench.methods.base import EvalResult, Method, episode_ci
from fsbench.models.conv4 import Conv4


def prototypes(support_z: torch.Tensor, support_y: torch.Tensor, way: int) -> torch.Tensor:
    """Mean embedding of each class's support examples: [way, D]."""
    onehot = F.one_hot(support_y, way).to(support_z.dtype)  # [N, way]
    return (onehot.t() @ support_z) / onehot.sum(0).unsqueeze(1)


def squared_distances(query_z: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance of every query to every prototype: [Q, way]."""
    q2 = (query_z * query_z).sum(1, keepdim=True)
    p2 = (protos * protos).sum(1).unsqueeze(0)
    return (q2 - 2.0 * query_z @ protos.t() + p2).clamp_min(0.0)


def prototypical_logits(
    support_z: torch.Tensor, support_y: torch.Tensor, query_z: torch.Tensor, way: int
) -> torch.Tensor:
    """Logits of the queries: negative squared distance to each class prototype."""
    return -squared_distances(query_z, prototypes(support_z, support_y, way))


class ProtoNet(Method):
    """Prototypical Networks on a Conv-4 embedding (no head); training way/shot set separately."""

    name = "protonet"

    def __init__(self, settings: dict, example_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__(settings, example_shape, num_classes)
        self.model = Conv4(example_shape, hidden=settings["hidden"], num_classes=None, pool="max")

    def _episode_logits(self, ep: Episode, b: int, way: int) -> torch.Tensor:
        xs, xq = ep.support_x[b], ep.query_x[b]
        z = self.model(torch.cat([xs, xq]))  # one forward: batch norm sees the whole episode
        zs, zq = z[: xs.shape[0]], z[xs.shape[0] :]
        return prototypical_logits(zs.float(), ep.support_y[b], zq.float(), way)

    def check(self, store: ArrayStore, split: str) -> None:
        s = self.settings
        if split == "train":
            store.check_episode(s["train_way"], s["train_shot"], s["train_query"])
        else:
            store.check_episode(s["way"], s["shot"], s["query"])

    def sample_train(self, store: ArrayStore, generator: torch.Generator) -> Episode:
        s = self.settings
        return store.sample_episode(generator, s["train_way"], s["train_shot"], s["train_query"], 1)

    def train_loss(self, batch: Episode) -> tuple[torch.Tensor, dict[str, float]]:
        logits = self._episode_logits(batch, 0, self.settings["train_way"])
        yq = batch.query_y[0]
        loss = F.cross_entropy(logits, yq)
        acc = (logits.argmax(1) == yq).float().mean()
        return loss, {"loss": float(loss.detach()), "accuracy": float(acc)}

    def evaluate(
        self, store: ArrayStore, generator: torch.Generator, episodes: int, progress=None
    ) -> EvalResult:
        s = self.settings
        accs: list[float] = []
        self.model.eval()
        with torch.no_grad():
            for _ in range(episodes):
                ep = store.sample_episode(generator, s["way"], s["shot"], s["query"], 1)
                logits = self._episode_logits(ep, 0, s["way"])
                accs.append(float((logits.argmax(1) == ep.query_y[0]).float().mean()))
                if progress is not None:
                    progress.update(1)
        self.model.train()
        return episode_ci(accs)
