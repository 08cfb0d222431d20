"""A user's network in place of the preset's Conv-4/ResNet-12: how methods call it and what they
read from it.

Every method takes ``backbone=`` (any ``nn.Module``); ``UserNet`` is how it calls one: examples
arrive as ``[B, *example_shape]``, one-channel images stored as ``[H, W]`` get a channel axis
first (``[B, 1, H, W]``, as Conv-4 and ResNet-12 do), and an embedding's extra dimensions are
flattened (``[B, C, h, w]`` -> ``[B, C*h*w]``). Decisions that used to follow the preset's
``norm`` setting are read from the module itself (``batch_dependent``, ``running_statistics``),
so they are right for any network; for the presets' own networks they give what ``norm`` gave.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from fsbench.models.conv4 import BatchStatNorm


class UserNet(nn.Module):
    """A user's module as a method calls it: a channel axis for [B, H, W] images, and (with
    ``flatten``) its output flattened to [B, D]. ``embed`` calls the module's own ``embed`` when
    it has one (pre-training's few-shot evaluation and MTL read features through it)."""

    def __init__(self, net: nn.Module, flatten: bool = False) -> None:
        super().__init__()
        self.net = net
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(with_channels(x))
        return out.flatten(1) if self.flatten and out.dim() > 2 else out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        embed = getattr(self.net, "embed", None)
        if not callable(embed):
            raise TypeError(f"{type(self.net).__name__} has no embed(x) method")
        out = embed(with_channels(x))
        return out.flatten(1) if out.dim() > 2 else out


def with_channels(x: torch.Tensor) -> torch.Tensor:
    """[B, H, W] one-channel images as [B, 1, H, W]; anything else unchanged."""
    return x.unsqueeze(1) if x.dim() == 3 else x


def batch_dependent(module: nn.Module) -> bool:
    """Whether an example's output in ``eval()`` can depend on the rest of its batch: a batch
    norm that normalises with batch statistics there (fsbench's BatchStatNorm, or a torch batch
    norm without running statistics). Then a batch cannot be split into chunks."""
    for m in module.modules():
        if isinstance(m, BatchStatNorm):
            return True
        if isinstance(m, _BatchNorm) and (not m.track_running_stats or m.running_mean is None):
            return True
    return False


def running_statistics(module: nn.Module) -> bool:
    """Whether the module has batch norms with running statistics (torch's ``BatchNorm*d`` as
    usual): in ``train()`` they use batch statistics, in ``eval()`` their running ones."""
    return any(
        isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None
        for m in module.modules()
    )


def output_dim(module: nn.Module, example_shape: tuple[int, ...] | None, who: str) -> int:
    """The size D of a module's [B, D] output: its ``feature_dim`` attribute when it has one,
    else measured by one gradient-free ``eval()`` pass of two blank examples of
    ``example_shape`` (a TypeError naming example_shape when that is not known)."""
    dim = getattr(module.net if isinstance(module, UserNet) else module, "feature_dim", None)
    if isinstance(dim, int):
        return dim
    if example_shape is None:
        raise TypeError(
            f"{who}: give example_shape= (the shape of one example) so that the size of your "
            "backbone's embedding can be measured"
        )
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            param = next(module.parameters(), None)
            device = param.device if param is not None else None
            out = module(torch.zeros(2, *example_shape, device=device))
    finally:
        module.train(was)
    return int(out.flatten(1).shape[1])
