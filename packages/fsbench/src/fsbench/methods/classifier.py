"""The MNIST-1D classifiers trained as ordinary supervised models, scored on the full test split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fsbench.data.store import ArrayStore
from fsbench.methods.backbone import UserNet
from fsbench.methods.base import EvalResult, Method, binomial_ci
from fsbench.models.mnist1d import build_mnist1d_model


class Classifier(Method):
    """Minibatch cross-entropy training; accuracy on the whole test split with a binomial CI.

    ``backbone``: any model x [B, *example_shape] -> [B, num_classes] logits (MNIST-1D: x is
    [B, 40]); None: the MNIST-1D model the ``method`` names (logreg, mlp, cnn, gru).
    """

    eval_settings = ()
    name = "mlp"  # one class for the four MNIST-1D models: the settings' method names which
    default_dataset = "mnist1d"

    def __init__(self, backbone: nn.Module | None = None, **kw: Any) -> None:
        super().__init__(backbone, **kw)
        settings = self.settings
        self.name = settings.method
        if backbone is not None:
            self.model: nn.Module = UserNet(backbone)
            return
        if self.num_classes is None:
            raise TypeError(f"{self.name}: give num_classes= (the classes of the labels)")
        length = 1
        for d in self.shape():
            length *= int(d)
        self.model = build_mnist1d_model(self.name, length=length, num_classes=self.num_classes)

    def check(self, store: ArrayStore, split: str) -> None:
        if len(store) == 0:
            raise ValueError(f"the {split} split is empty")

    def sample_train(self, store: ArrayStore, generator: torch.Generator, iteration: int):
        """``sequential``: the reference loop's fixed slices; ``random``: a random minibatch."""
        if self.settings.batch_order == "sequential":
            return store.batch_slice(iteration, self.settings.batch_size)
        return store.sample_batch(generator, self.settings.batch_size)

    def train_loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": acc}

    def evaluate(
        self,
        store: ArrayStore,
        generator: torch.Generator,
        episodes: int,
        progress: Any = None,
        way: int | None = None,
        shot: int | None = None,
        query: int | None = None,
        share: tuple[int, int] = (0, 1),
        gather: Callable[[list], list] | None = None,
    ) -> EvalResult:
        """Accuracy on the whole split (``episodes`` and the generator are not used)."""
        correct = 0
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(store), 1000):
                x = store.to_float(store.data[start : start + 1000])
                y = store.labels[start : start + 1000]
                correct += int((self.model(x).argmax(1) == y).sum())
                if progress is not None:
                    progress.update(len(y))
        self.model.train()
        res = binomial_ci(correct, len(store))
        res.episodes = len(store)
        return res
