"""Networks: the Conv-4 and ResNet-12 backbones, scaling/shifting, the MNIST-1D classifiers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from fsbench.models.conv4 import Conv4
from fsbench.models.mnist1d import MNIST1D_MODELS, build_mnist1d_model
from fsbench.models.resnet12 import ResNet12

if TYPE_CHECKING:
    from fsbench.settings import Settings

BACKBONES = ("conv4", "resnet12")


def build_backbone(
    settings: Settings, input_shape: tuple[int, ...], num_classes: int | None = None
) -> nn.Module:
    """The backbone a setting names (``backbone``, ``hidden`` or ``widths``, ``norm``...).

    Both have ``embed(x) -> [B, feature_dim]`` and an optional linear ``head``.
    """
    name = settings.backbone
    if name == "resnet12":
        widths = tuple(settings.widths or (64, 128, 256, 512))
        return ResNet12(
            input_shape,
            widths=widths,
            num_classes=num_classes,
            norm=settings.norm,
            affine=settings.norm_affine,
            dropout=float(settings.dropout),
        )
    if name == "conv4":
        return Conv4(
            input_shape,
            hidden=settings.hidden,
            num_classes=num_classes,
            pool=settings.pool,
            readout=settings.readout,
            norm=settings.norm,
            affine=settings.norm_affine,
            init=settings.init,
        )
    raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")


__all__ = [
    "BACKBONES",
    "Conv4",
    "MNIST1D_MODELS",
    "ResNet12",
    "build_backbone",
    "build_mnist1d_model",
]
