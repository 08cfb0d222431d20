"""What every method gives the training engine: a model, a loss on a sampled batch, an evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from fsbench.data.store import ArrayStore


@dataclass
class EvalResult:
    """Mean accuracy (fraction), its 95% CI half-width, how it was computed, and the raw scores."""

    accuracy: float
    ci95: float
    ci95_method: str
    episodes: int
    per_episode: list[float] = field(default_factory=list)


def episode_ci(accuracies: list[float]) -> EvalResult:
    """Mean over episodes and the 95% CI 1.96 * std / sqrt(episodes) (population std)."""
    acc = torch.tensor(accuracies, dtype=torch.float64)
    n = len(accuracies)
    mean = float(acc.mean()) if n else float("nan")
    std = float(acc.std(unbiased=False)) if n else float("nan")
    return EvalResult(
        mean, 1.96 * std / math.sqrt(max(n, 1)), "1.96*std/sqrt(episodes)", n, accuracies
    )


def binomial_ci(correct: int, total: int) -> EvalResult:
    """Accuracy on a fixed test split with the binomial 95% CI 1.96 * sqrt(p(1-p)/n)."""
    p = correct / total
    return EvalResult(p, 1.96 * math.sqrt(p * (1 - p) / total), "binomial 1.96*sqrt(p(1-p)/n)", 0)


class Method:
    """Base class: subclasses build ``self.model`` and define the loss and the evaluation."""

    name = "method"
    episodic = True

    def __init__(self, settings: dict, example_shape: tuple[int, ...], num_classes: int) -> None:
        self.settings = settings
        self.example_shape = tuple(example_shape)
        self.num_classes = num_classes
        self.model: nn.Module = nn.Identity()

    def to(self, device: torch.device) -> Method:
        self.model.to(device)
        return self

    def make_optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """Adam at the preset learning rate, with a step decay when the preset asks for one."""
        s = self.settings
        opt = torch.optim.Adam(self.model.parameters(), lr=s["lr"])
        step = s.get("lr_step") or 0
        if step > 0:
            sched = torch.optim.lr_scheduler.StepLR(
                opt, step_size=step, gamma=s.get("lr_gamma", 0.5)
            )
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        return opt, sched

    def sample_train(self, store: ArrayStore, generator: torch.Generator):
        """One training batch (an episode meta-batch or a minibatch) drawn with ``generator``."""
        raise NotImplementedError

    def train_loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to back-propagate and the metrics to log for one training batch."""
        raise NotImplementedError

    def evaluate(
        self, store: ArrayStore, generator: torch.Generator, episodes: int, progress=None
    ) -> EvalResult:
        """Accuracy on ``store`` (test or validation split)."""
        raise NotImplementedError

    def check(self, store: ArrayStore, split: str) -> None:
        """Raise ValueError when the split cannot serve this method's episodes."""
