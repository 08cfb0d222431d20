"""Learned scaling (init 1) and shifting (init 0) of frozen layers: MTL's "SS", and FiLM.

One block, two uses:

- ``ScaleShift`` holds the two parameter tensors and applies them to features as FiLM does
  (``x * scale + shift`` per channel) — the form LITE's FiLM-adapted models need;
- ``SSConv2d`` wraps a frozen ``nn.Conv2d`` and applies a ``ScaleShift`` to its *weights*, as
  Meta-Transfer Learning (Sun et al. 2019) does: ``conv(x, W * scale, b + shift)``. The official
  code (both its TensorFlow and PyTorch versions) scales every (output, input) kernel slice,
  ``scale`` of shape [out, in, 1, 1]; ``per="channel"`` scales whole output channels instead
  ([out, 1, 1, 1]), which on a bias-free conv equals FiLM on its output.

``add_scale_shift(model)`` puts an ``SSConv2d`` in place of every 3x3 convolution (the TF code
leaves the 1x1 shortcuts frozen and unscaled) and freezes everything else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PER = ("kernel", "channel")


class ScaleShift(nn.Module):
    """Parameters ``scale`` (ones) and ``shift`` (zeros); ``forward`` is FiLM over dim 1."""

    def __init__(self, scale_shape: tuple[int, ...], shift_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(scale_shape))
        self.shift = nn.Parameter(torch.zeros(shift_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = [1, -1] + [1] * (x.dim() - 2)
        return x * self.scale.view(view) + self.shift.view(view)


class SSConv2d(nn.Module):
    """A frozen convolution whose weights are scaled and whose bias is shifted by learned terms."""

    def __init__(self, conv: nn.Conv2d, per: str = "kernel") -> None:
        super().__init__()
        if per not in PER:
            raise ValueError(f"per must be one of {PER}, got {per!r}")
        self.conv = conv
        for p in conv.parameters():
            p.requires_grad_(False)
        out, cin = conv.weight.shape[:2]
        self.ss = ScaleShift((out, cin if per == "kernel" else 1, 1, 1), (out,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        weight = c.weight * self.ss.scale
        bias = self.ss.shift if c.bias is None else c.bias + self.ss.shift
        return F.conv2d(x, weight, bias, c.stride, c.padding, c.dilation, c.groups)


def add_scale_shift(model: nn.Module, per: str = "kernel") -> list[nn.Parameter]:
    """Freeze ``model`` and wrap each 3x3 conv in an SSConv2d; returns the new SS parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    added: list[nn.Parameter] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and child.kernel_size == (3, 3):
                wrapped = SSConv2d(child, per)
                setattr(parent, name, wrapped)
                added.extend(wrapped.ss.parameters())
    return added
