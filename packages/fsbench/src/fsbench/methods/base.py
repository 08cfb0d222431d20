"""What every method gives the training engine: a model, a loss on a sampled batch, an evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fsbench.data.store import ArrayStore, Episode

if TYPE_CHECKING:
    from fsbench.settings import Settings

EPISODE_CI = "1.96*std/sqrt(episodes)"


@dataclass
class EvalResult:
    """Mean accuracy (fraction), its 95% CI half-width, how it was computed, and the raw scores."""

    accuracy: float
    ci95: float
    ci95_method: str
    episodes: int
    per_episode: list[float] = field(default_factory=list)


def episode_ci(accuracies: list[float]) -> EvalResult:
    """Mean over episodes and the 95% CI 1.96 * std / sqrt(episodes) (population std)."""
    acc = torch.tensor(accuracies, dtype=torch.float64)
    n = len(accuracies)
    mean = float(acc.mean()) if n else float("nan")
    std = float(acc.std(unbiased=False)) if n else float("nan")
    return EvalResult(mean, 1.96 * std / math.sqrt(max(n, 1)), EPISODE_CI, n, accuracies)


def binomial_ci(correct: int, total: int) -> EvalResult:
    """Accuracy on a fixed test split with the binomial 95% CI 1.96 * sqrt(p(1-p)/n)."""
    p = correct / total
    return EvalResult(p, 1.96 * math.sqrt(p * (1 - p) / total), "binomial 1.96*sqrt(p(1-p)/n)", 0)


def filled(value: int | None, name: str) -> int:
    """A setting that resolve_settings fills in (``train_way``: ``way`` when unset)."""
    if value is None:
        raise ValueError(f"setting {name} is unset: build settings with resolve_settings")
    return int(value)


def step_schedule(
    opt: torch.optim.Optimizer, step: int, gamma: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning rate times ``gamma`` every ``step`` steps (0: constant)."""
    if step > 0:
        return torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=gamma)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


class Method:
    """A few-shot method: what the engine trains, checkpoints and tests. Subclass it for your own.

    The engine, for one run: builds the method (``__init__``), calls ``check`` on every split,
    ``iterations`` once, ``make_optimizer``; then each training iteration
    ``batch = sample_train(store, generator, i)``, ``loss, metrics = train_loss(batch)`` and an
    optimizer step on ``loss``; at every validation and at the test ``evaluate``, which draws
    the test episodes (the same for every method with the same seed) and calls
    ``episode_accuracies`` with the model in ``eval()``. Checkpoints keep ``model``'s
    ``state_dict()`` and ``extra_state()``; result.json adds ``summary()``.

    A minimal method is ``__init__`` (build ``self.model``, an ``nn.Module`` holding every
    trained parameter), ``train_loss`` and ``task_scores``; the defaults below do the rest for
    episodic training on the settings' train_way/train_shot/train_query::

        class NearestCentroid(Method):
            def __init__(self, backbone=None, **kw):
                super().__init__(backbone, **kw)
                self.model = backbone or nn.Sequential(  # shape(): one example's shape
                    nn.Flatten(), nn.Linear(math.prod(self.shape()), 64), nn.ReLU(),
                    nn.Linear(64, 64),
                )

            def task_scores(self, support_x, support_y, query_x, way):
                zs, zq = self.model(support_x), self.model(query_x)
                centroids = torch.stack([zs[support_y == c].mean(0) for c in range(way)])
                return -torch.cdist(zq, centroids)

            def train_loss(self, batch):
                logits = self.task_scores(batch.support_x[0], batch.support_y[0],
                                          batch.query_x[0], batch.way)
                loss = F.cross_entropy(logits, batch.query_y[0])
                acc = (logits.argmax(1) == batch.query_y[0]).float().mean()
                return loss, {"loss": loss.detach(), "accuracy": acc}

        fsbench.register_method("nc", NearestCentroid, description="nearest centroid")
        # now `fsbench run nc doubled` in this process, or an entry point for the shell:
        # fsbench.methods.registry

    What each part receives and must return:

    - ``__init__(backbone=None, *, settings=..., example_shape=..., num_classes=..., **kw)``:
      call ``super().__init__`` first; ``self.settings`` is then the run's frozen ``Settings``
      (way, shot, lr, iterations, ...), ``self.example_shape`` the shape of one example and
      ``self.backbone`` the user's module (None: build your own network).
    - ``sample_train(store, generator, iteration)``: the training batch of one iteration, drawn
      from ``store`` (an ``ArrayStore``) with ``generator`` only (so runs are deterministic);
      any object ``train_loss`` takes. Default: an ``Episode`` of ``rank_tasks`` tasks of
      train_way classes, train_shot support and train_query queries each.
    - ``train_loss(batch)``: a 0-d loss tensor to back-propagate and a dict of 0-d metric
      tensors: "loss" and, if it has one, "accuracy" (the training batch's; shown in progress
      and metrics.jsonl), and anything more (logged too).
    - ``task_scores(support_x, support_y, query_x, way)``: class scores [Q, way] of one task's
      queries (higher: more likely), on the model's device; used by the default
      ``episode_accuracies`` and by ``fsbench predict``.
    - ``episode_accuracies(episode)``: the query accuracy of each task of an episode batch,
      float tensor [B]. Default: from ``task_scores`` under ``torch.no_grad()``.
    - ``check(store, split)``: raise FsbenchError (one line) when a split cannot serve the
      method's episodes. Default: training episodes on train splits, test episodes otherwise.
    - ``iterations(store)``: training iterations (default: the ``iterations`` setting).
    - ``extra_state()`` / ``load_extra_state(state)``: state beyond ``model``'s weights that a
      checkpoint must keep (a dict of tensors and plain values), and its restore.
    - ``summary()``: a dict of JSON-able facts added to result.json (e.g. parameter counts).

    ``make_optimizer`` (Adam on ``model.parameters()`` at the ``lr`` setting), ``evaluate``,
    ``predict`` and ``probabilities`` rarely need overriding.

    ``backbone``: your own ``nn.Module`` in place of the preset's network; each method's class
    docstring says what it must be (an embedding x -> [B, D], a model x -> logits, fsbench's
    Conv4/ResNet12 for MTL). It is called through ``methods.backbone.UserNet`` (a channel axis
    for [B, H, W] images, embeddings flattened), trained in place (``self.backbone`` is your
    object; MTL alone works on a copy), and kept by ``for_data``. A method that cannot be built
    yet without the data's shape or classes (RepMet, Simple CNAPs) records what it needs in
    ``unbuilt`` until ``for_data`` builds it.
    """

    name = "method"
    # settings that only the test evaluation reads: a trained run can be evaluated on others
    eval_settings: tuple[str, ...] = ("query", "episodes")
    # the preset a method built without a dataset takes its defaults from (your own data's)
    default_dataset = "folder"
    # what a method built around a user's backbone still needs before it can run (None: ready);
    # for_data (which the engine and the API call) gives it
    unbuilt: str | None = None

    def __init__(
        self,
        backbone: nn.Module | None = None,
        *,
        settings: Settings | Mapping[str, Any] | None = None,
        dataset: str | None = None,
        example_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        **overrides: Any,
    ) -> None:
        """Two ways in. The engine passes complete ``settings`` (a run's record) with the data's
        ``example_shape`` and ``num_classes``. A user passes a ``backbone`` (any ``nn.Module``;
        None: the preset's Conv-4/ResNet-12) and settings by keyword (``distance="euclidean"``):
        they are resolved over the preset of ``dataset`` (default: your own data's, "folder")
        and checked as the command line checks them (errors name the parameter).
        """
        from fsbench.settings import Settings as _Settings  # settings imports the methods

        if settings is None:
            from fsbench.resolve import resolve_settings

            resolved = resolve_settings(self.name, dataset or self.default_dataset, overrides)
            settings = _Settings.from_dict(resolved)
        elif overrides or dataset is not None:
            raise TypeError("give either complete settings= or dataset= and keyword settings")
        elif not isinstance(settings, _Settings):
            settings = _Settings.from_dict(settings)
        self.settings: Settings = settings
        self.given: dict[str, Any] = dict(overrides)  # what the user set (kept by for_data)
        self.backbone = backbone  # the user's module, or None for the preset's network
        self.example_shape = tuple(example_shape) if example_shape is not None else None
        self.num_classes = num_classes
        self.model: nn.Module = nn.Identity()

    def ready(self) -> None:
        """Raise a one-line TypeError when the method still needs something (``unbuilt``)."""
        if self.unbuilt is not None:
            raise TypeError(f"{type(self).__name__}: {self.unbuilt}")

    def shape(self) -> tuple[int, ...]:
        """The example shape the default network is built for; a one-line error when unknown."""
        if self.example_shape is None:
            raise TypeError(
                f"{type(self).__name__}: give example_shape= (the shape of one example) to build "
                "the preset's network, or pass your own backbone"
            )
        return self.example_shape

    def for_data(self, dataset: str, example_shape: Sequence[int], num_classes: int) -> Method:
        """The same method (its class, the user's backbone module and keyword settings) built
        for a dataset: its preset's defaults under what the user set, its shape and classes."""
        return type(self)(
            self.backbone,
            dataset=dataset,
            example_shape=example_shape,
            num_classes=num_classes,
            **self.given,
        )

    def to(self, device: torch.device) -> Method:
        self.model.to(device)
        return self

    def iterations(self, store: ArrayStore) -> int:
        """How many training iterations the setting asks for; called once before training, so a
        method can also read the training split here (pre-training counts epochs)."""
        return int(self.settings.iterations)

    def eval_interval(self) -> int:
        """Iterations between validations (0: none); pre-training counts epochs."""
        return int(self.settings.eval_every)

    def make_optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """Adam at the preset learning rate, with a step decay when the preset asks for one.

        On CUDA the fused Adam kernel (one launch for every parameter; the same update)."""
        self.ready()
        s = self.settings
        params = list(self.model.parameters())
        fused = bool(params) and all(p.is_cuda for p in params)
        opt = torch.optim.Adam(params, lr=s.lr, fused=fused or None)
        return opt, step_schedule(opt, int(s.lr_step), float(s.lr_gamma))

    def train_sizes(self) -> tuple[int, int, int]:
        """Way, shot and query of the training episodes (resolve_settings fills them in)."""
        s = self.settings
        return (
            filled(s.train_way, "train_way"),
            filled(s.train_shot, "train_shot"),
            filled(s.train_query, "train_query"),
        )

    def sample_train(self, store: ArrayStore, generator: torch.Generator, iteration: int):
        """Training batch number ``iteration`` (an episode meta-batch or a minibatch).

        Default (episodic methods): ``rank_tasks`` tasks of the settings' train_way classes,
        train_shot support and train_query queries each, as an ``Episode``."""
        return self.training_episode(store, generator, self.rank_tasks)

    def training_episode(
        self, store: ArrayStore, generator: torch.Generator, tasks: int
    ) -> Episode:
        """``tasks`` training tasks of train_way/train_shot/train_query, or with ``md_episodes``
        one of Meta-Dataset's variable-way tasks (ragged: one task at a time)."""
        if self.settings.md_episodes:
            from fsbench.data.md_sampling import config_from_settings, md_episode

            return md_episode(store, generator, config_from_settings(self.settings))
        return store.sample_episode(generator, *self.train_sizes(), tasks, check=False)

    def train_loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss to back-propagate and the metrics (0-d tensors, read only when logged)."""
        raise NotImplementedError

    def summary(self) -> dict:
        """Facts about the trained method for result.json (e.g. parameter counts)."""
        return {}

    def extra_state(self) -> dict:
        """State beyond the weights that a checkpoint must keep (e.g. MAML's measured path)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what ``extra_state`` returned."""

    def check(self, store: ArrayStore, split: str) -> None:
        """Raise ValueError/FsbenchError when the split cannot serve this method's episodes.

        Default (episodic methods): training episodes (train_way/train_shot/train_query) on the
        train splits, the test episodes (way/shot/query) on the others."""
        s = self.settings
        if s.md_episodes:  # Meta-Dataset's episodes: the sampler says whether the split serves
            from fsbench.data.md_sampling import config_from_settings, sampler_for

            sampler_for(store, config_from_settings(s))
        elif split in ("train", "trainval"):
            store.check_episode(*self.train_sizes())
        else:
            store.check_episode(s.way, s.shot, s.query)

    # -- data parallel (engine/distributed.py) ----------------------------------------------
    ranks = 1  # processes that share each training step

    def split_over_ranks(self, world: int) -> None:
        """Train on ``world`` ranks: by default each samples its own batch (ProtoNets: one
        episode each, so one step sees ``world`` episodes); MAML and MTL split the meta-batch."""
        self.ranks = world

    def split_meta_batch(self, world: int) -> None:
        """Each of ``world`` ranks adapts meta_batch / world tasks: with equal shares the mean of
        the ranks' mean losses is the mean over the whole meta-batch."""
        from fsbench.settings import check_meta_batch_split  # settings imports the methods

        check_meta_batch_split(int(self.settings.meta_batch), world)
        self.ranks = world

    @property
    def rank_tasks(self) -> int:
        """Tasks of a training meta-batch sampled on this rank (the whole one without ranks)."""
        return int(self.settings.meta_batch) // self.ranks

    def check_meta_batches(self, store: ArrayStore, split: str) -> None:
        """``check`` for methods whose tasks keep their way and shot in training and at test
        (MAML, MTL): meta-batches of training queries on train splits, test queries otherwise."""
        s = self.settings
        query = self.train_sizes()[2] if split in ("train", "trainval") else s.query
        store.check_episode(s.way, s.shot, query, s.meta_batch)

    # -- episodic evaluation --------------------------------------------------------------
    @property
    def eval_chunk(self) -> int:
        """Test episodes drawn (and adapted) together."""
        return 1

    def episode_accuracies(self, episode: Episode) -> torch.Tensor:
        """Accuracy of each task of an episode batch, [B], on the model's device.

        Default: the arg max of ``task_scores`` of each task against its query labels."""
        out = []
        with torch.no_grad():
            for b in range(episode.support_x.shape[0]):
                scores = self.task_scores(
                    episode.support_x[b], episode.support_y[b], episode.query_x[b], episode.way
                )
                out.append((scores.argmax(1) == episode.query_y[b]).float().mean())
        return torch.stack(out)

    # -- one task: scores of queries given a labelled support set (episodes and predict) -----
    def task_scores(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, way: int
    ) -> torch.Tensor:
        """Class scores [Q, way] of one task's queries; their arg max is the prediction.

        ``support_y`` holds labels 0..way-1 in any order and any number per class (episodes
        have ``shot`` each, class-major; ``fsbench predict`` whatever a folder holds).
        """
        raise NotImplementedError

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """``task_scores`` as class probabilities: a softmax (methods whose scores are already
        probabilities override it)."""
        return torch.softmax(scores.float(), dim=1)

    def predict(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, way: int
    ) -> torch.Tensor:
        """Class probabilities [Q, way] of query images, as in a test episode (``eval()``)."""
        self.ready()
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return self.probabilities(self.task_scores(support_x, support_y, query_x, way))
        finally:
            self.model.train(was_training)

    def evaluate(
        self,
        store: ArrayStore,
        generator: torch.Generator,
        episodes: int,
        progress=None,
        way: int | None = None,
        shot: int | None = None,
        query: int | None = None,
        share: tuple[int, int] = (0, 1),
        gather: Callable[[list], list] | None = None,
    ) -> EvalResult:
        """Accuracy over ``episodes`` test episodes of the setting's (or the given) way/shot/query.

        With ``share`` = (rank, world) every rank draws the same episode stream but tests only
        every world-th chunk of it; ``gather`` (each rank's list, in rank order) brings the scores
        back together in stream order, so the result does not depend on the number of ranks.
        """
        self.ready()
        s = self.settings
        md = s.md_episodes  # Meta-Dataset's episodes: one ragged task at a time
        w, k, q = way or s.way, shot or s.shot, query or s.query
        if md:
            from fsbench.data.md_sampling import config_from_settings, md_episode, sampler_for

            config = config_from_settings(s)
            sampler_for(store, config)  # a split that cannot serve them fails here, clearly
        else:
            store.check_episode(w, k, q)
        rank, world = share
        accs: list[tuple[int, torch.Tensor]] = []  # (chunk number, accuracies)
        done = chunk = 0
        was_training = self.model.training
        self.model.eval()
        try:
            while done < episodes:
                b = 1 if md else min(self.eval_chunk, episodes - done)
                if md:
                    ep = md_episode(store, generator, config)
                else:
                    ep = store.sample_episode(generator, w, k, q, b, check=False)
                if chunk % world == rank:
                    accs.append((chunk, self.episode_accuracies(ep).detach().float()))
                    if progress is not None:
                        progress.update(b)
                done += b
                chunk += 1
        finally:
            self.model.train(was_training)
        mine = [(k, a.cpu().tolist()) for k, a in accs]
        if gather is not None:
            mine = sorted(item for part in gather(mine) for item in part)
        return episode_ci([v for _, values in mine for v in values])
