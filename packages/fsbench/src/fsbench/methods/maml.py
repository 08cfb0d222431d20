"""MAML (second order) and first-order MAML with one functional inner loop (torch.func).

The inner loop is written once as a function of a parameter dict (``functional_call`` +
``torch.func.grad``). A meta-batch runs it either as a Python loop over the tasks or with
``torch.func.vmap`` over them; both give the same meta-gradient. Measured on 2 CPU cores the loop
is about 3x faster than vmap (vmap's batched convolutions fall back to slow grouped kernels on
CPU), so ``auto`` picks the loop on CPU. On CUDA the answer depends on the GPU, the image size and
the meta-batch, so ``auto`` there means ``measure``: the first meta-batch is run every way and the
fastest path is kept (timings go into result.json; see also benchmarks/bench_maml.py). On CUDA the
paths measured include ``graph`` and ``graph-vmap``: the loop or vmap captured as CUDA graphs
(methods/maml_graph.py), which remove the launch overhead that bounds eager MAML on a GPU.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from fsbench.data.store import ArrayStore, Episode
from fsbench.errors import FsbenchError
from fsbench.methods.backbone import UserNet, running_statistics
from fsbench.methods.base import Method
from fsbench.methods.maml_graph import GRAPH_PATHS, GraphedMetaBatch
from fsbench.models.conv4 import Conv4, set_fused_norm

log = logging.getLogger("fsbench")

EXECUTIONS = ("auto", "measure", "loop", "vmap", "compile", "graph", "graph-vmap")
MEASURED = ("loop", "vmap")  # the paths ``measure`` times against each other (CPU)
MEASURED_CUDA = ("loop", "vmap", "graph", "graph-vmap")  # and on CUDA
INNER_LOSSES = ("mean", "cbfinn")


def resolve_execution(choice: str, device: torch.device) -> str:
    """``auto`` -> ``loop`` on CPU (measured) and ``measure`` on CUDA (see the module docstring);
    the graph paths need CUDA."""
    if choice not in EXECUTIONS:
        raise ValueError(f"maml execution must be one of {EXECUTIONS}, got {choice!r}")
    if choice in GRAPH_PATHS and device.type != "cuda":
        raise FsbenchError(f"--maml-exec {choice} captures CUDA graphs; it needs --device cuda")
    if choice == "auto":
        return "measure" if device.type == "cuda" else "loop"
    return choice


def measured_paths(device: torch.device) -> tuple[str, ...]:
    """The paths ``measure`` times on ``device``."""
    return MEASURED_CUDA if device.type == "cuda" else MEASURED


def _synchronize(x: torch.Tensor) -> None:
    """Wait for queued GPU work, so that a wall-clock time covers it."""
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


class MAML(Method):
    """Model-agnostic meta-learning on a Conv-4 with a linear head of ``way`` outputs.

    ``backbone``: any model x [B, *example_shape] -> [B, way] logits (one-channel [H, W] images
    arrive as [B, 1, H, W]); None: the preset's Conv-4 with its head. The inner loop adapts
    every parameter through ``torch.func.functional_call``; buffers are the module's own and
    are read, never written. Batch norm must therefore use the current batch's statistics
    (``track_running_stats=False``, as fsbench's Conv-4 and the MAML reference code): a model
    with running statistics is refused in one line (torch.func cannot update them inside the
    inner loop). Every path (loop, vmap, compile, the CUDA graphs) then applies.
    """

    name = "maml"
    first_order = False
    eval_settings = ("query", "episodes", "test_inner_steps")

    def __init__(self, backbone: nn.Module | None = None, **kw: Any) -> None:
        super().__init__(backbone, **kw)
        settings = self.settings
        self.way = settings.way
        if backbone is None:
            self.model: nn.Module = Conv4(
                self.shape(),
                hidden=settings.hidden,
                num_classes=self.way,
                pool=settings.pool,
                readout=settings.readout,
                norm="batch",
                affine=settings.norm_affine,
                init=settings.init,
            )
        else:
            if running_statistics(backbone):
                raise ValueError(
                    "MAML needs batch norm on batch statistics (track_running_stats=False): "
                    "torch.func cannot update running statistics inside the inner loop"
                )
            self.model = UserNet(backbone)
        self.inner_loss = settings.inner_loss
        if self.inner_loss not in INNER_LOSSES:
            raise ValueError(f"inner_loss must be one of {INNER_LOSSES}, got {self.inner_loss!r}")
        self.inner_lr = float(settings.inner_lr)
        self.inner_steps = int(settings.inner_steps)
        self.test_inner_steps = int(settings.test_inner_steps)
        self.execution = settings.maml_exec
        self.execution_timings: dict[str, float] = {}
        self._compiled: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None
        self._graphs: dict[str, GraphedMetaBatch] = {}  # captured meta-batches by graph path

    def to(self, device: torch.device) -> MAML:
        super().to(device)
        self.execution = resolve_execution(self.settings.maml_exec, device)
        return self

    # -- the one inner loop -------------------------------------------------------------
    def support_loss(self, logits: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """The inner loss: mean cross-entropy, or cbfinn's sum over the support set / shot.

        cbfinn/maml divides each example's cross-entropy by K (shot) and lets tf.gradients sum
        them: way x the mean, so its fast lr acts on a loss ``way`` times larger.
        """
        if self.inner_loss == "cbfinn":
            shot = ys.shape[-1] // self.way
            return F.cross_entropy(logits, ys, reduction="sum") / shot
        return F.cross_entropy(logits, ys)

    def adapt(
        self, params: Mapping[str, torch.Tensor], xs: torch.Tensor, ys: torch.Tensor, steps: int
    ) -> Mapping[str, torch.Tensor]:
        """``steps`` gradient steps of size inner_lr on the support loss of one task.

        First order: the gradient is taken at detached parameters, so no second-order graph is
        built at all; the fast weights still depend on the meta-parameters through the update.
        """

        def loss_of(p: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return self.support_loss(functional_call(self.model, dict(p), (xs,)), ys)

        for _ in range(steps):
            at = {k: p.detach() for k, p in params.items()} if self.first_order else params
            grads = grad(loss_of)(at)
            params = {k: p - self.inner_lr * grads[k] for k, p in params.items()}
        return params

    def task_logits(
        self,
        params: Mapping[str, torch.Tensor],
        xs: torch.Tensor,
        ys: torch.Tensor,
        xq: torch.Tensor,
        steps: int,
    ) -> torch.Tensor:
        """Query logits of one task after ``steps`` inner steps on its support set."""
        fast = self.adapt(params, xs, ys, steps)
        return functional_call(self.model, dict(fast), (xq,))

    def task_loss(
        self,
        params: Mapping[str, torch.Tensor],
        xs: torch.Tensor,
        ys: torch.Tensor,
        xq: torch.Tensor,
        yq: torch.Tensor,
        steps: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Query loss and accuracy of one task after adapting on its support set."""
        logits = self.task_logits(params, xs, ys, xq, steps)
        loss = F.cross_entropy(logits, yq)
        acc = (logits.argmax(-1) == yq).float().mean()
        return loss, acc

    def run_tasks(
        self,
        params: Mapping[str, torch.Tensor],
        ep: Episode,
        steps: int,
        execution: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-task query losses and accuracies [B] of a meta-batch, by loop, vmap or compile
        (a graph path runs here as the eager path it captures)."""
        execution = execution or self.execution
        execution = GRAPH_PATHS.get(execution, execution)
        set_fused_norm(self.model, execution != "vmap")
        if execution == "vmap":

            def one(xs, ys, xq, yq):
                return self.task_loss(params, xs, ys, xq, yq, steps)

            return vmap(one)(ep.support_x, ep.support_y, ep.query_x, ep.query_y)
        fn = self.task_loss
        if execution == "compile":
            if self._compiled is None:
                self._compiled = torch.compile(self.task_loss, dynamic=False)
            fn = self._compiled
        losses, accs = [], []
        for b in range(ep.support_x.shape[0]):
            loss, acc = fn(
                params, ep.support_x[b], ep.support_y[b], ep.query_x[b], ep.query_y[b], steps
            )
            losses.append(loss)
            accs.append(acc)
        return torch.stack(losses), torch.stack(accs)

    # -- Method API ----------------------------------------------------------------------
    def check(self, store: ArrayStore, split: str) -> None:
        self.check_meta_batches(store, split)

    def sample_train(
        self, store: ArrayStore, generator: torch.Generator, iteration: int
    ) -> Episode:
        s = self.settings
        query = self.train_sizes()[2]
        return store.sample_episode(generator, s.way, s.shot, query, self.rank_tasks, check=False)

    def split_over_ranks(self, world: int) -> None:
        """Each rank adapts meta_batch / world tasks of a meta-batch."""
        self.split_meta_batch(world)

    def extra_state(self) -> dict:
        """What a checkpoint must keep besides the weights: the measured execution path."""
        return {"execution": self.execution, "execution_timings": self.execution_timings}

    def load_extra_state(self, state: dict) -> None:
        chosen = state.get("execution")
        on_cuda = next(self.model.parameters()).is_cuda
        if chosen in MEASURED + ("compile",) or (chosen in MEASURED_CUDA and on_cuda):
            self.execution = chosen
            self.execution_timings = dict(state.get("execution_timings") or {})

    def meta_batch_loss(self, batch: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss and accuracy of a training meta-batch by the current path."""
        if self.execution in GRAPH_PATHS:
            graphed = self._graphs.get(self.execution)
            if graphed is None:
                graphed = GraphedMetaBatch(self, GRAPH_PATHS[self.execution], self.inner_steps)
                self._graphs[self.execution] = graphed
            return graphed(batch)
        params = dict(self.model.named_parameters())
        losses, accs = self.run_tasks(params, batch, self.inner_steps)
        return losses.mean(), accs.mean()

    def measure_execution(self, batch: Episode, repeats: int = 2) -> str:
        """Time one meta-gradient of ``batch`` by each measured path; keep and return the fastest.

        The first call of each path is a warm-up (kernel selection, caches, a graph's capture);
        the best of the next ``repeats`` counts. Gradients go through autograd.grad, so no .grad
        is touched. A graph path that cannot be captured here is left out with a warning (the
        eager paths always run).
        """
        params = list(self.model.parameters())
        timings: dict[str, float] = {}
        for path in measured_paths(batch.query_x.device):
            self.execution = path
            best = math.inf
            try:
                for attempt in range(repeats + 1):
                    _synchronize(batch.query_x)
                    start = time.perf_counter()
                    loss, _ = self.meta_batch_loss(batch)
                    torch.autograd.grad(loss, params)
                    _synchronize(batch.query_x)
                    if attempt:
                        best = min(best, time.perf_counter() - start)
            except Exception as exc:
                if path not in GRAPH_PATHS:
                    raise
                self._graphs.pop(path, None)
                log.warning("--maml-exec measure: %s left out (%s: %s)", path, type(exc).__name__,
                            " ".join(str(exc).split())[:200])  # fmt: skip
                continue
            timings[path] = round(best, 6)
        self.execution_timings = timings
        self.execution = min(timings, key=timings.__getitem__)
        # keep the chosen path's capture, free the others' memory pools
        self._graphs = {k: g for k, g in self._graphs.items() if k == self.execution}
        return self.execution

    def train_loss(self, batch: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.execution == "measure":
            self.measure_execution(batch)
        loss, acc = self.meta_batch_loss(batch)
        return loss, {"loss": loss.detach(), "accuracy": acc}

    @property
    def eval_chunk(self) -> int:  # test tasks adapted together: one meta-batch
        return max(1, int(self.settings.meta_batch))

    def episode_accuracies(self, episode: Episode) -> torch.Tensor:
        if episode.way != self.way:
            raise ValueError(
                f"this MAML model has {self.way} outputs; it cannot test {episode.way}-way"
            )
        params = {k: v.detach() for k, v in self.model.named_parameters()}
        execution = "loop" if self.execution == "measure" else self.execution
        with torch.no_grad():
            _, acc = self.run_tasks(params, episode, self.test_inner_steps, execution)
        return acc

    def task_scores(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, way: int
    ) -> torch.Tensor:
        """Logits after adapting on the whole support set (any shot per class) for the test
        steps; batch statistics: the queries are normalised together, as in a test episode."""
        if way != self.way:
            raise ValueError(f"this MAML model has {self.way} outputs; it cannot test {way}-way")
        params = {k: v.detach() for k, v in self.model.named_parameters()}
        set_fused_norm(self.model, True)
        return self.task_logits(params, support_x, support_y, query_x, self.test_inner_steps)


class FOMAML(MAML):
    """First-order MAML: the inner gradient is treated as a constant in the meta-gradient."""

    name = "fomaml"
    first_order = True
