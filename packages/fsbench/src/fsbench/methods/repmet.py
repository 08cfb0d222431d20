"""RepMet (Karlinsky et al., CVPR 2019): K learned representatives per class in embedding space.

The network is a Conv-4 backbone (the ProtoNets one), the paper's DML embedding module (a fully
connected layer, batch norm, ReLU, a second fully connected layer, the output scaled to unit
length) and the representatives R_ij, K per class, the weights of a layer whose input is the
constant 1 (so they are learned with everything else). With d_ij = ||E - R_ij|| the paper has

    p_ij = exp(-d_ij^2 / (2 sigma^2))                 (eq. 1, one Gaussian mode per R_ij)
    P(C = i | X) = max_j p_ij                          (eq. 2)
    L_emb = | min_j d_i*j - min_{j, i != i*} d_ij + alpha |_+      (eq. 4)

and trains on the cross-entropy of the class posterior plus L_emb. fsbench normalises eq. 2 over
the classes for the cross-entropy, i.e. a softmax of -min_j d_ij^2 / (2 sigma^2); sigma = 0.5 and
alpha = 1 as the paper (and HaydenFaulkner/pytorch.repmet's configurations). That code puts the
squared distance into the margin term and trains with the margin term alone; fsbench follows the
paper in both (plain distance in eq. 4, cross-entropy added). Training batches are M classes x D
images (M = 12, D = 4 as pytorch.repmet). In test episodes the support embeddings replace the
representatives (see ``methods/modes.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fsbench.data.store import ArrayStore
from fsbench.errors import FsbenchError
from fsbench.methods.backbone import UserNet, output_dim
from fsbench.methods.modes import ModesMethod
from fsbench.models.conv4 import embedding_conv4

SIGMA = 0.5
ALPHA = 1.0
EMBEDDING_HIDDEN = 1024  # the embedding module's hidden layer


class RepMetNet(nn.Module):
    """A backbone ([B, feature_dim] features), the DML embedding module (unit-length output) and
    the representatives."""

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        embedding_dim: int,
        num_classes: int,
        modes: int,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.embedding = nn.Sequential(
            nn.Linear(feature_dim, EMBEDDING_HIDDEN),
            nn.BatchNorm1d(EMBEDDING_HIDDEN),
            nn.ReLU(),
            nn.Linear(EMBEDDING_HIDDEN, embedding_dim),
        )
        self.modes = modes
        # random unit vectors, as pytorch.repmet (the paper does not say)
        reps = torch.randn(num_classes * modes, embedding_dim, generator=generator)
        self.representatives = nn.Parameter(F.normalize(reps, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embedding(self.backbone(x)), dim=1)


def repmet_loss(
    z: torch.Tensor,
    y: torch.Tensor,
    representatives: torch.Tensor,
    modes: int,
    sigma: float = SIGMA,
    alpha: float = ALPHA,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cross-entropy + margin loss, the margin term alone, the class logits [N, C]).

    z: [N, E] embeddings; y: [N] class ids; representatives: [C*K, E], class-major.
    """
    d2 = torch.cdist(z, representatives).pow(2).view(z.shape[0], -1, modes)  # [N, C, K]
    nearest2 = d2.min(2).values  # [N, C]
    logits = -nearest2 / (2 * sigma**2)
    nearest = nearest2.clamp_min(1e-12).sqrt()
    own = nearest.gather(1, y[:, None])[:, 0]
    others = nearest.scatter(1, y[:, None], float("inf")).min(1).values
    margin = torch.relu(own - others + alpha).mean()
    return F.cross_entropy(logits, y) + margin, margin, logits


class RepMet(ModesMethod):
    """RepMet on a backbone: representatives trained with the embedding.

    ``backbone``: any embedding network, x [B, *example_shape] -> [B, D] (more output dims are
    flattened; one-channel [H, W] images arrive as [B, 1, H, W]); None: the preset's Conv-4. The
    DML embedding module and the representatives are built on it, so RepMet needs
    ``num_classes`` (the training classes: K representatives each) and the feature size D: the
    backbone's ``feature_dim`` attribute, or one blank pass of ``example_shape`` examples. With
    your backbone and either of them missing, the method waits for ``for_data`` (what the
    engine and the API call) and says in one line what it needs if used before.
    """

    name = "repmet"

    def __init__(self, backbone: nn.Module | None = None, **kw: Any) -> None:
        super().__init__(backbone, **kw)
        settings, num_classes = self.settings, self.num_classes
        self.sigma = float(settings.sigma)
        self.alpha = float(settings.margin)
        need = "give num_classes= (the number of training classes: K representatives each)"
        net: nn.Module
        if backbone is None:
            if num_classes is None:
                raise TypeError(f"RepMet: {need}")
            conv4 = embedding_conv4(self.shape(), settings)
            net, features = conv4, conv4.feature_dim
        else:
            net = UserNet(backbone, flatten=True)
            known = isinstance(getattr(backbone, "feature_dim", None), int)
            if num_classes is None or not (known or self.example_shape is not None):
                self.model = net  # built by for_data, which gives both
                self.unbuilt = (
                    need
                    if num_classes is None
                    else ("give example_shape= (to measure the size of your backbone's embedding)")
                )
                return
            features = output_dim(net, self.example_shape, "RepMet")
        self.net = RepMetNet(net, features, int(settings.embedding_dim), num_classes, self.modes)
        self.model = self.net

    def sample_train(
        self, store: ArrayStore, generator: torch.Generator, iteration: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.settings
        m = min(int(s.clusters_per_batch), store.num_classes)
        d = int(s.images_per_cluster)
        idx, classes = store.sample_indices(generator, m, d, 0, 1, check=False)
        return store.to_float(store.data[idx.reshape(-1)]), classes[0].repeat_interleave(d)

    def check(self, store: ArrayStore, split: str) -> None:
        super().check(store, split)
        d = int(self.settings.images_per_cluster)
        if split in ("train", "trainval") and d > store.min_class_size:
            raise FsbenchError(
                f"--images-per-cluster {d} is more than the {store.min_class_size} images of the "
                f"smallest class; choose --images-per-cluster <= {store.min_class_size}"
            )

    def train_loss(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.ready()
        x, y = batch
        z = self.embed(x)
        with torch.autocast(z.device.type, enabled=False):
            loss, margin, logits = repmet_loss(
                z, y, self.net.representatives.float(), self.modes, self.sigma, self.alpha
            )
        accuracy = (logits.argmax(1) == y).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": accuracy, "margin": margin.detach()}

    def scores(
        self, z: torch.Tensor, centres: torch.Tensor, centre_class: torch.Tensor, way: int
    ) -> torch.Tensor:
        """-min over each class's modes of the squared distance (eq. 2's arg max)."""
        d2 = torch.cdist(z, centres).pow(2)  # [Q, way*k], class-major
        return -d2.view(z.shape[0], way, -1).min(2).values / (2 * self.sigma**2)

    def summary(self) -> dict:
        if self.unbuilt is not None:
            return {"modes": self.modes}
        return {"modes": self.modes, "representatives": int(self.net.representatives.shape[0])}
