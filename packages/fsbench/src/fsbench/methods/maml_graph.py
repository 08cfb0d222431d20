"""MAML's meta-batch loss as CUDA graphs: one replay for the forward, one for the backward.

Eager MAML on a GPU is bound by kernel launches, not arithmetic: the MultiDigitMNIST preset
(Conv-4, 64 filters, 64x64, 12 tasks of 80 images) launches thousands of small kernels per
meta-step and does about 0.1 TFLOP. ``torch.cuda.make_graphed_callables`` captures the meta-batch
loss (every task's inner loop and query loss, by the per-task loop or by vmap) and its whole
backward (the second-order terms included) once, and then replays them: two launches a step, no
host synchronisation. The result behaves like any autograd output, so the trainer's
``loss.backward()`` and optimiser step are unchanged. The math is the eager path's
(``MAML.run_tasks``); only the launching differs.

Limits: CUDA only; every meta-batch must have the capture's shapes (training batches do); the
parameters must stay the same tensors (``load_state_dict`` and optimiser steps update them in
place, so they do); under autocast the weight cache must be off (done here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from fsbench.data.store import Episode

if TYPE_CHECKING:  # pragma: no cover
    from fsbench.methods.maml import MAML

GRAPH_PATHS = {"graph": "loop", "graph-vmap": "vmap"}  # graph path -> the eager path it captures


class MetaBatchLoss(nn.Module):
    """The mean query loss and accuracy of a meta-batch, as a module owning MAML's parameters.

    ``make_graphed_callables`` takes modules (it differentiates with respect to their parameters)
    whose inputs are tensors; this is ``MAML.run_tasks`` in that form, ``execution`` "loop" or
    "vmap".
    """

    def __init__(self, method: MAML, execution: str, steps: int) -> None:
        super().__init__()
        self.model = method.model
        self._method = [method]  # a list: not registered as a submodule
        self.execution = execution
        self.steps = steps

    def forward(
        self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        method = self._method[0]
        way = method.way
        ep = Episode(xs, ys, xq, yq, way, ys.shape[1] // way, yq.shape[1] // way)
        params = dict(self.model.named_parameters())
        losses, accs = method.run_tasks(params, ep, self.steps, self.execution)
        return losses.mean(), accs.mean()


def _shape_key(ep: Episode) -> tuple:
    return tuple((tuple(t.shape), t.dtype) for t in (ep.support_x, ep.support_y, ep.query_x))


class GraphedMetaBatch:
    """A ``MetaBatchLoss`` captured as CUDA graphs on the first meta-batch, replayed afterwards.

    A meta-batch of other shapes (or another autocast dtype) is captured anew; the last
    capture is kept.
    """

    def __init__(self, method: MAML, execution: str, steps: int, warmup: int = 3) -> None:
        if execution not in GRAPH_PATHS.values():
            raise ValueError(f"a graph captures 'loop' or 'vmap', got {execution!r}")
        self.method, self.execution, self.steps = method, execution, steps
        self.warmup = warmup
        self._key: tuple | None = None
        self._graphed: Callable | None = None

    def __call__(self, ep: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss (differentiable) and mean accuracy of the meta-batch ``ep``."""
        if not ep.query_x.is_cuda:
            raise RuntimeError("a CUDA graph of the meta-step needs CUDA tensors")
        args = (ep.support_x, ep.support_y, ep.query_x, ep.query_y)
        amp = torch.is_autocast_enabled("cuda")
        amp_dtype = torch.get_autocast_dtype("cuda") if amp else None
        key = (_shape_key(ep), amp_dtype)
        if key != self._key:
            self._graphed = None  # free the old capture's memory pool first
            self._graphed = self._capture(args, amp_dtype)
            self._key = key
        assert self._graphed is not None
        return self._graphed(*args)

    def _capture(self, args: tuple[torch.Tensor, ...], amp_dtype: torch.dtype | None) -> Callable:
        """Warm up on a side stream, then capture forward and backward (torch's recipe).

        A fresh module each time: make_graphed_callables replaces the forward of the module it
        is given.
        """
        module = MetaBatchLoss(self.method, self.execution, self.steps)
        sample = tuple(a.detach().clone() for a in args)
        if amp_dtype is None:
            return torch.cuda.make_graphed_callables(
                module, sample, num_warmup_iters=self.warmup, allow_unused_input=True
            )
        # make_graphed_callables refuses autocast's weight cache (its casts would be captured
        # once and reused stale); only the meta-parameters are leaves it could cache (the fast
        # weights are not), so it saved one cast per weight.
        with torch.autocast("cuda", dtype=amp_dtype, cache_enabled=False):
            return torch.cuda.make_graphed_callables(
                module, sample, num_warmup_iters=self.warmup, allow_unused_input=True
            )
