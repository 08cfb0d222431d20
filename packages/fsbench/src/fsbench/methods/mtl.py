"""Meta-Transfer Learning (Sun et al. 2019): meta-learn scaling/shifting of a pre-trained backbone.

The backbone comes from ``fsbench pretrain`` and stays frozen; each 3x3 convolution gets learned
scaling (init 1) and shifting (init 0), "SS" (``models/scale_shift.py``). A linear classifier is
the base learner: for each task it is fitted to the support features by ``inner_steps`` SGD steps
of ``inner_lr``, first order, starting from a meta-learned initialisation (the official PyTorch
code: the FC only, ``autograd.grad`` without ``create_graph``). The query loss of the fitted
classifier trains SS (Adam, ``ss_lr``) and the classifier's initialisation (Adam, ``lr``).

``mtl_mode="ft"`` meta-trains every backbone weight instead of SS (the paper's "FT" ablation).

``head_init`` is where the meta-learned classifier starts: ``xavier`` as the TensorFlow code (a
random init that meta-training has to unlearn: with 100 inner steps it costs 1-shot tasks many
points until then), or ``zeros``, the start of a new head on the pre-trained features, so that
before any meta-update the method equals the pre-trained baseline exactly (the ablation uses it).

Hard-task meta-batch (``hard_tasks``; no official code exists — built from the paper's words:
"choose the failure class from each task by ranking the class-level accuracies", re-sample its
data and re-compose hard tasks): after each meta-batch the class with the lowest query accuracy
of every random task joins a queue; whenever ``way`` distinct classes are queued, the next
meta-batch gets one more task made of them, with fresh support and query examples.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fsbench.data.store import ArrayStore, Episode
from fsbench.methods.base import Method, step_schedule
from fsbench.methods.linear_head import fit_linear_head, per_class_accuracy
from fsbench.models import build_backbone
from fsbench.models.conv4 import Conv4
from fsbench.models.resnet12 import ResNet12
from fsbench.models.scale_shift import add_scale_shift

MODES = ("ss", "ft")


def _concat(a: Episode, b: Episode) -> Episode:
    """Two episode batches of the same shape as one."""
    cat = torch.cat
    if a.classes is None or b.classes is None:
        raise ValueError("hard tasks need episodes that record their classes")
    return Episode(
        cat([a.support_x, b.support_x]),
        cat([a.support_y, b.support_y]),
        cat([a.query_x, b.query_x]),
        cat([a.query_y, b.query_y]),
        a.way,
        a.shot,
        a.query,
        cat([a.classes, b.classes]),
    )


class MTL(Method):
    """SS (or FT) on a pre-trained backbone with a first-order linear base learner.

    ``backbone``: fsbench's ``Conv4`` or ``ResNet12`` (``fsbench.models``), whose 3x3
    convolutions get the scaling/shifting and whose ``embed`` gives the features; anything else
    is refused in one line. MTL wraps the convolutions of a copy (so your module is left as it
    is); ``load_pretrained`` (``pretrained=DIR``) loads a pre-training run's weights into it.
    None: the preset's network (``backbone`` setting), built without dropout.
    """

    name = "mtl"
    eval_settings = ("query", "episodes", "test_inner_steps")

    def __init__(self, backbone: nn.Module | None = None, **kw: Any) -> None:
        if backbone is not None and not isinstance(backbone, Conv4 | ResNet12):
            raise TypeError(  # before the settings: this is what stands in the way first
                "MTL scales and shifts the convolutions of fsbench's Conv4 or ResNet12 "
                f"(fsbench.models); got {type(backbone).__name__}"
            )
        super().__init__(backbone, **kw)
        settings = self.settings
        self.mode = settings.mtl_mode
        if self.mode not in MODES:
            raise ValueError(f"mtl_mode must be one of {MODES}, got {self.mode!r}")
        self.way = int(settings.way)
        net: Conv4 | ResNet12
        if backbone is None:
            built = build_backbone(dataclasses.replace(settings, dropout=0.0), self.shape())
            assert isinstance(built, Conv4 | ResNet12)
            net = built
        else:
            assert isinstance(backbone, Conv4 | ResNet12)  # checked above
            net = copy.deepcopy(backbone)
        if self.mode == "ss":
            self.meta_params = add_scale_shift(net)
        else:
            self.meta_params = list(net.parameters())
        self.net = net
        fc = nn.Linear(net.feature_dim, self.way)
        if settings.head_init == "zeros":
            nn.init.zeros_(fc.weight)
        else:
            nn.init.xavier_uniform_(fc.weight)
        nn.init.zeros_(fc.bias)
        self.fc = fc
        self.model = nn.ModuleDict({"backbone": net, "fc": fc})
        self.hard_queue: list[int] = []  # failure classes waiting to form a hard task
        self.hard_in_batch = 0

    # -- pre-trained weights ----------------------------------------------------------------
    def load_pretrained(self, state: dict[str, torch.Tensor]) -> None:
        """Load a pre-trained backbone's weights (its classification head is dropped)."""
        target = self.net.state_dict()
        mapped = {}
        for key, value in state.items():
            if key not in target and key.startswith("net."):  # pre-trained through a UserNet
                key = key.removeprefix("net.")
            if key.startswith("head."):
                continue
            name = key if key in target else ".conv.".join(key.rsplit(".", 1))
            if name not in target or target[name].shape != value.shape:
                raise ValueError(f"the pre-trained weights do not fit this backbone ({key})")
            mapped[name] = value
        missing = [
            k for k in target if k not in mapped and not k.endswith(("ss.scale", "ss.shift"))
        ]
        if missing:
            raise ValueError(f"the pre-trained weights lack {missing[0]}")
        self.net.load_state_dict(mapped, strict=False)

    def parameter_counts(self) -> dict[str, int | float]:
        """Meta-trained parameters (SS or the whole backbone) against the backbone's own."""
        own = sum(p.numel() for n, p in self.net.named_parameters() if ".ss." not in n)
        meta = sum(p.numel() for p in self.meta_params)
        return {
            "backbone": own,
            "meta_trained": meta,
            "meta_trained_fraction": round(meta / own, 4),
            "classifier": sum(p.numel() for p in self.fc.parameters()),
        }

    def summary(self) -> dict:
        return {"parameters": self.parameter_counts(), "mtl_mode": self.mode}

    # -- training ---------------------------------------------------------------------------
    def make_optimizer(
        self,
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        s = self.settings
        opt = torch.optim.Adam(
            [
                {"params": self.meta_params, "lr": s.ss_lr},
                {"params": self.fc.parameters(), "lr": s.lr},
            ]
        )
        return opt, step_schedule(opt, int(s.lr_step), float(s.lr_gamma))

    def check(self, store: ArrayStore, split: str) -> None:
        self.check_meta_batches(store, split)

    def split_over_ranks(self, world: int) -> None:
        """Each rank adapts meta_batch / world tasks (and, with hard tasks, keeps its own queue)."""
        self.split_meta_batch(world)

    def sample_train(
        self, store: ArrayStore, generator: torch.Generator, iteration: int
    ) -> Episode:
        s = self.settings
        query = self.train_sizes()[2]
        batch = store.sample_episode(generator, s.way, s.shot, query, self.rank_tasks, check=False)
        self.hard_in_batch = 0  # hard tasks come last in the batch
        if self.settings.hard_tasks and len(self.hard_queue) >= self.way:
            classes = torch.tensor([self.hard_queue[: self.way]], device=store.device)
            del self.hard_queue[: self.way]
            hard = store.sample_episode(
                generator, s.way, s.shot, query, 1, check=False, classes=classes
            )
            batch = _concat(batch, hard)
            self.hard_in_batch = 1
        return batch

    def _task_logits(self, ep: Episode, b: int, steps: int) -> torch.Tensor:
        """Query logits of task ``b`` after fitting the classifier to its support set."""
        return self.fitted_logits(ep.support_x[b], ep.support_y[b], ep.query_x[b], steps)

    def fitted_logits(
        self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, steps: int
    ) -> torch.Tensor:
        """Query logits after ``steps`` first-order steps of the classifier on the support set."""
        backbone, fc = self.net, self.fc
        with torch.no_grad():  # first order: no gradient reaches the support features
            zs = backbone.embed(xs)
        w, bias = fit_linear_head(fc.weight, fc.bias, zs, ys, steps, float(self.settings.inner_lr))
        return F.linear(backbone.embed(xq).float(), w, bias)

    def task_scores(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, way: int
    ) -> torch.Tensor:
        """Logits of the classifier fitted to the support set (any shot) for the test steps."""
        if way != self.way:
            raise ValueError(
                f"this MTL classifier has {self.way} outputs; it cannot test {way}-way"
            )
        return self.fitted_logits(
            support_x, support_y, query_x, int(self.settings.test_inner_steps)
        )

    def train_loss(self, batch: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        steps = int(self.settings.inner_steps)
        tasks = batch.support_x.shape[0]
        random_tasks = tasks - self.hard_in_batch
        losses, accs, failures = [], [], []
        for b in range(tasks):
            logits = self._task_logits(batch, b, steps)
            losses.append(F.cross_entropy(logits, batch.query_y[b]))
            accs.append((logits.argmax(1) == batch.query_y[b]).float().mean())
            if self.settings.hard_tasks and b < random_tasks and batch.classes is not None:
                worst = per_class_accuracy(logits.detach(), batch.query_y[b], batch.way).argmin()
                failures.append(batch.classes[b, worst])
        for c in torch.stack(failures).tolist() if failures else []:  # one sync per meta-batch
            if c not in self.hard_queue:
                self.hard_queue.append(int(c))
        metrics = {
            "loss": torch.stack(losses).mean().detach(),
            "accuracy": torch.stack(accs).mean(),
        }
        if random_tasks < tasks:
            metrics["hard_accuracy"] = torch.stack(accs[random_tasks:]).mean()
        return torch.stack(losses).mean(), metrics

    def extra_state(self) -> dict:
        return {"hard_queue": list(self.hard_queue)}

    def load_extra_state(self, state: dict) -> None:
        self.hard_queue = list(state.get("hard_queue") or [])

    # -- evaluation -------------------------------------------------------------------------
    @property
    def eval_chunk(self) -> int:
        return max(1, int(self.settings.meta_batch))

    def episode_accuracies(self, episode: Episode) -> torch.Tensor:
        if episode.way != self.way:
            raise ValueError(
                f"this MTL classifier has {self.way} outputs; it cannot test {episode.way}-way"
            )
        steps = int(self.settings.test_inner_steps)
        out = []
        with torch.no_grad():
            for b in range(episode.support_x.shape[0]):
                logits = self._task_logits(episode, b, steps)
                out.append((logits.argmax(1) == episode.query_y[b]).float().mean())
        return torch.stack(out)
