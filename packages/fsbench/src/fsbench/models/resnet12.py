"""ResNet-12 as in Meta-Transfer Learning (Sun et al. 2019; the TensorFlow code of the paper).

Four residual blocks, each of three 3x3 convolutions (with bias) -> batch norm -> LeakyReLU(0.1),
the activation also after the third convolution, before the residual sum; the shortcut is a 1x1
convolution without bias or norm; no activation after the sum; then a 2x2 max-pool. Widths
64-128-256-512; global average pooling gives a 512-d feature (the TF code's 5x5 average pool of
an 84x84 input). Xavier-uniform weights and zero biases, as the TF code.

Choices recorded (``describe`` and the presets): batch norm on the current batch's statistics
without affine terms (the TF code's batch_norm with is_training=True, scale=False, and a beta
that no optimiser updates); the PyTorch version of the official code is a different, 25-layer
network (80-160-320-640) and is not reproduced here. ``dropout`` is the TF pre-training dropout
(keep 0.9 there; off by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fsbench.models.conv4 import AFFINES, make_norm

WIDTHS = (64, 128, 256, 512)
LEAK = 0.1


class ResBlock(nn.Module):
    """Three conv-norm-LeakyReLU layers plus a 1x1 shortcut, summed, then a 2x2 max-pool."""

    def __init__(self, cin: int, cout: int, norm: str, affine: str, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm1 = make_norm(cout, norm, affine)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm2 = make_norm(cout, norm, affine)
        self.conv3 = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm3 = make_norm(cout, norm, affine)
        self.shortcut = nn.Conv2d(cin, cout, 1, bias=False)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.norm1(self.conv1(x)), LEAK)
        h = F.leaky_relu(self.norm2(self.conv2(h)), LEAK)
        h = F.leaky_relu(self.norm3(self.conv3(h)), LEAK)
        h = F.max_pool2d(h + self.shortcut(x), 2)
        return F.dropout(h, self.dropout, self.training) if self.dropout else h


class ResNet12(nn.Module):
    """The embedding network: [B, C, H, W] (or [B, H, W]) -> [B, widths[-1]]; ``num_classes`` adds a head."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        widths: tuple[int, ...] = WIDTHS,
        num_classes: int | None = None,
        norm: str = "batch",
        affine: str = "none",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if affine not in AFFINES:
            raise ValueError(f"affine must be one of {AFFINES}, got {affine!r}")
        shape = tuple(input_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if min(shape[1:]) < 2 ** len(widths):
            raise ValueError(f"input {shape} is too small for {len(widths)} pooling blocks")
        self.input_shape = shape
        chans = [shape[0], *widths]
        self.blocks = nn.Sequential(
            *[ResBlock(chans[i], chans[i + 1], norm, affine, dropout) for i in range(len(widths))]
        )
        self.feature_dim = widths[-1]
        self.head = nn.Linear(self.feature_dim, num_classes) if num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.blocks(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        return self.head(z) if self.head is not None else z
