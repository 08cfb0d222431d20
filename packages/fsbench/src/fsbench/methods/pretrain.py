"""Pre-training of a backbone by ordinary many-way classification on the meta-train classes.

Meta-Transfer Learning's first phase. The preset is the TF code's (the code of fsbench's ResNet-12):
Adam at 1e-3 halved every 5,000 of 30,000 iterations, batch 64, the last weights kept;
``optimizer`` sgd with momentum gives the PyTorch code's Nesterov SGD, ``epochs`` counts the run
in epochs (``eval_every`` and ``lr_step`` too). The training split is reshuffled every epoch; an
optional validation (the PyTorch code's) and the test fit a new linear head to each few-shot
task's support features (100 SGD steps at 0.01) and count the query accuracy: "pre-trained
features + a new linear head".
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fsbench.data.store import ArrayStore, Episode
from fsbench.methods.backbone import UserNet
from fsbench.methods.base import Method, step_schedule
from fsbench.methods.linear_head import fit_linear_head
from fsbench.models import build_backbone


class Pretrain(Method):
    """A backbone with a linear head over the training split's classes, trained by epochs.

    ``backbone``: a model with ``forward(x) -> [B, num_classes]`` logits over the training
    classes and ``embed(x) -> [B, D]`` features (the few-shot validation and test fit a new
    linear head to them); one-channel [H, W] images arrive as [B, 1, H, W]. fsbench's
    ``Conv4``/``ResNet12`` built with ``num_classes`` are such models, and only they can be
    loaded by MTL afterwards. None: the preset's network with a head of ``num_classes``.
    """

    name = "pretrain"
    # what only the test reads (train_* are unused: the training is plain classification)
    eval_settings = (
        "way",
        "shot",
        "query",
        "episodes",
        "test_inner_steps",
        "train_way",
        "train_shot",
        "train_query",
    )

    def __init__(self, backbone: nn.Module | None = None, **kw: Any) -> None:
        super().__init__(backbone, **kw)
        settings = self.settings
        if backbone is None:
            self.model: nn.Module = build_backbone(
                settings, self.shape(), num_classes=self.num_classes
            )
        elif callable(getattr(backbone, "embed", None)):
            self.model = UserNet(backbone)
        else:
            raise TypeError(
                "Pretrain needs a model with embed(x) -> [B, D] features besides its logits "
                f"(e.g. fsbench's Conv4/ResNet12 with num_classes); {type(backbone).__name__} "
                "has no embed"
            )
        self.steps_per_epoch = 1
        self._order: torch.Tensor | None = None  # this epoch's permutation of the training split

    # -- schedule by epochs, or by iterations with epochs 0 ---------------------------------
    def prepare(self, store: ArrayStore) -> None:
        self.steps_per_epoch = max(1, math.ceil(len(store) / int(self.settings.batch_size)))

    def unit(self) -> int:
        """Iterations per unit of ``iterations``, ``eval_every`` and ``lr_step``: an epoch when
        the run is counted in epochs, else one iteration (``epochs`` 0: ``iterations`` counts)."""
        return self.steps_per_epoch if self.settings.epochs else 1

    def iterations(self, store: ArrayStore) -> int:
        self.prepare(store)
        s = self.settings
        return int(s.epochs) * self.steps_per_epoch if s.epochs else int(s.iterations)

    def eval_interval(self) -> int:
        return int(self.settings.eval_every) * self.unit()

    def make_optimizer(
        self,
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        s = self.settings
        opt: torch.optim.Optimizer
        if s.optimizer == "adam":  # the TF code's pre-training (tf.train.AdamOptimizer)
            opt = torch.optim.Adam(self.model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        else:  # the PyTorch code's
            opt = torch.optim.SGD(
                self.model.parameters(),
                lr=s.lr,
                momentum=s.momentum,
                nesterov=s.momentum > 0,
                weight_decay=s.weight_decay,
            )
        step = int(s.lr_step) * self.unit()  # epochs, or iterations with epochs 0
        return opt, step_schedule(opt, step, float(s.lr_gamma))

    def sample_train(self, store: ArrayStore, generator: torch.Generator, iteration: int):
        """The next minibatch of this epoch's shuffled order (the last one may be smaller)."""
        b = int(self.settings.batch_size)
        pos = iteration % self.steps_per_epoch
        if pos == 0 or self._order is None:
            self._order = torch.randperm(len(store), generator=generator, device=store.device)
        return store.take(self._order[pos * b : (pos + 1) * b])

    def extra_state(self) -> dict:
        return {"order": self._order}

    def load_extra_state(self, state: dict) -> None:
        self._order = state.get("order")

    def train_loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        return loss, {"loss": loss.detach(), "accuracy": (logits.argmax(1) == y).float().mean()}

    def check(self, store: ArrayStore, split: str) -> None:
        if split not in ("train", "trainval"):
            s = self.settings
            store.check_episode(s.way, s.shot, s.query)

    # -- few-shot evaluation: a new linear head per task ------------------------------------
    def task_scores(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, way: int
    ) -> torch.Tensor:
        """Logits of a new linear head (from zeros) fitted to the support features."""
        s = self.settings
        embed = self.model.embed
        assert callable(embed)  # the preset's Conv4/ResNet12 or a UserNet (checked above)
        zs, zq = embed(support_x), embed(query_x)
        w, bias = fit_linear_head(
            zs.new_zeros(way, zs.shape[1]),
            zs.new_zeros(way),
            zs,
            support_y,
            int(s.test_inner_steps),
            float(s.inner_lr),
        )
        return F.linear(zq.float(), w, bias)

    def episode_accuracies(self, episode: Episode) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for b in range(episode.support_x.shape[0]):
                logits = self.task_scores(
                    episode.support_x[b], episode.support_y[b], episode.query_x[b], episode.way
                )
                out.append((logits.argmax(1) == episode.query_y[b]).float().mean())
        return torch.stack(out)
