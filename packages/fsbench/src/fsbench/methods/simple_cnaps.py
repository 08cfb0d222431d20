"""Simple CNAPs (Bateni et al. 2020): a FiLM-adapted backbone and a Mahalanobis classifier.

- A set encoder (DeepSets: a small conv net per image, mean over the support set) gives the task
  representation r; a FiLM generator turns r into a scale and a shift for every normalisation
  layer of the backbone (after each norm, as CNAPs places its FiLM layers):
  gamma = 1 + reg_gamma * MLP_gamma(r), beta = reg_beta * MLP_beta(r), the regularisers drawn
  N(0, 0.001) as CNAPs, so an untrained generator leaves the backbone as it is.
- Class k's precision is the inverse of Q_k = lambda_k S_k + (1 - lambda_k) S_task + I with
  lambda_k = n_k / (n_k + 1), S_k and S_task the unbiased covariances of class k's and of all
  support features; logits = -(x - mu_k)^T Q_k^-1 (x - mu_k).

With ``lite_h`` H > 0 (LITE, Bronskill et al. 2021) both support paths use LITE: the set
encoder's and the backbone's support embeddings are exact in value and back-propagated through H
random images each, scaled by N/H. The two subsets are drawn independently, so the product of the
two estimates (the support features depend on the FiLM parameters, which depend on the support
set) stays unbiased (tested by enumerating every pair of subsets).

Deviations: the set encoder uses group norm (CNAPs: batch norm) so that LITE stays exact; the
backbone is trained with the rest (CNAPs and LITE freeze a pre-trained ResNet-18/EfficientNet;
none is available offline); a class with one support example has S_k = 0 (its covariance is
undefined; the official code computes a scalar variance over the feature dimensions instead);
the L2 penalty CNAPs puts on the FiLM regularisers is left out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.utils.hooks import RemovableHandle

from fsbench.data.store import ArrayStore, Episode
from fsbench.methods.backbone import UserNet, batch_dependent
from fsbench.methods.base import Method
from fsbench.methods.lite import CHUNK, draw_subset, lite_embed
from fsbench.models import build_backbone
from fsbench.models.conv4 import BatchStatNorm

NORM_LAYERS = (nn.BatchNorm2d, nn.GroupNorm, BatchStatNorm)
# the norm layers of a user's backbone that get FiLM (through a forward hook): channels on dim 1
HOOKED_NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, BatchStatNorm)


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance [D, D] of the rows of x [n, D] (zeros for a single row)."""
    n = x.shape[0]
    if n < 2:
        return x.new_zeros(x.shape[1], x.shape[1])
    centred = x - x.mean(0, keepdim=True)
    return centred.t() @ centred / (n - 1)


def class_means_and_precisions(
    features: torch.Tensor, labels: torch.Tensor, way: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means [way, D] and the Cholesky factors [way, D, D] of the shrunk covariances Q_k."""
    task = covariance(features)
    eye = torch.eye(features.shape[1], dtype=features.dtype, device=features.device)
    means, factors = [], []
    for k in range(way):
        xk = features[labels == k]
        lam = xk.shape[0] / (xk.shape[0] + 1)
        means.append(xk.mean(0))
        factors.append(torch.linalg.cholesky(lam * covariance(xk) + (1 - lam) * task + eye))
    return torch.stack(means), torch.stack(factors)


def mahalanobis_logits(
    query: torch.Tensor, means: torch.Tensor, factors: torch.Tensor
) -> torch.Tensor:
    """-(x - mu_k)^T Q_k^-1 (x - mu_k) for every query and class: [Q, way]."""
    diff = query.unsqueeze(0) - means.unsqueeze(1)  # [way, Q, D]
    solved = torch.linalg.solve_triangular(factors, diff.transpose(1, 2), upper=False)
    return -(solved * solved).sum(1).t()  # ||L^-1 d||^2 = d^T Q^-1 d


def simple_cnaps_logits(
    support_z: torch.Tensor, support_y: torch.Tensor, query_z: torch.Tensor, way: int
) -> torch.Tensor:
    """The Mahalanobis classifier on embeddings, in float32 outside autocast."""
    with torch.autocast(support_z.device.type, enabled=False):
        means, factors = class_means_and_precisions(support_z.float(), support_y, way)
        return mahalanobis_logits(query_z.float(), means, factors)


class SetEncoder(nn.Module):
    """DeepSets' phi: conv blocks (3x3, group norm, ReLU, 2x2 max-pool), then a spatial mean."""

    def __init__(self, channels: int, size: int, width: int = 64) -> None:
        super().__init__()
        depth = max(1, min(5, int(math.log2(max(size, 2)))))
        layers: list[nn.Module] = []
        cin = channels
        for _ in range(depth):
            layers += [
                nn.Conv2d(cin, width, 3, padding=1),
                nn.GroupNorm(8 if width % 8 == 0 else 1, width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            cin = width
        self.net = nn.Sequential(*layers)
        self.dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.net(x).mean(dim=(2, 3))


class FiLM(nn.Module):
    """A normalisation layer followed by the task's FiLM (identity until ``params`` is set)."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm
        self.params: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        if self.params is None:
            return x
        gamma, beta = self.params
        return x * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)


class FiLMHook:
    """FiLM on the output of a user's norm layer, as a forward hook (the layer stays in place):
    x * gamma + beta over dim 1, the identity until ``params`` is set."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.params: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if self.params is None:
            return output
        gamma, beta = self.params
        view = [1, -1] + [1] * (output.dim() - 2)
        return output * gamma.view(view) + beta.view(view)


def norm_channels(norm: nn.Module) -> int:
    """The channels a norm layer normalises (what its FiLM scales and shifts)."""
    if isinstance(norm, nn.GroupNorm):
        return int(norm.num_channels)
    if isinstance(norm, BatchStatNorm):
        return norm.channels
    return int(norm.num_features)  # type: ignore[arg-type]  # torch's batch/instance norms


def hook_films(backbone: nn.Module) -> tuple[list[FiLMHook], list[RemovableHandle]]:
    """A FiLM hook after every batch, instance and group norm of a user's backbone (module
    order); a one-line ValueError when it has none."""
    films: list[FiLMHook] = []
    handles: list[RemovableHandle] = []
    for m in backbone.modules():
        if isinstance(m, HOOKED_NORMS):
            film = FiLMHook(norm_channels(m))
            handles.append(m.register_forward_hook(film))
            films.append(film)
    if not films:
        raise ValueError(
            "SimpleCNAPs adapts a backbone by FiLM after its normalisation layers: give one with "
            "BatchNorm, InstanceNorm or GroupNorm layers"
        )
    return films, handles


class FiLMGenerator(nn.Module):
    """r -> (gamma, beta) for each FiLM layer, CNAPs' shared layer and per-layer processors."""

    def __init__(self, dim: int, channels: list[int]) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())

        def head(c: int) -> nn.Module:
            return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, c))

        self.gamma = nn.ModuleList(head(c) for c in channels)
        self.beta = nn.ModuleList(head(c) for c in channels)
        self.gamma_reg = nn.ParameterList(nn.Parameter(torch.randn(c) * 1e-3) for c in channels)
        self.beta_reg = nn.ParameterList(nn.Parameter(torch.randn(c) * 1e-3) for c in channels)

    def forward(self, r: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        h = self.shared(r)
        return [
            (1 + g(h) * gr, b(h) * br)
            for g, b, gr, br in zip(
                self.gamma, self.beta, self.gamma_reg, self.beta_reg, strict=True
            )
        ]


class SimpleCNAPsModel(nn.Module):
    """Backbone with FiLM after every norm, the set encoder and the FiLM generator.

    fsbench's Conv-4/ResNet-12 (``user=False``) get FiLM modules in place of their norm layers
    and are read through ``embed``; a user's backbone (a ``UserNet``) gets FiLM as forward hooks
    on its norm layers and is read through its forward.
    """

    def __init__(
        self,
        backbone: nn.Module,
        set_encoder: SetEncoder,
        input_shape: tuple[int, ...],
        user: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.user = user
        self.films: list[FiLM | FiLMHook] = []
        self.hooks: list[RemovableHandle] = []  # on a user's norm layers
        if user:
            hooked, self.hooks = hook_films(backbone)
            self.films.extend(hooked)
            channels = [f.channels for f in hooked]
        else:
            modules: list[FiLM] = []
            for parent in list(backbone.modules()):
                for name, child in list(parent.named_children()):
                    if isinstance(child, NORM_LAYERS):
                        film = FiLM(child)
                        setattr(parent, name, film)
                        modules.append(film)
            self.films.extend(modules)
            channels = self._film_channels(modules, input_shape)
        self.set_encoder = set_encoder
        self.generator = FiLMGenerator(set_encoder.dim, channels)

    def _film_channels(self, films: list[FiLM], input_shape: tuple[int, ...]) -> list[int]:
        """Channels at every FiLM layer, read from one forward pass of two blank images."""
        seen: list[int] = []
        hooks = [f.register_forward_hook(lambda m, i, o: seen.append(o.shape[1])) for f in films]
        was = self.backbone.training
        try:
            with torch.no_grad():
                self.backbone.train()
                self(torch.zeros(2, *input_shape))
        finally:
            self.backbone.train(was)
            for h in hooks:
                h.remove()
        return seen

    def adapt(self, r: torch.Tensor) -> None:
        """Set every FiLM layer's parameters from the task representation r [dim]."""
        for film, params in zip(self.films, self.generator(r), strict=True):
            film.params = params

    def clear(self) -> None:
        for film in self.films:
            film.params = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of x under the current FiLM parameters."""
        if self.user:
            return self.backbone(x)
        embed = self.backbone.embed
        assert callable(embed)  # fsbench's Conv4/ResNet12
        return embed(x)


def _chunked(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int = CHUNK
) -> torch.Tensor:
    return torch.cat([fn(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])


class SimpleCNAPs(Method):
    """Simple CNAPs on a Conv-4 or ResNet-12 backbone (pooled features), LITE optional.

    ``backbone``: any embedding network x [B, C, H, W] -> [B, D] (more output dims are
    flattened; one-channel [H, W] images arrive as [B, 1, H, W]) with normalisation layers: a
    forward hook on each of its BatchNorm, InstanceNorm and GroupNorm layers (fsbench's
    BatchStatNorm too) applies the task's FiLM to that layer's output (channels on dim 1); a
    backbone without any is refused in one line. The hooks stay on your module (the identity
    whenever no task is being adapted). The set encoder is built for the image shape, so
    ``example_shape`` is needed. None: the preset's Conv-4/ResNet-12 with mean read-out.
    Evaluation embeds in chunks unless a batch norm without running statistics makes an
    embedding depend on its batch (then LITE is refused too). Your backbone without
    ``example_shape`` waits for ``for_data`` (what the engine and the API call) and says so in
    one line if used before.
    """

    name = "simple_cnaps"
    eval_settings = ("way", "shot", "query", "episodes")

    def __init__(self, backbone: nn.Module | None = None, **kw: Any) -> None:
        super().__init__(backbone, **kw)
        settings = self.settings
        self.lite_h = settings.lite_h
        self._subsets: tuple[torch.Tensor, torch.Tensor] | None = None
        self.chunk = CHUNK
        if backbone is not None and self.example_shape is None:
            self.model = UserNet(backbone, flatten=True)  # built by for_data, which gives it
            self.unbuilt = "give example_shape= (the set encoder is built for the image shape)"
            return
        example_shape = self.shape()
        shape = tuple(example_shape) if len(example_shape) == 3 else (1, *example_shape)
        if backbone is None:
            net = build_backbone(dataclasses.replace(settings, readout="mean"), example_shape)
            encoder = SetEncoder(shape[0], min(shape[1:]), settings.hidden)
            self.cnaps = SimpleCNAPsModel(net, encoder, shape)
        else:
            encoder = SetEncoder(shape[0], min(shape[1:]), settings.hidden)
            self.cnaps = SimpleCNAPsModel(UserNet(backbone, flatten=True), encoder, shape, True)
        self.model = self.cnaps
        # evaluation passes in chunks, unless batch statistics make an embedding batch-dependent
        dependent = batch_dependent(self.cnaps.backbone)
        if self.lite_h and dependent:
            raise ValueError(
                "lite_h needs an embedding that treats each image on its own: this backbone has "
                "a batch norm without running statistics (use group norm or running statistics)"
            )
        self.chunk = CHUNK if not dependent else 1 << 30

    def _representation(self, xs: torch.Tensor, subset: torch.Tensor | None) -> torch.Tensor:
        enc = self.cnaps.set_encoder
        z = _chunked(enc, xs, self.chunk) if subset is None else lite_embed(enc, xs, subset)
        return z.mean(0)

    def task_scores(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, way: int
    ) -> torch.Tensor:
        """Mahalanobis logits of the queries after adapting the backbone to the support set."""
        return self._logits(support_x, support_y, query_x, way, None)

    def _logits(
        self,
        xs: torch.Tensor,
        ys: torch.Tensor,
        xq: torch.Tensor,
        way: int,
        subsets: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        self.ready()
        m = self.cnaps
        m.adapt(self._representation(xs, None if subsets is None else subsets[0]))
        try:
            if subsets is None:
                if torch.is_grad_enabled():
                    zs, zq = m(xs), m(xq)
                else:  # evaluation: every pass chunked, memory flat in the set sizes
                    zs, zq = _chunked(m, xs, self.chunk), _chunked(m, xq, self.chunk)
            else:
                zs, zq = lite_embed(m, xs, subsets[1]), m(xq)
        finally:
            m.clear()
        return simple_cnaps_logits(zs, ys, zq, way)

    def sample_train(
        self, store: ArrayStore, generator: torch.Generator, iteration: int
    ) -> Episode:
        episode = self.training_episode(store, generator, 1)  # one episode per step and rank
        if self.lite_h:  # two independent subsets: set encoder, backbone
            n = episode.support_x.shape[1]
            h = min(self.lite_h, n)
            self._subsets = (
                draw_subset(n, h, generator, store.device),
                draw_subset(n, h, generator, store.device),
            )
        return episode

    def train_loss(self, batch: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        subsets = self._subsets if self.lite_h else None
        logits = self._logits(
            batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.way, subsets
        )
        yq = batch.query_y[0]
        loss = F.cross_entropy(logits, yq)
        acc = (logits.argmax(1) == yq).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": acc}

    def episode_accuracies(self, episode: Episode) -> torch.Tensor:
        with torch.no_grad():
            out = []
            for b in range(episode.support_x.shape[0]):
                logits = self.task_scores(
                    episode.support_x[b], episode.support_y[b], episode.query_x[b], episode.way
                )
                out.append((logits.argmax(1) == episode.query_y[b]).float().mean())
            return torch.stack(out)
