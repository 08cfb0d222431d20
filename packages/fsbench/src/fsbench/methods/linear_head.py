"""A linear classifier fitted to a task's support features by plain gradient steps, first order.

Meta-Transfer Learning's base learner (the official PyTorch code: SGD on the FC layer only,
``torch.autograd.grad`` without ``create_graph``): each step's gradient is taken at detached
weights, so no second-order graph is built; the fitted weights still depend on the initial ones
(``w_T = w_0 - lr * sum of constant gradients``), which is how a meta-learned initialisation
receives its outer gradient. The same fit, from zeros, tests a pre-trained backbone with a new head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fit_linear_head(
    weight: torch.Tensor,
    bias: torch.Tensor,
    support: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    lr: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` SGD steps of the mean cross-entropy on (support features, labels), first order."""
    support = support.detach().float()
    for _ in range(steps):
        with torch.enable_grad():
            w = weight.detach().requires_grad_(True)
            b = bias.detach().requires_grad_(True)
            loss = F.cross_entropy(F.linear(support, w, b), labels)
            gw, gb = torch.autograd.grad(loss, (w, b))
        weight, bias = weight - lr * gw, bias - lr * gb
    return weight, bias


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, way: int) -> torch.Tensor:
    """Accuracy of each class [way] among the queries (labels 0..way-1)."""
    hits = (logits.argmax(-1) == labels).float()
    counts = torch.bincount(labels, minlength=way).clamp_min(1)
    return torch.zeros(way, device=logits.device).index_add_(0, labels, hits) / counts
