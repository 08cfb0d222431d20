"""Networks: the Conv-4 backbone of MAML and ProtoNets, and the MNIST-1D classifiers."""

from fsbench.models.conv4 import Conv4
from fsbench.models.mnist1d import MNIST1D_MODELS, build_mnist1d_model

__all__ = ["Conv4", "MNIST1D_MODELS", "build_mnist1d_model"]
