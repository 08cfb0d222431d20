"""What Magnet loss and RepMet share: K modes per class, checked inputs, episodic evaluation.

Both model a class by ``modes`` (K) clusters in embedding space. In training the clusters are
the training classes' (k-means of their embeddings for Magnet, learned representatives for
RepMet); in a test episode each class's K modes are the k-means clusters of its support
embeddings (min(K, shot) of them: with shot <= K every support image is its own mode, RepMet's
"support embeddings replace the representatives"). K = 1 makes the mode the class mean, the
prototype of Prototypical Networks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fsbench.data.store import ArrayStore, Episode
from fsbench.errors import FsbenchError
from fsbench.methods.base import Method
from fsbench.methods.clusters import kmeans, support_modes

CLUSTER_SEED = 0  # k-means++ seeding of test-episode modes: fixed, apart from the episode stream


def check_modes(store: ArrayStore, modes: int) -> None:
    """Every class of a training split must hold at least ``modes`` images (one per cluster)."""
    if isinstance(modes, bool) or not isinstance(modes, int) or modes < 1:
        raise FsbenchError(f"--modes must be an integer >= 1, got {modes!r}")
    if store.num_classes < 2:
        raise FsbenchError("a training split with modes needs at least 2 classes")
    if modes > store.min_class_size:
        small = int(store.class_counts.argmin())
        raise FsbenchError(
            f"--modes {modes} is more clusters than the {store.min_class_size} images of class "
            f"{store.class_names[small]!r}; choose --modes <= {store.min_class_size}"
        )


class ModesMethod(Method):
    """Base of Magnet and RepMet: subclasses embed (``embed``) and score queries against modes."""

    eval_settings = ("way", "shot", "query", "episodes")

    def __init__(self, backbone: nn.Module | None = None, **kw: Any) -> None:
        super().__init__(backbone, **kw)
        settings = self.settings
        self.modes = int(settings.modes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings [N, E] of examples [N, ...] (float32 for the distances)."""
        return self.model(x).float()

    def check(self, store: ArrayStore, split: str) -> None:
        s = self.settings
        if split in ("train", "trainval"):
            check_modes(store, self.modes)
        else:
            store.check_episode(s.way, s.shot, s.query)

    def scores(
        self, z: torch.Tensor, centres: torch.Tensor, centre_class: torch.Tensor, way: int
    ) -> torch.Tensor:
        """Class scores [Q, way] of query embeddings against an episode's modes."""
        raise NotImplementedError

    def task_scores(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, way: int
    ) -> torch.Tensor:
        """Scores of the queries against each class's modes (k-means of its support)."""
        self.ready()
        z = self.embed(torch.cat([support_x, query_x]))
        zs, zq = z[: support_x.shape[0]], z[support_x.shape[0] :]
        gen = torch.Generator(device=z.device).manual_seed(CLUSTER_SEED)
        centres, centre_class = task_modes(zs, support_y, way, self.modes, gen)
        return self.scores(zq, centres, centre_class, way)

    def episode_accuracies(self, episode: Episode) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for b in range(episode.support_x.shape[0]):
                pred = self.task_scores(
                    episode.support_x[b], episode.support_y[b], episode.query_x[b], episode.way
                ).argmax(1)
                out.append((pred == episode.query_y[b]).float().mean())
        return torch.stack(out)


def task_modes(
    zs: torch.Tensor, ys: torch.Tensor, way: int, modes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class's min(modes, smallest shot) modes: centres [way*k, E] and classes [way*k].

    An episode's class-major support of equal shots goes through ``support_modes`` in one batch;
    other support sets (``fsbench predict``: any number per class) are clustered class by class,
    with the same k for every class so that each has as many modes.
    """
    counts = torch.bincount(ys, minlength=way)
    shot = int(counts.min())
    if shot < 1:
        raise ValueError("every class needs at least one support example")
    k = min(modes, shot)
    if bool((counts == shot).all()) and torch.equal(
        ys, torch.arange(way, device=ys.device).repeat_interleave(shot)
    ):
        return support_modes(zs, way, shot, k, generator)
    centres = []
    for c in range(way):
        members = zs[ys == c].float()
        if k == 1:
            centres.append(members.mean(0, keepdim=True))
        else:
            centres.append(kmeans(members.unsqueeze(0), k, generator)[0][0])
    classes = torch.arange(way, device=zs.device).repeat_interleave(k)
    return torch.cat(centres), classes
