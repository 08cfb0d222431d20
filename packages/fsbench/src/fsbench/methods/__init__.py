"""Few-shot methods (MAML, first-order MAML, ProtoNets, MTL, Magnet loss, RepMet) and the
MNIST-1D classifiers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import nn

from fsbench.methods.base import EvalResult, Method
from fsbench.methods.classifier import Classifier
from fsbench.methods.magnet import Magnet
from fsbench.methods.maml import FOMAML, MAML
from fsbench.methods.mtl import MTL
from fsbench.methods.pretrain import Pretrain
from fsbench.methods.protonet import ProtoNet
from fsbench.methods.repmet import RepMet
from fsbench.methods.simple_cnaps import SimpleCNAPs

if TYPE_CHECKING:
    from fsbench.settings import Settings

METHODS: dict[str, type[Method]] = {
    "maml": MAML,
    "fomaml": FOMAML,
    "protonet": ProtoNet,
    "pretrain": Pretrain,
    "mtl": MTL,
    "magnet": Magnet,
    "repmet": RepMet,
    "simple_cnaps": SimpleCNAPs,
    "logreg": Classifier,
    "mlp": Classifier,
    "cnn": Classifier,
    "gru": Classifier,
}

DESCRIPTIONS: dict[str, str] = {
    "maml": "MAML, second order (Finn et al. 2017), Conv-4, torch.func inner loop",
    "fomaml": "first-order MAML (inner gradient treated as constant)",
    "protonet": "Prototypical Networks (Snell et al. 2017), Conv-4 embedding",
    "pretrain": "many-way classification pre-training of a backbone (fsbench pretrain)",
    "mtl": "Meta-Transfer Learning (Sun et al. 2019): scaling/shifting of a pre-trained backbone",
    "magnet": "Magnet loss (Rippel et al. 2016): K k-means clusters per class, soft vote",
    "repmet": "RepMet (Karlinsky et al. 2019): K learned representatives per class",
    "simple_cnaps": "Simple CNAPs (Bateni et al. 2020): FiLM from a set encoder, Mahalanobis "
    "classifier; LITE with --lite-h",
    "logreg": "MNIST-1D logistic regression 40 -> 10",
    "mlp": "MNIST-1D MLP 40 -> 100 -> 100 -> 10",
    "cnn": "MNIST-1D CNN, three strided Conv1d (25 channels)",
    "gru": "MNIST-1D bidirectional GRU, hidden 6",
}


def build_method(
    settings: Settings | Mapping[str, Any],
    example_shape: tuple[int, ...],
    num_classes: int,
    backbone: nn.Module | None = None,
) -> Method:
    """The method named by ``settings.method``, its model built for ``example_shape``.

    ``backbone``: a user's module in place of the preset's network. A settings dict (as resolve_settings returns and runs record) becomes the frozen ``Settings``
    every method reads; keys an older run's record lacks take their declared defaults.
    """
    from fsbench.settings import Settings  # fsbench.settings imports the methods' choices

    if not isinstance(settings, Settings):
        settings = Settings.from_dict(settings)
    from fsbench.methods.registry import method_class  # built-in or a user's

    return method_class(settings.method)(
        backbone, settings=settings, example_shape=example_shape, num_classes=num_classes
    )


__all__ = [
    "METHODS",
    "DESCRIPTIONS",
    "EvalResult",
    "Method",
    "build_method",
]
