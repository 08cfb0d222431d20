"""Conv-4: four blocks of 3x3 conv, batch norm, ReLU, 2x2 max-pool (or stride-2 convs).

Three normalisations, a named setting (``norm``) recorded in result.json:

- ``batch``: always the current batch's statistics (no running averages, at meta-test too), as
  the MAML reference code; transductive (a query's prediction depends on the other queries). The
  module has no buffers, so ``torch.func.functional_call`` and ``vmap`` apply directly.
- ``running``: ``nn.BatchNorm2d`` with running statistics and ``eval()`` at test, as Snell et
  al.'s Prototypical Networks; inductive.
- ``group``: ``nn.GroupNorm``: every image normalised on its own at train and test, so an
  embedding never depends on the rest of its batch (LITE's exactness needs that).

``batch`` has two implementations of the same math:

- fused (default): ``F.batch_norm(x, None, None, w, b, training=True)``, fastest on CPU;
- primitive (``var_mean``, ``rsqrt``, ``addcmul``): used under ``vmap``, because there the fused
  kernel's double backward gave wrong second-order MAML meta-gradients (torch 2.14 CPU: conv-bias
  gradients of 7e-3 where the true value is 0); the primitive form matches the loop to 1e-6. It
  is about 2x slower than the fused kernel in a CPU loop, hence not the default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from fsbench.settings import Settings

NORMS = ("batch", "running", "group")
GROUPS = 8  # GroupNorm's groups (channels not divisible by 8: one group)
AFFINES = ("scale+shift", "shift", "none")
INITS = ("torch", "xavier", "cbfinn")


class BatchStatNorm(nn.Module):
    """Batch norm that always normalises with the current batch's statistics (no running stats).

    ``affine``: "scale+shift" (PyTorch's learnable weight and bias), "shift" (a learnable bias
    only, as TensorFlow's batch_norm default in cbfinn/maml) or "none" (MMAML-Classification).
    """

    def __init__(
        self, channels: int, eps: float = 1e-5, fused: bool = True, affine: str = "scale+shift"
    ) -> None:
        super().__init__()
        if affine not in AFFINES:
            raise ValueError(f"affine must be one of {AFFINES}, got {affine!r}")
        self.weight = nn.Parameter(torch.ones(channels)) if affine == "scale+shift" else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine != "none" else None
        self.channels = channels
        self.eps = eps
        self.fused = fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            # without a learned scale, ones: the same values and gradients (measured bit-equal),
            # and unlike an absent weight the fused kernel's double backward accepts it (the
            # second-order MAML meta-gradient of a "shift" norm failed without it)
            weight = self.weight if self.weight is not None else x.new_ones(x.shape[1])
            return F.batch_norm(x, None, None, weight, self.bias, training=True, eps=self.eps)
        dims = [0, *range(2, x.dim())]
        var, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=0)
        shape = [1, -1] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.view(shape)
        shift = -mean * scale
        if self.bias is not None:
            shift = shift + self.bias.view(shape)
        return torch.addcmul(shift, x, scale)


def set_fused_norm(module: nn.Module, fused: bool) -> None:
    """Every BatchStatNorm in ``module``: the fused kernel (loops) or the primitive form (vmap)."""
    for m in module.modules():
        if isinstance(m, BatchStatNorm):
            m.fused = fused


def make_norm(channels: int, norm: str, affine: str) -> nn.Module:
    """ "batch": BatchStatNorm (transductive); "running": nn.BatchNorm2d (running stats, eval());
    "group": nn.GroupNorm (each image normalised on its own, in training too — what LITE needs)."""
    if norm == "batch":
        return BatchStatNorm(channels, affine=affine)
    if norm in ("running", "group"):
        if affine != "scale+shift":
            raise ValueError(f"norm {norm!r} has the affine terms 'scale+shift'")
        if norm == "running":
            return nn.BatchNorm2d(channels)
        return nn.GroupNorm(GROUPS if channels % GROUPS == 0 else 1, channels)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


class ConvBlock(nn.Module):
    """3x3 conv -> batch norm -> ReLU -> 2x2 max-pool (or a stride-2 conv instead)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        pool: str = "max",
        norm: str = "batch",
        affine: str = "scale+shift",
    ) -> None:
        super().__init__()
        stride = 2 if pool == "stride" else 1
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.norm = make_norm(cout, norm, affine)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(self.conv(x)))
        if self.pool == "max":
            x = F.max_pool2d(x, 2)
        return x


class Conv4(nn.Module):
    """The Conv-4 backbone; with ``num_classes`` a linear head gives logits, else it embeds.

    ``readout="mean"`` averages the last feature map over space before the head (what the MAML
    reference code does for every dataset but miniImageNet, keeping the head's input at
    ``hidden`` values so that the 0.4 fast learning rate is stable on large images);
    ``"flatten"`` keeps every position (ProtoNets, MAML on miniImageNet).

    Inputs are [B, C, H, W] or [B, H, W] (a channel axis is added); ``input_shape`` excludes
    the batch axis and fixes the flattened feature size.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        hidden: int = 64,
        num_classes: int | None = None,
        pool: str = "max",
        depth: int = 4,
        readout: str = "flatten",
        norm: str = "batch",
        affine: str = "scale+shift",
        init: str = "torch",
    ) -> None:
        super().__init__()
        if readout not in ("flatten", "mean"):
            raise ValueError(f"readout must be 'flatten' or 'mean', got {readout!r}")
        self.readout = readout
        if pool not in ("max", "stride"):
            raise ValueError(f"pool must be 'max' or 'stride', got {pool!r}")
        shape = tuple(input_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        self.input_shape = shape
        chans = [shape[0]] + [hidden] * depth
        self.blocks = nn.Sequential(
            *[ConvBlock(chans[i], chans[i + 1], pool, norm, affine) for i in range(depth)]
        )
        flat = self._features_size(shape, hidden, depth, pool)
        self.feature_dim = hidden if readout == "mean" else flat
        self.head = nn.Linear(self.feature_dim, num_classes) if num_classes else None
        self.reset_parameters(init)

    def reset_parameters(self, init: str) -> None:
        """ "torch": PyTorch's defaults; "xavier": Xavier-uniform weights, zero biases
        (MMAML-Classification); "cbfinn": the same for the convs, the head's weights N(0, 1)
        (cbfinn/maml's Omniglot head)."""
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if init == "torch":
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if init == "cbfinn" and self.head is not None:
            nn.init.normal_(self.head.weight, 0.0, 1.0)

    @staticmethod
    def _features_size(shape: tuple[int, ...], hidden: int, depth: int, pool: str) -> int:
        h, w = shape[1], shape[2]
        for _ in range(depth):
            if pool == "max":
                h, w = h // 2, w // 2
            else:
                h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        if h < 1 or w < 1:
            raise ValueError(f"input {shape} is too small for {depth} pooling blocks")
        return hidden * h * w

    def set_fused_norm(self, fused: bool) -> None:
        """Choose the fused batch-norm kernel (loops) or the primitive form (needed under vmap)."""
        set_fused_norm(self, fused)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features [B, feature_dim]: the last block flattened, or averaged over space (``mean``)."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        h = self.blocks(x)
        return h.mean(dim=(2, 3)) if self.readout == "mean" else h.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        return self.head(z) if self.head is not None else z


def embedding_conv4(example_shape: tuple[int, ...], settings: Settings) -> Conv4:
    """The metric-learning embedding (ProtoNets, Magnet loss, RepMet): Conv-4 with max pooling,
    no head, flattened, its width, norm and initialisation from a run's settings."""
    return Conv4(
        example_shape,
        hidden=settings.hidden,
        num_classes=None,
        pool="max",
        norm=settings.norm,
        affine=settings.norm_affine,
        init=settings.init,
    )
