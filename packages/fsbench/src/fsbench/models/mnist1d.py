"""The four MNIST-1D classifiers as the reference ``models.py`` of greydanus/mnist1d defines them.

Layer order and shapes follow the reference, so ``torch.manual_seed(s)`` before construction gives
the reference's initial weights for the same seed (PyTorch's default initialisation everywhere).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class LogisticRegression(nn.Module):
    """One linear layer from the 40 signal values to the 10 logits."""

    def __init__(self, length: int = 40, num_classes: int = 10) -> None:
        super().__init__()
        self.linear = nn.Linear(length, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """40 -> 100 -> 100 -> 10 with ReLU and the reference's residual: h = h + relu(linear2(h))."""

    def __init__(self, length: int = 40, num_classes: int = 10, hidden: int = 100) -> None:
        super().__init__()
        self.linear1 = nn.Linear(length, hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        self.linear3 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.linear1(x.flatten(1)))
        h = h + F.relu(self.linear2(h))
        return self.linear3(h)


class CNN1D(nn.Module):
    """Three strided 1-D convolutions (25 channels, ReLU after each), flatten, linear to 10."""

    def __init__(self, length: int = 40, num_classes: int = 10, channels: int = 25) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        n = length
        for k in (5, 3, 3):
            n = (n + 2 - k) // 2 + 1
        self.linear = nn.Linear(channels * n, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1).unsqueeze(1)
        h = F.relu(self.conv1(h))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        return self.linear(h.flatten(1))


class GRUClassifier(nn.Module):
    """Bidirectional nn.GRU (hidden 6, zero initial state) over the 40 positions; the outputs of
    all steps flattened (40 x 12 = 480) -> linear 10, as the reference GRUBase."""

    def __init__(self, length: int = 40, num_classes: int = 10, hidden: int = 6) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(length * 2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.flatten(1).unsqueeze(-1))
        return self.linear(out.flatten(1))


MNIST1D_MODELS: dict[str, Callable[..., nn.Module]] = {
    "logreg": LogisticRegression,
    "mlp": MLP,
    "cnn": CNN1D,
    "gru": GRUClassifier,
}


def build_mnist1d_model(name: str, length: int = 40, num_classes: int = 10) -> nn.Module:
    """One of ``logreg``, ``mlp``, ``cnn``, ``gru`` for signals of ``length`` values."""
    if name not in MNIST1D_MODELS:
        raise ValueError(f"unknown classifier {name!r}; choose from {sorted(MNIST1D_MODELS)}")
    return MNIST1D_MODELS[name](length=length, num_classes=num_classes)
