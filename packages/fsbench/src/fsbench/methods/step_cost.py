"""What one training step must cost at least: its FLOPs and bytes, counted by running it once.

A speed figure means little without a floor beside it. ``count_step`` runs a step under
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, forward and
backward, the second-order terms included) and a dispatch mode that adds up, for every operation
that moves data, the bytes of its tensor inputs and outputs (each read and written once, no fusion:
what an eager step moves at least). ``floor_seconds`` turns them into the time no implementation
beats on a device of given rates. The number of operations is the kernel launches of an eager step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class StepCost:
    """FLOPs (matmuls and convolutions), unfused bytes and operation count of one step."""

    flops: int
    op_bytes: int
    ops: int

    def floor_seconds(self, flops_per_second: float, bytes_per_second: float) -> float:
        """The larger of arithmetic time and (unfused) memory time at the given rates."""
        return max(self.flops / flops_per_second, self.op_bytes / bytes_per_second)

    def as_dict(self) -> dict:
        return asdict(self)


def _tensor_bytes(tree: object) -> int:
    leaves, _ = tree_flatten(tree)
    return sum(t.numel() * t.element_size() for t in leaves if isinstance(t, torch.Tensor))


class _Traffic(TorchDispatchMode):
    """Adds up the bytes every non-view operation reads and writes, and counts operations."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not getattr(func, "is_view", False) and func.namespace == "aten":
            self.bytes += _tensor_bytes((args, kwargs, out))
            self.ops += 1
        return out


def count_step(step: Callable[[], object]) -> StepCost:
    """Run ``step()`` once and count its FLOPs, unfused bytes and operations."""
    flops = FlopCounterMode(display=False)
    traffic = _Traffic()
    with flops, traffic:
        step()
    return StepCost(int(flops.get_total_flops()), int(traffic.bytes), int(traffic.ops))
